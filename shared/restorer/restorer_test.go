package restorer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/archiver"
	"github.com/knhk/knhk/shared/checkpointer"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/merkle"
	"github.com/knhk/knhk/shared/restore"
	"github.com/knhk/knhk/shared/signer"
	"github.com/knhk/knhk/shared/store"
)

// source and target are two local endpoints: the stack whose tables are
// lost (its archive bucket and checkpoint log survive) and the fresh one
// restored into.
var source, target *localaws.Endpoint

func TestMain(m *testing.M) {
	ctx := context.Background()
	var err error
	if source, err = localaws.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "local endpoint:", err)
		os.Exit(1)
	}
	if target, err = localaws.Start(ctx); err != nil {
		_ = source.Stop()
		fmt.Fprintln(os.Stderr, "local endpoint:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = source.Stop()
	_ = target.Stop()
	os.Exit(code)
}

type alerts struct{}

func (a *alerts) Alert(context.Context, string, string) error { return nil }

var seq int

// live is the source stack: tables, a checkpointer and an archiver.
type live struct {
	receipts *store.Receipts
	cases    *store.Cases
	log      *store.Checkpoints
	bucket   *objects.Versioned
	key      *signer.Local
	cp       *checkpointer.Checkpointer
	ar       *archiver.Archiver
}

func newLive(t testing.TB) *live {
	t.Helper()
	ctx := context.Background()
	cfg, err := source.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	seq++
	rt, st, ct, bn := fmt.Sprintf("receipts-%d", seq), fmt.Sprintf("state-%d", seq), fmt.Sprintf("checkpoints-%d", seq), fmt.Sprintf("archive-%d", seq)
	pb := fmt.Sprintf("payloads-%d", seq)
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
	state := objects.NewBlobs(payloadBucket(t, cfg, pb), store.NewState(db, st))
	l := &live{receipts: store.NewReceipts(db, rt), cases: store.NewCases(db, st), log: store.NewCheckpoints(db, ct),
		bucket: objects.NewVersioned(sc, bn), key: key}
	l.receipts.Blobs = state
	if l.cp, err = checkpointer.New(checkpointer.Deps{Log: l.log, Leases: store.NewLeases(db, ct), Cases: l.cases, Chains: l.receipts,
		Findings: store.NewFindings(db, st), Alerts: &alerts{}, Signer: key, Out: &strings.Builder{}}); err != nil {
		t.Fatal(err)
	}
	if l.ar, err = archiver.New(archiver.Deps{Log: l.log, Leases: store.NewLeases(db, st), Watermarks: l.cases, Chains: l.receipts,
		Blobs: state, Index: store.NewArchives(db, st), Refusals: store.NewRefusals(db, st), Bucket: l.bucket, Key: key, Alerts: &alerts{}, Out: &strings.Builder{}, MaxCases: 1000}); err != nil {
		t.Fatal(err)
	}
	return l
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// events are a case's history: a genesis, steps steps (the first with a
// payload over the inline limit when big), and its end.
func events(steps int, big bool) []store.Pending {
	evs := []store.Pending{{Event: history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{"n":1}`), Started: t0,
		Genesis: &history.Genesis{Tenant: "acme", Namespace: "ns", Workflow: "wf", Version: "1",
			DescriptorHash: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}}}}
	for i := 1; i <= steps; i++ {
		out := fmt.Sprintf(`{"i":%d}`, i)
		if big && i == 1 {
			out = `{"blob":"` + strings.Repeat("x", receipt.InlineLimit) + `"}`
		}
		evs = append(evs, store.Pending{Event: history.Event{Type: history.TaskCompleted, Task: "/do/0/step", Output: json.RawMessage(out),
			Started: t0.Add(time.Duration(i) * time.Second)}})
	}
	return append(evs, store.Pending{Event: history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{"ok":true}`),
		Started: t0.Add(time.Duration(steps+1) * time.Second)}})
}

// run appends a case's events, one executor step per item when stepwise,
// else in one segment, and sets its watermark as the verifier does.
func (l *live) run(t testing.TB, caseID string, steps int, big, stepwise bool) []*receipt.Receipt {
	t.Helper()
	ctx := context.Background()
	evs := events(steps, big)
	var rs []*receipt.Receipt
	var prev *receipt.Receipt
	chunks := [][]store.Pending{evs}
	if stepwise {
		chunks = nil
		for _, e := range evs {
			chunks = append(chunks, []store.Pending{e})
		}
	}
	for _, c := range chunks {
		a, err := l.receipts.AppendSegment(ctx, prev, "acme", caseID, c)
		if err != nil {
			t.Fatal(err)
		}
		rs, prev = append(rs, a.Receipts...), a.Receipt
	}
	w := receipt.Watermark{Seq: prev.Seq, Hash: prev.Hash, Ended: prev.Seq}
	if err := l.cases.SetWatermarks(ctx, map[string]receipt.Watermark{caseID: w}); err != nil {
		t.Fatal(err)
	}
	return rs
}

// archive checkpoints and archives every ended case.
func (l *live) archive(t testing.TB, want int) {
	t.Helper()
	ctx := context.Background()
	if _, err := l.cp.Run(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		res, err := l.ar.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Refused) > 0 {
			t.Fatalf("archiver refused %v", res.Refused)
		}
		n += len(res.Archived)
		if !res.More {
			break
		}
	}
	if n != want {
		t.Fatalf("archived %d cases, want %d", n, want)
	}
}

// verifiedLog loads and verifies the source's checkpoint log.
func (l *live) verifiedLog(t testing.TB) *checkpoint.Log {
	t.Helper()
	ctx := context.Background()
	stored, err := l.log.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := l.key.PublicKey(ctx)
	lg, err := checkpoint.VerifyLog(stored.Entries, pub)
	if err != nil {
		t.Fatal(err)
	}
	return lg
}

// fresh is the empty target stack.
type fresh struct {
	receipts *store.Receipts
	// blobs is the target's payloads bucket, with no state-table fallback:
	// a restored payload must be in the bucket.
	blobs *objects.Blobs
}

func newFresh(t testing.TB) *fresh {
	t.Helper()
	ctx := context.Background()
	cfg, err := target.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	seq++
	rt, st, pb := fmt.Sprintf("receipts-%d", seq), fmt.Sprintf("state-%d", seq), fmt.Sprintf("payloads-%d", seq)
	if err := store.CreateTables(ctx, db, rt, st); err != nil {
		t.Fatal(err)
	}
	f := &fresh{receipts: store.NewReceipts(db, rt), blobs: objects.NewBlobs(payloadBucket(t, cfg, pb), nil)}
	f.receipts.Blobs = f.blobs
	return f
}

func (l *live) restore(t testing.TB, f *fresh, workers int) (restore.Summary, []restore.Outcome) {
	t.Helper()
	ctx := context.Background()
	pub, _ := l.key.PublicKey(ctx)
	sum, outs, err := Run(ctx, Deps{Source: l.bucket, Target: f.receipts, Blobs: f.blobs, Key: pub, Log: l.verifiedLog(t), Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	return sum, outs
}

// check asserts that the target holds each case's chain with the heads of
// before: the same receipts (hashes, seqs), a chain that verifies from its
// genesis, a tail that is the case's last signed head in the checkpoint
// log (what `knhk verify --case` checks), and events readable with the
// detached payloads restored.
func check(t testing.TB, f *fresh, lg *checkpoint.Log, want map[string][]*receipt.Receipt) {
	t.Helper()
	ctx := context.Background()
	for id, before := range want {
		rs, bad, err := f.receipts.Chain(ctx, id)
		if err != nil || len(bad) > 0 {
			t.Fatalf("%s: %v %v", id, bad, err)
		}
		if len(rs) != len(before) {
			t.Fatalf("%s: %d receipts restored, want %d", id, len(rs), len(before))
		}
		for i := range rs {
			if rs[i].Seq != before[i].Seq || rs[i].Hash != before[i].Hash {
				t.Fatalf("%s seq %d: hash %s, want %s", id, i, rs[i].Hash, before[i].Hash)
			}
		}
		if fs := receipt.VerifyChain(rs); len(fs) > 0 {
			t.Fatalf("%s: %v", id, fs)
		}
		head := rs[len(rs)-1]
		if last, ok := lg.Last(id); !ok || last.Seq != head.Seq || last.Hash != head.Hash {
			t.Fatalf("%s: restored head seq %d %s, signed head %+v", id, head.Seq, head.Hash, last)
		}
		if _, err := f.receipts.Events(ctx, rs); err != nil {
			t.Fatalf("%s events: %v", id, err)
		}
	}
}

// cases returns the opt-in case count (KNHK_RESTORE_CASES) or def.
func cases(t testing.TB, def int) int {
	if v := os.Getenv("KNHK_RESTORE_CASES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KNHK_RESTORE_CASES=%q", v)
		}
		return n
	}
	return def
}

// Archived cases restore into a fresh endpoint with the heads of before,
// a chain written one step per item as well as in one segment, a detached
// payload included; a re-run writes nothing and skips every case.
// KNHK_RESTORE_CASES=1000 is the size (its time is logged: the
// RTO of this path).
func TestRestoresArchivedCases(t *testing.T) {
	n := cases(t, 24)
	l := newLive(t)
	want := map[string][]*receipt.Receipt{}
	for i := range n {
		id := fmt.Sprintf("case-%05d", i)
		want[id] = l.run(t, id, 2+i%3, i%8 == 0, i%4 == 1)
	}
	l.archive(t, n)
	f := newFresh(t)
	sum, _ := l.restore(t, f, 8)
	if sum.Listed != n || sum.Restored != n || !sum.OK() || sum.Payloads != (n+7)/8 {
		t.Fatalf("restore: %s %+v", sum.String(), sum.Problems)
	}
	t.Logf("restore of %d cases: %s", n, sum.String())
	check(t, f, l.verifiedLog(t), want)

	again, _ := l.restore(t, f, 8)
	if again.Restored != 0 || again.Skipped != n || again.Items != 0 || !again.OK() {
		t.Fatalf("re-run: %s", again.String())
	}
	check(t, f, l.verifiedLog(t), want)
}

// tamper replaces the latest version of a case's archive object with
// altered bytes (a new version; the honest one stays under Object Lock).
func tamper(t testing.TB, l *live, caseID string, alter func(*archive.Archive)) {
	t.Helper()
	ctx := context.Background()
	key := archive.Key("acme", caseID)
	data, err := l.bucket.Get(ctx, key, "", archive.MaxSize)
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	alter(a)
	bad, err := archive.Encode(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.bucket.Put(ctx, key, archive.ContentType, bad); err != nil {
		t.Fatal(err)
	}
}

// A tampered object is refused and nothing of its case is written, while
// the others restore; a case the target already holds with another chain
// is a reported conflict and is left as it was.
func TestRefusesTamperedAndConflicting(t *testing.T) {
	l := newLive(t)
	want := map[string][]*receipt.Receipt{}
	for _, id := range []string{"honest", "output", "payload", "dropped", "other", "taken"} {
		want[id] = l.run(t, id, 2, id == "payload", false)
	}
	l.archive(t, len(want))
	tamper(t, l, "output", func(a *archive.Archive) { a.Receipts[1].Output = json.RawMessage(`{"i":7}`) })
	tamper(t, l, "payload", func(a *archive.Archive) { a.Payloads[0].Data = json.RawMessage(`{"blob":"y"}`) })
	tamper(t, l, "dropped", func(a *archive.Archive) { a.Receipts = a.Receipts[:len(a.Receipts)-1] })
	// A valid archive of another case stored under this case's key.
	other, err := l.bucket.Get(context.Background(), archive.Key("acme", "honest"), "", archive.MaxSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.bucket.Put(context.Background(), archive.Key("acme", "other"), archive.ContentType, other); err != nil {
		t.Fatal(err)
	}
	f := newFresh(t)
	ctx := context.Background()
	mine, err := f.receipts.AppendSegment(ctx, nil, "acme", "taken", events(1, false))
	if err != nil {
		t.Fatal(err)
	}
	sum, outs := l.restore(t, f, 3)
	status := map[string]string{}
	for _, o := range outs {
		status[strings.TrimSuffix(strings.TrimPrefix(o.Key, "archive/v1/acme/"), ".json")] = o.Status
	}
	tests := []struct{ id, status string }{
		{"honest", restore.Restored}, {"output", restore.Refused}, {"payload", restore.Refused},
		{"dropped", restore.Refused}, {"other", restore.Refused}, {"taken", restore.Conflicted},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			if status[tc.id] != tc.status {
				t.Fatalf("status %q, want %q (%+v)", status[tc.id], tc.status, sum.Problems)
			}
			rs, _, err := f.receipts.Chain(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			switch tc.status {
			case restore.Refused:
				if len(rs) != 0 {
					t.Fatalf("%d receipts of a refused case written", len(rs))
				}
			case restore.Conflicted:
				if len(rs) != len(mine.Receipts) || rs[len(rs)-1].Hash != mine.Receipt.Hash {
					t.Fatal("a conflicting case was overwritten")
				}
			}
		})
	}
	check(t, f, l.verifiedLog(t), map[string][]*receipt.Receipt{"honest": want["honest"]})
	if _, err := f.blobs.Blob(ctx, want["payload"][1].OutputHash); !errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("a refused case's payload was written: %v", err)
	}
	if sum.OK() || sum.Refused != 4 || sum.Conflict != 1 || sum.Restored != 1 {
		t.Fatalf("summary: %s", sum.String())
	}
}

// TestRestoreAtScale (opt-in: KNHK_RESTORE_SCALE=N) puts N archive objects
// of one signed checkpoint straight into a bucket, built as the archiver
// builds them (archive.New over the log's inclusion proofs), restores them
// into a fresh endpoint and logs the time: the RTO measurement at sizes the
// archiver would take too long to feed in a test.
func TestRestoreAtScale(t *testing.T) {
	v := os.Getenv("KNHK_RESTORE_SCALE")
	if v == "" {
		t.Skip("set KNHK_RESTORE_SCALE=N to restore N cases")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("KNHK_RESTORE_SCALE=%q", v)
	}
	ctx := context.Background()
	l := newLive(t)
	pub, _ := l.key.PublicKey(ctx)
	chains := map[string][]*receipt.Receipt{}
	var heads []merkle.Head
	for i := range n {
		id := fmt.Sprintf("scale-%06d", i)
		var rs []*receipt.Receipt
		var prev *receipt.Receipt
		for _, p := range events(3, false) {
			r, err := receipt.New(prev, "acme", id, p.Event)
			if err != nil {
				t.Fatal(err)
			}
			rs, prev = append(rs, r), r
		}
		chains[id] = rs
		heads = append(heads, merkle.Head{Tenant: "acme", CaseID: id, Seq: prev.Seq, Hash: prev.Hash})
	}
	lg, err := checkpoint.VerifyLog(nil, pub)
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := lg.Append(ctx, heads, "2026-03-01T12:00:00Z", t0, l.key)
	if err != nil {
		t.Fatal(err)
	}
	lg.Add(e)
	for id, rs := range chains {
		p, th, err := lg.Proof(lg.Case(id)[0])
		if err != nil {
			t.Fatal(err)
		}
		a, err := archive.New(rs, nil, p, th, pub)
		if err != nil {
			t.Fatal(err)
		}
		data, err := archive.Encode(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.bucket.Put(ctx, archive.Key("acme", id), archive.ContentType, data); err != nil {
			t.Fatal(err)
		}
	}
	f := newFresh(t)
	sum, _, err := Run(ctx, Deps{Source: l.bucket, Target: f.receipts, Blobs: f.blobs, Key: pub, Log: lg, Workers: 8})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Restored != n || !sum.OK() {
		t.Fatalf("restore: %s", sum.String())
	}
	t.Logf("restore of %d cases: %s", n, sum.String())
	check(t, f, lg, map[string][]*receipt.Receipt{"scale-000000": chains["scale-000000"], fmt.Sprintf("scale-%06d", n-1): chains[fmt.Sprintf("scale-%06d", n-1)]})
}

// payloadBucket creates a plain bucket for detached payloads, as the
// stack's payloads bucket is.
func payloadBucket(t testing.TB, cfg aws.Config, name string) *objects.Bucket {
	t.Helper()
	c := objects.NewClient(cfg)
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	return objects.New(c, name)
}
