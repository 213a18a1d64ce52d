package registry

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/localaws"
)

func newRegistry(t *testing.T) (*Registry, *dynamodb.Client) {
	t.Helper()
	ep := localaws.StartT(t)
	cfg, err := ep.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	table := createStateTable(t, db)
	return New(db, table), db
}

// createStateTable makes a table with the state table's key schema.
func createStateTable(t *testing.T, db *dynamodb.Client) string {
	t.Helper()
	name := "knhk-state-test"
	s := func(n string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(n), AttributeType: types.ScalarAttributeTypeS}
	}
	k := func(n string, kt types.KeyType) types.KeySchemaElement {
		return types.KeySchemaElement{AttributeName: aws.String(n), KeyType: kt}
	}
	_, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:            &name,
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{s("pk"), s("sk"), s("gsi1pk"), s("gsi1sk")},
		KeySchema:            []types.KeySchemaElement{k("pk", types.KeyTypeHash), k("sk", types.KeyTypeRange)},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName:  aws.String("gsi1"),
			KeySchema:  []types.KeySchemaElement{k("gsi1pk", types.KeyTypeHash), k("gsi1sk", types.KeyTypeRange)},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}},
	})
	if err != nil {
		t.Fatalf("create state table: %v", err)
	}
	return name
}

func sample(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", "workflows", "order-routing.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withVersion rewrites the document's version line.
func withVersion(t *testing.T, body []byte, from, to string) []byte {
	t.Helper()
	old := []byte("version: '" + from + "'")
	if !bytes.Contains(body, old) {
		t.Fatalf("sample has no %s", old)
	}
	return bytes.Replace(body, old, []byte("version: '"+to+"'"), 1)
}

func TestPushIsImmutableAndIdempotent(t *testing.T) {
	r, _ := newRegistry(t)
	ctx := context.Background()
	body := sample(t)

	e, res, err := r.Push(ctx, body)
	if err != nil || res != Created || !e.Latest {
		t.Fatalf("first push = %+v %s %v, want created latest", e, res, err)
	}
	if _, res, err := r.Push(ctx, body); err != nil || res != Unchanged {
		t.Fatalf("same body again = %s %v, want unchanged", res, err)
	}
	changed := append(bytes.Clone(body), []byte("\n# a comment changes the bytes\n")...)
	if _, _, err := r.Push(ctx, changed); !errors.Is(err, ErrConflict) {
		t.Fatalf("different body under %s = %v, want ErrConflict", e.Version, err)
	}
	if _, _, err := r.Push(ctx, []byte("document: [")); err == nil {
		t.Fatal("invalid YAML was published")
	}
}

// pushTwoVersions publishes the sample and a copy of it as version 9.0.0,
// which becomes latest.
func pushTwoVersions(t *testing.T, r *Registry) (e1, e2 Entry) {
	t.Helper()
	v1 := sample(t)
	e1, _, err := r.Push(context.Background(), v1)
	if err != nil {
		t.Fatal(err)
	}
	e2, _, err = r.Push(context.Background(), withVersion(t, v1, e1.Version, "9.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	return e1, e2
}

func TestRollbackKeepsPinnedCases(t *testing.T) {
	r, _ := newRegistry(t)
	ctx := context.Background()
	e1, e2 := pushTwoVersions(t, r)
	// A case started now pins v2.
	d, err := r.Resolve(ctx, e1.Namespace, e1.Name, "")
	if err != nil || d.Version != "9.0.0" || d.Hash != e2.Hash {
		t.Fatalf("latest after second push = %+v %v", d, err)
	}
	// Roll back: new cases get v1 ...
	if err := r.SetLatest(ctx, e1.Namespace, e1.Name, e1.Version); err != nil {
		t.Fatal(err)
	}
	fresh := New(r.db, r.table) // an executor with an empty cache
	d, err = fresh.Resolve(ctx, e1.Namespace, e1.Name, "")
	if err != nil || d.Version != e1.Version {
		t.Fatalf("latest after rollback = %+v %v", d, err)
	}
	// ... while the case in flight still loads the version it pinned.
	pinned, err := fresh.Load(ctx, e2.Namespace, e2.Name, e2.Version, e2.Hash)
	if err != nil || pinned.Hash != e2.Hash || pinned.Workflow.Document.Version != "9.0.0" {
		t.Fatalf("pinned load = %+v %v", pinned, err)
	}
	list, err := fresh.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list = %+v %v", list, err)
	}
	for _, e := range list {
		if e.Latest != (e.Version == e1.Version) {
			t.Fatalf("entry %s latest=%v after rollback", e.Ref(), e.Latest)
		}
	}
	if err := r.SetLatest(ctx, e1.Namespace, e1.Name, "0.0.404"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rollback to an unpublished version = %v, want ErrNotFound", err)
	}
}

func TestLoadRefusesTamperedBodyAndUnknown(t *testing.T) {
	r, db := newRegistry(t)
	ctx := context.Background()
	e, _, err := r.Push(ctx, sample(t))
	if err != nil {
		t.Fatal(err)
	}
	tampered := withVersion(t, sample(t), e.Version, e.Version) // same bytes ...
	tampered = append(tampered, '\n')                           // ... plus one
	_, err = db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &r.table,
		Key:                       key(workflowPK(e.Namespace, e.Name), versionSK(e.Version)),
		UpdateExpression:          aws.String("SET body = :b"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":b": &types.AttributeValueMemberB{Value: tampered}},
	})
	if err != nil {
		t.Fatal(err)
	}
	fresh := New(r.db, r.table)
	if _, err := fresh.Load(ctx, e.Namespace, e.Name, e.Version, e.Hash); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("tampered load = %v, want ErrHashMismatch", err)
	}
	if _, err := fresh.Resolve(ctx, "payments", "no-such-workflow", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown workflow = %v, want ErrNotFound", err)
	}
}

// countingDB counts the GetItem calls made to the real endpoint.
type countingDB struct {
	DB
	mu   sync.Mutex
	gets int
}

func (c *countingDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.mu.Lock()
	c.gets++
	c.mu.Unlock()
	return c.DB.GetItem(ctx, in, opts...)
}

func TestResolveReads(t *testing.T) {
	r, _ := newRegistry(t)
	ctx := context.Background()
	e1, e2 := pushTwoVersions(t, r)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		ttl     time.Duration
		version string
		step    time.Duration // clock advance between the two resolves
		want    int           // GetItem calls for the two resolves
	}{
		{"pinned version: one read, then cached", 0, e1.Version, 0, 1},
		{"latest without ttl: pointer every time, body once", 0, "", 0, 3},
		{"latest within ttl", time.Minute, "", 30 * time.Second, 2},
		{"latest after ttl", time.Minute, "", 61 * time.Second, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := &countingDB{DB: r.db}
			fresh := New(db, r.table, LatestTTL(tc.ttl))
			clock := now
			fresh.now = func() time.Time { return clock }
			for range 2 {
				d, err := fresh.Resolve(ctx, e1.Namespace, e1.Name, tc.version)
				if err != nil {
					t.Fatal(err)
				}
				want := e2.Hash
				if tc.version != "" {
					want = e1.Hash
				}
				if d.Hash != want {
					t.Fatalf("resolved %s, want %s", d.Hash, want)
				}
				clock = clock.Add(tc.step)
			}
			if db.gets != tc.want {
				t.Fatalf("%d GetItem calls, want %d", db.gets, tc.want)
			}
		})
	}
	// A rollback made through the same registry is seen at once.
	cached := New(r.db, r.table, LatestTTL(time.Hour))
	if d, err := cached.Resolve(ctx, e1.Namespace, e1.Name, ""); err != nil || d.Hash != e2.Hash {
		t.Fatalf("latest = %+v %v", d, err)
	}
	if err := cached.SetLatest(ctx, e1.Namespace, e1.Name, e1.Version); err != nil {
		t.Fatal(err)
	}
	if d, err := cached.Resolve(ctx, e1.Namespace, e1.Name, ""); err != nil || d.Hash != e1.Hash {
		t.Fatalf("latest after rollback = %+v %v", d, err)
	}
}

func TestResolveLatestReadOnceForConcurrentStarts(t *testing.T) {
	r, _ := newRegistry(t)
	ctx := context.Background()
	e, _, err := r.Push(ctx, sample(t))
	if err != nil {
		t.Fatal(err)
	}
	db := &countingDB{DB: r.db}
	reg := New(db, r.table, LatestTTL(time.Second))
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reg.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	if _, err := reg.Resolve(ctx, e.Namespace, e.Name, ""); err != nil { // body cached
		t.Fatal(err)
	}
	mu.Lock()
	clock = clock.Add(2 * time.Second) // the pointer expired
	mu.Unlock()
	db.mu.Lock()
	db.gets = 0
	db.mu.Unlock()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if d, err := reg.Resolve(ctx, e.Namespace, e.Name, ""); err != nil || d.Hash != e.Hash {
				t.Errorf("resolve = %+v %v", d, err)
			}
		})
	}
	wg.Wait()
	if db.gets < 1 || db.gets > 2 {
		t.Fatalf("%d GetItem calls for 16 concurrent starts after expiry, want the pointer read once (twice if a late start found it expired again)", db.gets)
	}
}

// TestNamespaceOwnership claims, shares and checks namespaces on the real
// local endpoint.
func TestNamespaceOwnership(t *testing.T) {
	r, _ := newRegistry(t)
	ctx := context.Background()
	if err := r.Claim(ctx, "acme-flows", "acme"); err != nil {
		t.Fatal(err)
	}
	if err := r.Claim(ctx, "acme-flows", "acme"); err != nil {
		t.Fatalf("claiming an owned namespace again: %v", err)
	}
	if err := r.Claim(ctx, "acme-flows", "globex"); !errors.Is(err, ErrNamespaceOwned) {
		t.Fatalf("another tenant's claim: %v, want ErrNamespaceOwned", err)
	}
	if err := r.Share(ctx, "lib", true); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		tenant, ns string
		ok         bool
	}{
		{"acme", "acme-flows", true},
		{"globex", "acme-flows", false},
		{"default", "acme-flows", false},
		{"globex", "lib", true}, // shared, unclaimed
		{"default", "unclaimed", true},
		{"acme", "unclaimed", false}, // unclaimed namespaces are the default tenant's
	}
	for _, c := range cases {
		err := r.Authorize(ctx, c.tenant, c.ns)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrNamespaceOwned)) {
			t.Errorf("Authorize(%s, %s) = %v, want ok=%t", c.tenant, c.ns, err, c.ok)
		}
	}
	if err := r.Share(ctx, "acme-flows", true); err != nil {
		t.Fatal(err)
	}
	if err := r.Authorize(ctx, "globex", "acme-flows"); err != nil {
		t.Fatalf("shared namespace refused: %v", err)
	}
	o, err := r.NamespaceOwner(ctx, "acme-flows")
	if err != nil || o.Tenant != "acme" || !o.Shared {
		t.Fatalf("owner %+v, %v: sharing must keep the owner", o, err)
	}
	if err := r.Claim(ctx, "acme-flows", "globex"); !errors.Is(err, ErrNamespaceOwned) {
		t.Fatalf("a shared namespace was claimed by another tenant: %v", err)
	}
	if err := r.Share(ctx, "acme-flows", false); err != nil {
		t.Fatal(err)
	}
	if err := r.Authorize(ctx, "globex", "acme-flows"); !errors.Is(err, ErrNamespaceOwned) {
		t.Fatalf("unshared namespace: %v", err)
	}
}
