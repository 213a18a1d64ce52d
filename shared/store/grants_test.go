package store

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestGrants grants, lists, caches and revokes on the real local endpoint.
func TestGrants(t *testing.T) {
	db, _, st := tables(t)
	ctx := context.Background()
	g := NewGrants(db, st)
	for _, p := range [][2]string{{"AROAPRODUCER", "acme"}, {"AROAPRODUCER", "globex"}, {"AIDAOPS", "*"}} {
		if err := g.Grant(ctx, p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Grant(ctx, "bad#principal", "acme"); err == nil {
		t.Fatal("a principal with '#' was granted")
	}
	got, err := g.Tenants(ctx, "AROAPRODUCER")
	if err != nil || !slices.Equal(got, []string{"acme", "globex"}) {
		t.Fatalf("Tenants = %v, %v", got, err)
	}
	if got, _ := g.Tenants(ctx, "AIDASTRANGER"); len(got) != 0 {
		t.Fatalf("a stranger has grants %v", got)
	}
	list, err := g.List(ctx)
	if err != nil || len(list) != 3 || list[0].Principal != "AIDAOPS" || list[0].Tenant != "*" || list[0].GrantedAt.IsZero() {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := g.Revoke(ctx, "AROAPRODUCER", "globex"); err != nil {
		t.Fatal(err)
	}
	if got, _ := g.Tenants(ctx, "AROAPRODUCER"); !slices.Equal(got, []string{"acme"}) {
		t.Fatalf("after revoke: %v", got)
	}
	// Another executor's cached read lasts at most its TTL.
	other := NewGrants(db, st)
	other.TTL = time.Hour
	now := time.Now()
	other.now = func() time.Time { return now }
	if got, _ := other.Tenants(ctx, "AROAPRODUCER"); !slices.Equal(got, []string{"acme"}) {
		t.Fatalf("other executor: %v", got)
	}
	if err := g.Revoke(ctx, "AROAPRODUCER", "acme"); err != nil {
		t.Fatal(err)
	}
	if got, _ := other.Tenants(ctx, "AROAPRODUCER"); !slices.Equal(got, []string{"acme"}) {
		t.Fatalf("within the TTL the cached read answers: %v", got)
	}
	now = now.Add(2 * time.Hour)
	if got, _ := other.Tenants(ctx, "AROAPRODUCER"); len(got) != 0 {
		t.Fatalf("after the TTL a revoked grant still answers: %v", got)
	}
}
