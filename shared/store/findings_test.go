package store

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/shared/receipt"
)

func TestFindingKey(t *testing.T) {
	f := receipt.Finding{Kind: receipt.Modified, CaseID: "c", Seq: 42, Expected: "a", Actual: "b"}
	k := FindingKey(f)
	if !strings.HasPrefix(k, "FINDING#0000000000000000042#Modified#") {
		t.Fatalf("key %q", k)
	}
	g := f
	g.Actual = "c"
	for _, other := range []receipt.Finding{g, {Kind: receipt.Removed, CaseID: "c", Seq: 42, Expected: "a", Actual: "b"}, {Kind: receipt.Modified, CaseID: "c", Seq: 43, Expected: "a", Actual: "b"},
		{Kind: receipt.Modified, CaseID: "c", Seq: 42, Expected: "ab", Actual: ""}} {
		if FindingKey(other) == k {
			t.Errorf("%+v shares the key of %+v", other, f)
		}
	}
	if FindingKey(f) != k {
		t.Fatal("key is not deterministic")
	}
	if k := FindingKey(receipt.Finding{Kind: receipt.Malformed, Seq: -1}); !strings.HasPrefix(k, "FINDING#NOSEQ#Malformed#") {
		t.Fatalf("key without seq %q", k)
	}
	// Keys sort by seq.
	if FindingKey(receipt.Finding{Kind: receipt.Gap, Seq: 9}) >= FindingKey(receipt.Finding{Kind: receipt.Gap, Seq: 10}) {
		t.Fatal("keys do not sort by seq")
	}
}

func TestFindingsPutOnceAndRead(t *testing.T) {
	db, rt, st := tables(t)
	ctx := context.Background()
	s := NewFindings(db, st)
	fs := []receipt.Finding{
		{Kind: receipt.Removed, Tenant: "acme", CaseID: "f1", Seq: 3, Expected: "h3", Detail: "receipt item deleted"},
		{Kind: receipt.Modified, Tenant: "acme", CaseID: "f1", Seq: 1, Expected: "h1", Actual: "x"},
	}
	for _, f := range fs {
		if created, err := s.Put(ctx, f); err != nil || !created {
			t.Fatalf("first put: %v %v", created, err)
		}
		if created, err := s.Put(ctx, f); err != nil || created {
			t.Fatalf("second put: %v %v", created, err)
		}
	}
	if _, err := s.Put(ctx, receipt.Finding{Kind: receipt.Gap}); err == nil {
		t.Fatal("finding without a case accepted")
	}
	got, err := s.Case(ctx, "f1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != fs[1] || got[1] != fs[0] {
		t.Fatalf("findings %+v, want both in seq order", got)
	}
	if other, err := s.Case(ctx, "f2"); err != nil || len(other) != 0 {
		t.Fatalf("other case: %v %v", other, err)
	}

	cases := NewCases(db, st)
	if a, err := s.Alerted(ctx, "f1"); err != nil || a {
		t.Fatalf("alerted before marking: %v %v", a, err)
	}
	if _, err := cases.MarkAlerted(ctx, "f1"); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Alerted(ctx, "f1"); err != nil || !a {
		t.Fatalf("alerted after marking: %v %v", a, err)
	}

	// Range reads one slice of a chain.
	rs := appendN(t, NewReceipts(db, rt), "ranged", 6)
	got2, bad, err := NewReceipts(db, rt).Range(ctx, "ranged", 2, 4)
	if err != nil || len(bad) != 0 || len(got2) != 3 || got2[0].Hash != rs[2].Hash || got2[2].Hash != rs[4].Hash {
		t.Fatalf("range 2..4: %d receipts, %v, %v", len(got2), bad, err)
	}
	if got3, _, err := NewReceipts(db, rt).Range(ctx, "ranged", 5, 4); err != nil || len(got3) != 0 {
		t.Fatalf("empty range: %v %v", got3, err)
	}
	if got4, _, err := NewReceipts(db, rt).Range(ctx, "ranged", -1, 0); err != nil || len(got4) != 1 {
		t.Fatalf("range from -1: %v %v", got4, err)
	}
}

// lostAnswer forwards every request but loses the answer to the first
// PutItem (the connection resets after the endpoint wrote the item), so
// that the SDK retries a write that has already been applied.
type lostAnswer struct {
	next http.RoundTripper
	lost atomic.Bool
}

func (l *lostAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(r)
	if err == nil && strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".PutItem") && l.lost.CompareAndSwap(false, true) {
		_ = resp.Body.Close()
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	return resp, err
}

// A finding written by a first attempt whose answer was lost is still this
// call's creation: the SDK's retry meets its own item, and the caller must
// alert (it would stay silent if the retry read as "already recorded").
func TestFindingsPutRetriedAfterLostAnswerIsCreated(t *testing.T) {
	lost := &lostAnswer{next: http.DefaultTransport}
	db, _, st := tables(t, func(o *dynamodb.Options) { o.HTTPClient = &http.Client{Transport: lost} })
	s := NewFindings(db, st)
	f := receipt.Finding{Kind: receipt.Modified, Tenant: "acme", CaseID: "lost-answer", Seq: 2, Expected: "h2", Actual: "x"}
	created, err := s.Put(context.Background(), f)
	if !lost.lost.Load() {
		t.Fatal("no answer was lost: the test did not exercise the retry")
	}
	if err != nil || !created {
		t.Fatalf("put after a lost answer: created %v, %v; want created", created, err)
	}
	if again, err := s.Put(context.Background(), f); err != nil || again {
		t.Fatalf("a second put: created %v, %v; want already recorded", again, err)
	}
}
