package archiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/checkpointer"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/signer"
	"github.com/knhk/knhk/shared/store"
)

var endpoint *localaws.Endpoint

func TestMain(m *testing.M) {
	if u := os.Getenv("KNHK_TEST_ENDPOINT"); u != "" {
		endpoint = &localaws.Endpoint{URL: u}
		os.Exit(m.Run())
	}
	e, err := localaws.Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "local endpoint:", err)
		os.Exit(1)
	}
	endpoint = e
	code := m.Run()
	_ = e.Stop()
	os.Exit(code)
}

// alerts records what would go to SNS (the SNS adapter has its own tests).
type alerts struct {
	mu       sync.Mutex
	subjects []string
}

func (a *alerts) Alert(_ context.Context, subject, _ string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.subjects = append(a.subjects, subject)
	return nil
}

var envSeq atomic.Int64

// env is one test's tables and archive bucket on the local endpoint, with
// a checkpointer and an archiver over them.
type env struct {
	db       *dynamodb.Client
	s3       *s3.Client
	receipts *store.Receipts
	cases    *store.Cases
	index    *store.Archives
	bucket   *objects.Versioned
	key      *signer.Local
	alerts   *alerts
	cp       *checkpointer.Checkpointer
	rt       string
	deps     Deps
	// payloads is the payloads bucket the detached payloads go to, state
	// the state table that held them before.
	payloads *objects.Bucket
	state    *store.State
	refusals *store.Refusals
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	cfg, err := endpoint.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	n := envSeq.Add(1)
	rt, st, ct, bn := fmt.Sprintf("receipts-%d", n), fmt.Sprintf("state-%d", n), fmt.Sprintf("checkpoints-%d", n), fmt.Sprintf("archive-%d", n)
	if err := store.CreateTables(ctx, db, rt, st); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateCheckpointsTable(ctx, db, ct); err != nil {
		t.Fatal(err)
	}
	sc := objects.NewClient(cfg)
	if err := objects.CreateLockedBucket(ctx, sc, bn, objects.Governance, 1); err != nil {
		t.Fatal(err)
	}
	key, err := signer.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	pb := fmt.Sprintf("payloads-%d", n)
	if _, err := sc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(pb)}); err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, s3: sc, receipts: store.NewReceipts(db, rt), cases: store.NewCases(db, st), index: store.NewArchives(db, st),
		bucket: objects.NewVersioned(sc, bn), key: key, alerts: &alerts{}, rt: rt, payloads: objects.New(sc, pb), state: store.NewState(db, st),
		refusals: store.NewRefusals(db, st)}
	state := objects.NewBlobs(e.payloads, e.state)
	e.receipts.Blobs = state
	e.cp, err = checkpointer.New(checkpointer.Deps{Log: store.NewCheckpoints(db, ct), Leases: store.NewLeases(db, ct), Cases: e.cases,
		Chains: e.receipts, Findings: store.NewFindings(db, st), Alerts: e.alerts, Signer: key, Out: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	e.deps = Deps{Log: store.NewCheckpoints(db, ct), Leases: store.NewLeases(db, st), Watermarks: e.cases, Chains: e.receipts,
		Blobs: state, Index: e.index, Refusals: e.refusals, Bucket: e.bucket, Key: key, Alerts: e.alerts, Out: &strings.Builder{}}
	return e
}

func (e *env) archiver(t testing.TB, change func(*Deps)) *Archiver {
	t.Helper()
	d := e.deps
	if change != nil {
		change(&d)
	}
	a, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func event(i int, big bool) history.Event {
	if i == 0 {
		return history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{"n":1}`), Started: t0,
			Genesis: &history.Genesis{Tenant: "acme", Namespace: "ns", Workflow: "wf", Version: "1",
				DescriptorHash: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}}
	}
	out := fmt.Sprintf(`{"i":%d}`, i)
	if big && i == 1 {
		out = `{"blob":"` + strings.Repeat("x", receipt.InlineLimit) + `"}`
	}
	return history.Event{Type: history.TaskCompleted, Task: "/do/0/step", Output: json.RawMessage(out), Started: t0.Add(time.Duration(i) * time.Second)}
}

// grow appends receipts up to seq (the last one terminal when end) and sets
// the watermark there, as the verifier does once it verified them.
func (e *env) grow(t testing.TB, caseID string, seq int, end, big bool) []*receipt.Receipt {
	t.Helper()
	ctx := context.Background()
	rs, _, err := e.receipts.Chain(ctx, caseID)
	if err != nil {
		t.Fatal(err)
	}
	var prev *receipt.Receipt
	if len(rs) > 0 {
		prev = rs[len(rs)-1]
	}
	w := receipt.Watermark{}
	for i := len(rs); i <= seq; i++ {
		ev := event(i, big)
		if end && i == seq {
			ev = history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{"ok":true}`), Started: t0.Add(time.Duration(i) * time.Second)}
			w.Ended = int64(i)
		}
		a, err := e.receipts.AppendExact(ctx, prev, "acme", caseID, ev)
		if err != nil {
			t.Fatal(err)
		}
		prev = a.Receipt
		rs = append(rs, prev)
	}
	w.Seq, w.Hash = prev.Seq, prev.Hash
	if err := e.cases.SetWatermarks(ctx, map[string]receipt.Watermark{caseID: w}); err != nil {
		t.Fatal(err)
	}
	return rs
}

func (e *env) checkpoint(t testing.TB) {
	t.Helper()
	if _, err := e.cp.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func run(t testing.TB, a *Archiver) Result {
	t.Helper()
	res, err := a.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// expiries returns the time-to-live attribute of each of a case's items
// (empty string: none).
func (e *env) expiries(t testing.TB, caseID string) []string {
	t.Helper()
	out, err := e.db.Query(context.Background(), &dynamodb.QueryInput{TableName: aws.String(e.rt), KeyConditionExpression: aws.String("caseId = :c"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: caseID}}, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	var ex []string
	for _, it := range out.Items {
		v, _ := it[receipt.AttrExpires].(*types.AttributeValueMemberN)
		if v == nil {
			ex = append(ex, "")
			continue
		}
		ex = append(ex, v.Value)
	}
	return ex
}

func (e *env) versions(t testing.TB, caseID string) int {
	t.Helper()
	out, err := e.s3.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(e.bucket.Name()), Prefix: aws.String(archive.Key("acme", caseID))})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Versions)
}

// Cases end, get checkpointed, are archived and verified from S3, and only
// then expire: the archive object read from the bucket verifies with the
// public key alone (detached payload included), the index lists the case by
// its end time, every receipt item carries end + retention, and a case still
// open, or ended but not yet checkpointed, is left alone until it is.
func TestArchivesEndedCheckpointedCases(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.grow(t, "small", 3, true, false)
	e.grow(t, "big", 4, true, true)
	e.grow(t, "open", 2, false, false)
	e.checkpoint(t)
	e.grow(t, "late", 2, true, false) // ended, not checkpointed yet
	a := e.archiver(t, nil)
	res := run(t, a)
	if got := slices.Sorted(slices.Values(res.Archived)); !slices.Equal(got, []string{"big", "small"}) || len(res.Refused) != 0 {
		t.Fatalf("first run: %+v", res)
	}
	pub, _ := e.key.PublicKey(ctx)
	for _, id := range []string{"small", "big"} {
		s, ok, err := e.index.Archived(ctx, id)
		if err != nil || !ok {
			t.Fatalf("%s not indexed: %v", id, err)
		}
		data, err := e.bucket.Get(ctx, archive.Key("acme", id), s.VersionID, archive.MaxSize)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := archive.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := archive.Verify(obj, pub); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if id == "big" && len(obj.Payloads) != 1 {
			t.Fatalf("big: %d payloads", len(obj.Payloads))
		}
		want := strconv.FormatInt(s.Ended.Add(DefaultRetentionDays*24*time.Hour).Unix(), 10)
		for i, ex := range e.expiries(t, id) {
			if ex != want {
				t.Fatalf("%s item %d expires %q, want %q", id, i, ex, want)
			}
		}
		t.Logf("%s: archive object %d bytes, %d receipts", id, len(data), len(obj.Receipts))
	}
	for _, id := range []string{"open", "late"} {
		if _, ok, _ := e.index.Archived(ctx, id); ok || slices.ContainsFunc(e.expiries(t, id), func(s string) bool { return s != "" }) {
			t.Fatalf("%s archived or expiring before it was ended and checkpointed", id)
		}
	}
	listed, err := e.index.List(ctx, t0, t0.Add(time.Hour))
	if err != nil || len(listed) != 2 || listed[0].CaseID != "small" || listed[1].CaseID != "big" {
		t.Fatalf("list: %+v %v", listed, err)
	}
	if none, err := e.index.List(ctx, t0.Add(time.Hour), t0.Add(2*time.Hour)); err != nil || len(none) != 0 {
		t.Fatalf("list of another period: %+v %v", none, err)
	}

	// Nothing new: the next run examines nothing and writes nothing.
	if again := run(t, a); len(again.Archived) != 0 || again.Examined != 0 {
		t.Fatalf("second run: %+v", again)
	}
	// The open case ends, the late one is checkpointed: both are archived.
	e.grow(t, "open", 4, true, false)
	e.checkpoint(t)
	if res := run(t, a); !slices.Equal(slices.Sorted(slices.Values(res.Archived)), []string{"late", "open"}) {
		t.Fatalf("third run: %+v", res)
	}
	for _, id := range []string{"small", "big", "open", "late"} {
		if n := e.versions(t, id); n != 1 {
			t.Fatalf("%s: %d object versions, want 1", id, n)
		}
	}
}

// tampering puts altered bytes instead of the archive (what a writer with
// access to the bucket, or a corrupted write, leaves behind) on the real
// bucket; the archiver reads back what is stored.
type tampering struct{ *objects.Versioned }

func (b tampering) Put(ctx context.Context, key, contentType string, body []byte) (string, error) {
	i := strings.Index(string(body), `"i":1`)
	altered := []byte(strings.Replace(string(body), `"i":1`, `"i":7`, 1))
	if i < 0 {
		return "", fmt.Errorf("nothing to alter in %s", key)
	}
	return b.Versioned.Put(ctx, key, contentType, altered)
}

// A tampered archive object is refused before the time to live is set:
// the case is not indexed, its receipts keep no expiry, an alert names it,
// its refusal is recorded, and an honest run after the retry time archives
// it (without rewinding the cursor) and deletes the refusal.
func TestTamperedArchiveRefusedBeforeTTL(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.grow(t, "victim", 3, true, false)
	e.checkpoint(t)
	bad := e.archiver(t, func(d *Deps) { d.Bucket = tampering{e.bucket} })
	res := run(t, bad)
	if !slices.Equal(res.Refused, []string{"victim"}) || len(res.Archived) != 0 {
		t.Fatalf("tampered run: %+v", res)
	}
	if _, ok, _ := e.index.Archived(ctx, "victim"); ok {
		t.Fatal("a refused case is indexed")
	}
	if slices.ContainsFunc(e.expiries(t, "victim"), func(s string) bool { return s != "" }) {
		t.Fatal("a refused case's receipts expire")
	}
	if len(e.alerts.subjects) != 1 || !strings.Contains(e.alerts.subjects[0], "victim") {
		t.Fatalf("alerts %v", e.alerts.subjects)
	}
	rc, ok, err := e.refusals.Get(ctx, "victim")
	if err != nil || !ok || rc.Attempts != 1 || rc.HeadSeq != 3 || !strings.Contains(rc.Reason, "read back") {
		t.Fatalf("refusal %+v %v %v", rc, ok, err)
	}
	if res := run(t, e.archiver(t, func(d *Deps) { d.Now = func() time.Time { return rc.NextAt.Add(time.Second) } })); !slices.Equal(res.Archived, []string{"victim"}) ||
		!slices.Equal(res.Retried, []string{"victim"}) {
		t.Fatalf("honest run after the retry time: %+v", res)
	}
	if _, ok, err := e.refusals.Get(ctx, "victim"); ok || err != nil {
		t.Fatalf("the refusal outlived the archive: %v %v", ok, err)
	}
	if s, ok, _ := e.index.Archived(ctx, "victim"); !ok || s.HeadSeq != 3 {
		t.Fatalf("victim not indexed after the retry: %+v", s)
	}
}

// Refused cases are retried by later runs without moving the cursor, each
// attempt recorded with its reason and a doubled wait, at most MaxRetries a
// run; a run before a case's retry time leaves it alone; once the bucket is
// honest the retries archive them and their refusals are gone.
func TestRefusedCasesRetriedWithBackoff(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := []string{"r1", "r2", "r3"}
	for _, id := range ids {
		e.grow(t, id, 2, true, false)
	}
	e.checkpoint(t)
	t1 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	at := func(now time.Time, bucket Bucket, maxRetries int) Result {
		return run(t, e.archiver(t, func(d *Deps) {
			d.Now = func() time.Time { return now }
			d.MaxRetries = maxRetries
			if bucket != nil {
				d.Bucket = bucket
			}
		}))
	}
	bad := tampering{e.bucket}
	if res := at(t1, bad, 0); !slices.Equal(res.Refused, ids) {
		t.Fatalf("first run: %+v", res)
	}
	cur, err := e.index.Cursor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name       string
		now        time.Time
		bucket     Bucket
		maxRetries int
		retried    []string
		archived   []string
		attempts   map[string]int
	}{
		{name: "before the retry time", now: t1.Add(FirstRetry - time.Second), bucket: bad,
			attempts: map[string]int{"r1": 1, "r2": 1, "r3": 1}},
		{name: "due, refused again, two a run", now: t1.Add(FirstRetry), bucket: bad, maxRetries: 2, retried: []string{"r1", "r2"},
			attempts: map[string]int{"r1": 2, "r2": 2, "r3": 1}},
		{name: "the third still due, the others waiting twice as long", now: t1.Add(2 * FirstRetry), bucket: bad, retried: []string{"r3"},
			attempts: map[string]int{"r1": 2, "r2": 2, "r3": 2}},
		{name: "honest bucket after every retry time", now: t1.Add(2*FirstRetry + 2*FirstRetry), retried: ids, archived: ids,
			attempts: map[string]int{}},
	} {
		t.Run(step.name, func(t *testing.T) {
			res := at(step.now, step.bucket, step.maxRetries)
			if got := slices.Sorted(slices.Values(res.Retried)); !slices.Equal(got, step.retried) {
				t.Fatalf("retried %v, want %v (%+v)", got, step.retried, res)
			}
			if got := slices.Sorted(slices.Values(res.Archived)); !slices.Equal(got, step.archived) {
				t.Fatalf("archived %v, want %v", got, step.archived)
			}
			for _, id := range ids {
				rc, ok, err := e.refusals.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				want, refused := step.attempts[id]
				if ok != refused || rc.Attempts != want {
					t.Fatalf("%s: refusal %+v (recorded %v), want %d attempts", id, rc, ok, want)
				}
				if ok && !rc.NextAt.Equal(rc.LastAt.Add(RetryAfter(rc.Attempts))) {
					t.Fatalf("%s: next retry %s after the refusal at %s, want %s later", id, rc.NextAt, rc.LastAt, RetryAfter(rc.Attempts))
				}
			}
			if c, err := e.index.Cursor(ctx); err != nil || c != cur {
				t.Fatalf("cursor moved to %+v (%v), want %+v", c, err, cur)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		attempts int
		want     time.Duration
	}{
		{1, 15 * time.Minute}, {2, 30 * time.Minute}, {3, time.Hour}, {7, 16 * time.Hour}, {8, MaxRetryWait}, {50, MaxRetryWait},
	} {
		if got := RetryAfter(tc.attempts); got != tc.want {
			t.Errorf("RetryAfter(%d) = %s, want %s", tc.attempts, got, tc.want)
		}
	}
}

// Two runs fired at once archive each case once: one object version per
// case, each case in one run's result.
func TestTwoRunsAtOnceArchiveOnce(t *testing.T) {
	e := newEnv(t)
	ids := []string{"c1", "c2", "c3", "c4", "c5", "c6"}
	for _, id := range ids {
		e.grow(t, id, 3, true, false)
	}
	e.checkpoint(t)
	var wg sync.WaitGroup
	results := make([]Result, 2)
	errs := make([]error, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.archiver(t, nil).Run(context.Background())
		}()
	}
	wg.Wait()
	var all []string
	for i, r := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		all = append(all, r.Archived...)
	}
	if slices.Sort(all); !slices.Equal(all, ids) {
		t.Fatalf("archived %v (results %+v)", all, results)
	}
	for _, id := range ids {
		if n := e.versions(t, id); n != 1 {
			t.Fatalf("%s: %d versions", id, n)
		}
	}
}

// A run stops at its bound and the next continues from its cursor; a run
// that stopped after indexing a case but before its expiry (simulated by
// clearing the expiry) sets it when the cursor comes back to it.
func TestBoundedRunsContinue(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 5 {
		e.grow(t, fmt.Sprintf("b%d", i), 2, true, false)
	}
	e.checkpoint(t)
	a := e.archiver(t, func(d *Deps) { d.MaxCases = 2 })
	var got []string
	for range 3 {
		res := run(t, a)
		got = append(got, res.Archived...)
	}
	if !slices.Equal(got, []string{"b0", "b1", "b2", "b3", "b4"}) {
		t.Fatalf("archived %v", got)
	}
	// Expiry lost after indexing: the archiver sets it again from the index.
	if _, err := e.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(e.rt),
		Key:              map[string]types.AttributeValue{receipt.AttrCase: &types.AttributeValueMemberS{Value: "b0"}, receipt.AttrSeq: &types.AttributeValueMemberN{Value: "0"}},
		UpdateExpression: aws.String("REMOVE " + receipt.AttrExpires)}); err != nil {
		t.Fatal(err)
	}
	if err := e.index.SetCursor(ctx, store.ArchiveCursor{}); err != nil {
		t.Fatal(err)
	}
	res := run(t, e.archiver(t, nil))
	if len(res.Archived) != 0 || len(res.Expired) != 5 {
		t.Fatalf("rerun: %+v", res)
	}
	if ex := e.expiries(t, "b0"); slices.Contains(ex, "") {
		t.Fatalf("b0 expiries %v", ex)
	}
	if e.versions(t, "b0") != 1 {
		t.Fatal("a rerun wrote the object again")
	}
}

func TestParseRetentionDays(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 30 * 24 * time.Hour, true},
		{"7", 7 * 24 * time.Hour, true},
		{"0", 0, false},
		{"3654", 0, false},
		{"1.5", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseRetentionDays(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRetentionDays(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// BenchmarkArchiveCase measures one case archived end to end on the local
// endpoint: chain read, object built, put, read back, verified, indexed,
// expiry set (a 6-receipt case, one item per receipt).
func BenchmarkArchiveCase(b *testing.B) {
	e := newEnv(b)
	for i := range b.N {
		e.grow(b, fmt.Sprintf("bench-%d", i), 5, true, false)
	}
	e.checkpoint(b)
	a := e.archiver(b, func(d *Deps) { d.MaxCases = b.N })
	b.ResetTimer()
	res := run(b, a)
	b.StopTimer()
	if len(res.Archived) != b.N {
		b.Fatalf("archived %d of %d", len(res.Archived), b.N)
	}
	b.ReportMetric(float64(res.Bytes)/float64(b.N), "bytes/case")
}

// Detached payloads are read from the state table for a case whose
// payloads were written there before they moved to the payloads bucket,
// and from the bucket (blobs/<sha256>) for a case written after: the
// archive objects of both embed the payload and verify.
func TestArchivesPayloadsFromTheStateTableAndTheBucket(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	blobs := e.receipts.Blobs
	e.receipts.Blobs = e.state // as the executor wrote them before the move
	old := e.grow(t, "old", 2, true, true)
	e.receipts.Blobs = blobs
	hash := old[1].OutputHash
	if _, err := e.payloads.Get(ctx, objects.BlobKey(hash), 0); !errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("the old case's payload is in the bucket: %v", err)
	}
	e.checkpoint(t)
	a := e.archiver(t, nil)
	if res := run(t, a); !slices.Equal(res.Archived, []string{"old"}) || len(res.Refused) != 0 {
		t.Fatalf("first run: %+v", res)
	}
	e.grow(t, "fresh", 2, true, true)
	if _, err := e.payloads.Get(ctx, objects.BlobKey(hash), 0); err != nil {
		t.Fatalf("the fresh case's payload is not under blobs/<sha256>: %v", err)
	}
	e.checkpoint(t)
	if res := run(t, a); !slices.Equal(res.Archived, []string{"fresh"}) || len(res.Refused) != 0 {
		t.Fatalf("second run: %+v", res)
	}
	pub, _ := e.key.PublicKey(ctx)
	for _, id := range []string{"old", "fresh"} {
		s, ok, err := e.index.Archived(ctx, id)
		if err != nil || !ok {
			t.Fatalf("%s not indexed: %v", id, err)
		}
		data, err := e.bucket.Get(ctx, archive.Key("acme", id), s.VersionID, archive.MaxSize)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := archive.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := archive.Verify(obj, pub); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if len(obj.Payloads) != 1 || obj.Payloads[0].Hash != hash {
			t.Fatalf("%s: payloads %+v", id, obj.Payloads)
		}
	}
}
