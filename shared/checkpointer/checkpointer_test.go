package checkpointer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
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

var tableSeq atomic.Int64

// env is one test's tables on the local endpoint and a checkpointer over
// them.
type env struct {
	db       *dynamodb.Client
	receipts *store.Receipts
	cases    *store.Cases
	findings *store.Findings
	log      *store.Checkpoints
	key      *signer.Local
	alerts   *alerts
	cp       *Checkpointer
	rt, ct   string
}

func (e *env) logTable() string { return e.ct }

func sAV(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	cfg, err := endpoint.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	n := tableSeq.Add(1)
	rt, st, ct := fmt.Sprintf("receipts-%d", n), fmt.Sprintf("state-%d", n), fmt.Sprintf("checkpoints-%d", n)
	if err := store.CreateTables(ctx, db, rt, st); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateCheckpointsTable(ctx, db, ct); err != nil {
		t.Fatal(err)
	}
	key, err := signer.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, receipts: store.NewReceipts(db, rt), cases: store.NewCases(db, st), findings: store.NewFindings(db, st),
		log: store.NewCheckpoints(db, ct), key: key, alerts: &alerts{}, rt: rt, ct: ct}
	e.cp, err = New(Deps{Log: e.log, Leases: store.NewLeases(db, ct), Cases: e.cases, Chains: e.receipts, Findings: e.findings, Alerts: e.alerts, Signer: key, Out: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func event(i int) history.Event {
	if i == 0 {
		return history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{"n":1}`),
			Genesis: &history.Genesis{Tenant: "acme", Namespace: "ns", Workflow: "wf", Version: "1",
				DescriptorHash: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}}
	}
	return history.Event{Type: history.TaskCompleted, Task: "/do/0/step", Output: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
}

// grow appends receipts up to seq to a case and sets its watermark there,
// as the verifier does once it verified them.
func (e *env) grow(t *testing.T, caseID string, seq int) []*receipt.Receipt {
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
	for i := len(rs); i <= seq; i++ {
		a, err := e.receipts.AppendExact(ctx, prev, "acme", caseID, event(i))
		if err != nil {
			t.Fatal(err)
		}
		prev = a.Receipt
		rs = append(rs, prev)
	}
	e.watermark(t, caseID, prev)
	return rs
}

func (e *env) watermark(t *testing.T, caseID string, r *receipt.Receipt) {
	t.Helper()
	if err := e.cases.SetWatermarks(context.Background(), map[string]receipt.Watermark{caseID: {Seq: r.Seq, Hash: r.Hash}}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) run(t *testing.T) Result {
	t.Helper()
	res, err := e.cp.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (e *env) verifiedLog(t *testing.T) *checkpoint.Log {
	t.Helper()
	stored, err := e.log.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := e.key.PublicKey(context.Background())
	l, err := checkpoint.VerifyLog(stored.Entries, pub)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func refusedCases(res Result) []string {
	var out []string
	for _, f := range res.Refused {
		out = append(out, f.CaseID)
	}
	slices.Sort(out)
	return out
}

// The attacks of a writer with table access, each against a case that was
// signed before (or verified, not yet signed), beside cases that advance
// honestly: only the honest heads are signed; each attacked case is a
// recorded finding and one alert; the log stays verifiable append-only.
func TestCheckpointOnlyExtendsVerifiedHistory(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, c := range []string{"good", "rewritten", "truncated"} {
		e.grow(t, c, 4)
	}
	res := e.run(t)
	if res.Signed != 3 || len(res.Refused) != 0 || res.Checkpoint == nil || res.Checkpoint.Seq != 0 {
		t.Fatalf("first run: %+v", res)
	}
	if again := e.run(t); again.Signed != 0 || again.Checkpoint != nil || again.Unchanged != 3 {
		t.Fatalf("a run without progress signed: %+v", again)
	}

	// good advances honestly.
	e.grow(t, "good", 7)
	// rewritten: the whole chain rewritten consistently (every hash
	// recomputed), then extended, and the watermark moved to the new head.
	var prev *receipt.Receipt
	for i := 0; i <= 5; i++ {
		ev := event(i)
		if i > 0 {
			ev.Output = json.RawMessage(fmt.Sprintf(`{"i":%d,"forged":true}`, i))
		}
		r, err := receipt.New(prev, "acme", "rewritten", ev)
		if err != nil {
			t.Fatal(err)
		}
		it, _ := store.Item(r)
		if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(e.rt), Item: it}); err != nil {
			t.Fatal(err)
		}
		prev = r
	}
	e.watermark(t, "rewritten", prev)
	// truncated: advanced and verified to seq 6, then its tail deleted
	// before the checkpointer ran.
	rs := e.grow(t, "truncated", 6)
	for _, seq := range []int64{5, 6} {
		if _, err := e.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(e.rt), Key: receiptKey(rs[seq])}); err != nil {
			t.Fatal(err)
		}
	}
	// new-tampered: verified, then a receipt changed in place.
	nt := e.grow(t, "new-tampered", 3)
	forged := *nt[2]
	forged.Task = "/do/9/refund"
	it, _ := store.Item(&forged)
	if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(e.rt), Item: it}); err != nil {
		t.Fatal(err)
	}

	res = e.run(t)
	if res.Signed != 1 || res.Checkpoint == nil || res.Checkpoint.Seq != 1 {
		t.Fatalf("second run: %+v", res)
	}
	if got := refusedCases(res); !slices.Equal(got, []string{"new-tampered", "rewritten", "truncated"}) {
		t.Fatalf("refused %v, want the three attacked cases: %+v", got, res.Refused)
	}
	for _, f := range res.Refused {
		if f.Kind != receipt.CheckpointRefused || f.Detail == "" {
			t.Errorf("refusal %+v", f)
		}
		recorded, err := e.findings.Case(ctx, f.CaseID)
		if err != nil || len(recorded) != 1 || recorded[0].Kind != receipt.CheckpointRefused {
			t.Errorf("%s: recorded findings %v %v", f.CaseID, recorded, err)
		}
		t.Logf("refused %s: %s", f.CaseID, f.Detail)
	}
	if len(e.alerts.subjects) != 3 {
		t.Errorf("alerts %v, want one per refused case", e.alerts.subjects)
	}
	l := e.verifiedLog(t)
	if last, _ := l.Last("good"); last.Seq != 7 {
		t.Errorf("good signed at %d, want 7", last.Seq)
	}
	for _, c := range []string{"rewritten", "truncated"} {
		if last, _ := l.Last(c); last.Seq != 4 {
			t.Errorf("%s: signed head moved to %d", c, last.Seq)
		}
	}
	if _, ok := l.Last("new-tampered"); ok {
		t.Error("the tampered new case was signed")
	}

	// A refused case stays refused once its chain looks right again: its
	// finding is open. No second alert.
	e.grow(t, "new-tampered", 4)
	res = e.run(t)
	if !slices.Contains(refusedCases(res), "new-tampered") || len(e.alerts.subjects) != 3 {
		t.Fatalf("case with an open finding: %+v, alerts %v", res, e.alerts.subjects)
	}
}

func receiptKey(r *receipt.Receipt) map[string]types.AttributeValue {
	it, _ := store.Item(r)
	return map[string]types.AttributeValue{receipt.AttrCase: it[receipt.AttrCase], receipt.AttrSeq: it[receipt.AttrSeq]}
}

// A run that finds the lease held does nothing; two runs at once sign at
// most one checkpoint at a position.
func TestLeaseExcludesOverlappingRuns(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.grow(t, "a", 2)
	leases := store.NewLeases(e.db, e.ct)
	ok, err := leases.Acquire(ctx, FunctionName, "other-run", time.Minute)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	if res := e.run(t); !res.Busy || res.Checkpoint != nil {
		t.Fatalf("run under a held lease: %+v", res)
	}
	if err := leases.Release(ctx, FunctionName, "other-run"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]Result, 4)
	for i := range results {
		wg.Go(func() {
			results[i], _ = e.cp.Run(ctx)
		})
	}
	wg.Wait()
	signed := 0
	for _, r := range results {
		if r.Checkpoint != nil {
			signed++
		}
	}
	l := e.verifiedLog(t)
	if signed != 1 || len(l.Entries()) != 1 {
		t.Fatalf("overlapping runs signed %d checkpoints, log holds %d: %+v", signed, len(l.Entries()), results)
	}
}

// The stored log is checked before anything is signed: a deleted
// checkpoint stops the checkpointer.
func TestBrokenLogStopsSigning(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 3 {
		e.grow(t, "a", 2+i)
		e.run(t)
	}
	if _, err := e.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(e.logTable()),
		Key: map[string]types.AttributeValue{"pk": sAV(store.CheckpointPK), "sk": sAV(fmt.Sprintf("%020d", 1))}}); err != nil {
		t.Fatal(err)
	}
	e.grow(t, "a", 6)
	if _, err := e.cp.Run(ctx); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("run over a broken log: %v", err)
	}
	if len(e.alerts.subjects) != 1 {
		t.Errorf("alerts %v", e.alerts.subjects)
	}
}
