package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/shared/checkpointer"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/signer"
	"github.com/knhk/knhk/shared/store"
)

// runCheckpointer invokes the deployed checkpointer function once, as its
// schedule does, retrying while a scheduled run holds the lease.
func runCheckpointer(t *testing.T, ctx context.Context) checkpointer.Result {
	t.Helper()
	name := ""
	for n := range suite.env.Lambda.Stack().Functions {
		if strings.HasSuffix(n, "-"+checkpointer.FunctionName) {
			name = n
		}
	}
	if name == "" {
		t.Fatalf("the deployed stack has no checkpointer function: %v", suite.env.Lambda.Stack().Notes)
	}
	for {
		out, err := suite.env.Lambda.Invoke(ctx, name, []byte(`{"source":"aws.events","detail-type":"Scheduled Event"}`))
		if err != nil {
			t.Fatalf("invoke %s: %v", name, err)
		}
		if out.FunctionError != "" {
			t.Fatalf("checkpointer failed: %s %s", out.Reason, out.Payload)
		}
		var r checkpointer.Result
		if err := json.Unmarshal(out.Payload, &r); err != nil {
			t.Fatalf("checkpointer result %s: %v", out.Payload, err)
		}
		if !r.Busy {
			return r
		}
		select {
		case <-ctx.Done():
			t.Fatal("checkpointer lease never free")
		case <-time.After(time.Second):
		}
	}
}

// knhkCLI runs the operator CLI against the self-contained stack and
// returns its output and exit code.
func knhkCLI(t *testing.T, ctx context.Context, args ...string) (string, int) {
	t.Helper()
	root, err := localaws.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "build", "host", "knhk"), append([]string{"--outputs", filepath.Join(suite.tmp, "outputs.json")}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL="+suite.endpoint, "AWS_REGION="+localaws.Region,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String() + errOut.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("knhk %v: %v", args, err)
	}
	return out.String(), 0
}

// awaitWatermark waits until the verifier verified a case up to seq.
func awaitWatermark(t *testing.T, ctx context.Context, id string, seq int64) {
	t.Helper()
	err := poll(ctx, 500*time.Millisecond, func() (bool, error) {
		ws, err := suite.cases.Watermarks(ctx, []string{id})
		return ws[id].Seq >= seq, err
	})
	if err != nil {
		t.Fatalf("case %s never verified to seq %d: %v", id, seq, err)
	}
}

func awaitFinding(t *testing.T, ctx context.Context, id string, kind receipt.Kind) {
	t.Helper()
	var fs []receipt.Finding
	err := poll(ctx, 500*time.Millisecond, func() (bool, error) {
		var err error
		fs, err = suite.findings.Case(ctx, id)
		return slices.ContainsFunc(fs, func(f receipt.Finding) bool { return f.Kind == kind }), err
	})
	if err != nil {
		t.Fatalf("case %s: no %s finding (have %v): %v", id, kind, fs, err)
	}
}

func putReceipt(t *testing.T, ctx context.Context, r *receipt.Receipt) {
	t.Helper()
	it, err := store.Item(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := suite.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(suite.res.ReceiptsTable), Item: it}); err != nil {
		t.Fatal(err)
	}
}

func loadLog(t *testing.T, ctx context.Context) (*checkpoint.Log, error) {
	t.Helper()
	stored, err := store.NewCheckpoints(suite.db, suite.res.CheckpointsTable).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signer.NewKMS(kms.NewFromConfig(suite.cfg), suite.res.CheckpointKeyID).PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return checkpoint.VerifyLog(stored.Entries, pub)
}

// TestCheckpointAttacks reproduces, against the deployed stack, the attacks
// of a writer with access to the tables: (a) a consistent rewrite of a
// signed chain, extended past the signed head; (b) a signed chain's tail
// deleted; (d) a correctly hashed receipt after the terminal one; and (c)
// a checkpoint deleted from the log. None is signed by the deployed
// checkpointer; each is a finding and `knhk verify --case` exits 3 naming
// it, while good cases beside them are checkpointed and verify.
func TestCheckpointAttacks(t *testing.T) {
	if suite.external || suite.env == nil {
		t.Skip("invokes the checkpointer through the local Lambda service")
	}
	noteFailure(t)
	ctx := ctxFor(t, 240*time.Second)
	in := map[string]any{"qty": 2, "unitPrice": 10}
	good := newCase("e2e", "five-tasks", "ckpt-good", in)
	rewritten := newCase("e2e", "five-tasks", "ckpt-rewritten", in)
	truncated := newCase("e2e", "five-tasks", "ckpt-truncated", in)
	ended := newCase("e2e", "five-tasks", "ckpt-after-terminal", in)
	first := []localrun.Case{good, rewritten, truncated, ended}
	if err := localrun.Submit(ctx, suite.work, first); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, first)
	chains := map[string][]*receipt.Receipt{}
	for _, c := range first {
		chains[c.ID] = readChain(t, ctx, c.ID)
		awaitWatermark(t, ctx, c.ID, int64(len(chains[c.ID])-1))
	}
	r := runCheckpointer(t, ctx)
	// Cases that earlier scenarios tampered with (TestArchive deletes an
	// item of an unarchived case) are refused too; none of these may be.
	mine := map[string]bool{}
	for _, c := range first {
		mine[c.ID] = true
	}
	for _, f := range r.Refused {
		if mine[f.CaseID] {
			t.Fatalf("first checkpoint refused %s before any attack: %+v", f.CaseID, f)
		}
	}
	if r.Checkpoint == nil || r.Signed < len(first) {
		t.Fatalf("first checkpoint: %+v", r)
	}
	for _, c := range first {
		if out, code := knhkCLI(t, ctx, "verify", "--case", c.ID); code != 0 || !strings.Contains(out, "signatures verified") {
			t.Fatalf("verify --case %s before the attacks: %d %s", c.ID, code, out)
		}
	}

	// (a) Rewrite every receipt consistently and extend the chain by one.
	rs := chains[rewritten.ID]
	var prev *receipt.Receipt
	for i, orig := range rs {
		ev := history.Event{Type: orig.Type, Task: orig.Task, Attempt: orig.Attempt, Output: json.RawMessage(fmt.Sprintf(`{"forged":%d}`, i))}
		if i == 0 {
			ev = history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{"qty":999}`),
				Genesis: &history.Genesis{Tenant: orig.Genesis.Tenant, Namespace: orig.Genesis.Namespace, Workflow: orig.Genesis.Workflow,
					Version: orig.Genesis.Version, DescriptorHash: orig.Genesis.DescriptorHash}}
		}
		if ev.Type.Terminal() {
			ev.Type = history.TaskCompleted
		}
		f, err := receipt.New(prev, orig.Tenant, orig.CaseID, ev)
		if err != nil {
			t.Fatal(err)
		}
		putReceipt(t, ctx, f)
		prev = f
	}
	extra, err := receipt.New(prev, prev.Tenant, prev.CaseID, history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{"forged":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	putReceipt(t, ctx, extra)
	// (b) Delete the last two receipts of a signed chain (the segment that
	// holds them rewritten without them).
	ts := chains[truncated.ID]
	cut := dropTail(t, ctx, ts, 2)
	// (d) A correctly hashed and linked second case.completed.
	es := chains[ended.ID]
	second, err := receipt.New(es[len(es)-1], es[0].Tenant, ended.ID, history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{"again":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	putReceipt(t, ctx, second)
	awaitWatermark(t, ctx, rewritten.ID, extra.Seq)
	awaitWatermark(t, ctx, ended.ID, second.Seq)
	awaitFinding(t, ctx, ended.ID, receipt.AfterTerminal)
	awaitFinding(t, ctx, truncated.ID, cut)

	// A good case beside the attacks.
	late := newCase("e2e", "five-tasks", "ckpt-late", in)
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{late}); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, []localrun.Case{late})
	lateChain := readChain(t, ctx, late.ID)
	awaitWatermark(t, ctx, late.ID, int64(len(lateChain)-1))

	r = runCheckpointer(t, ctx)
	if r.Checkpoint == nil || r.Signed < 1 {
		t.Fatalf("second checkpoint did not sign the late good case: %+v", r)
	}
	refused := map[string]bool{}
	for _, f := range r.Refused {
		refused[f.CaseID] = true
		t.Logf("refused %s: %s", f.CaseID, f.Detail)
	}
	if !refused[rewritten.ID] || !refused[ended.ID] || refused[late.ID] || refused[good.ID] {
		t.Fatalf("refused %v, want the rewritten and the after-terminal cases only", refused)
	}
	l, err := loadLog(t, ctx)
	if err != nil {
		t.Fatalf("log after the attacks: %v", err)
	}
	for id, seq := range map[string]int64{rewritten.ID: rs[len(rs)-1].Seq, truncated.ID: ts[len(ts)-1].Seq, ended.ID: es[len(es)-1].Seq} {
		if last, _ := l.Last(id); last.Seq != seq {
			t.Errorf("case %s: signed head moved to seq %d, want %d", id, last.Seq, seq)
		}
	}
	awaitFinding(t, ctx, rewritten.ID, receipt.CheckpointRefused)
	for id, want := range map[string][]receipt.Kind{
		rewritten.ID: {receipt.NotCheckpointed, receipt.CheckpointRefused},
		truncated.ID: {receipt.NotCheckpointed, cut},
		ended.ID:     {receipt.AfterTerminal},
	} {
		out, code := knhkCLI(t, ctx, "verify", "--case", id)
		if code != 3 {
			t.Errorf("verify --case %s: exit %d, want 3: %s", id, code, out)
		}
		for _, k := range want {
			if !strings.Contains(out, string(k)) {
				t.Errorf("verify --case %s does not name %s: %s", id, k, out)
			}
		}
		if out, code := knhkCLI(t, ctx, "case", "show", id); code != 3 || !strings.Contains(out, "recorded") {
			t.Errorf("case show %s: exit %d: %s", id, code, out)
		}
	}
	for _, c := range []localrun.Case{good, late} {
		if out, code := knhkCLI(t, ctx, "verify", "--case", c.ID); code != 0 {
			t.Errorf("verify --case %s (good): exit %d: %s", c.ID, code, out)
		}
	}
	bundleFile := filepath.Join(t.TempDir(), "late.bundle.json")
	pemFile := filepath.Join(t.TempDir(), "key.pem")
	if out, code := knhkCLI(t, ctx, "proof", "export", "--case", late.ID, "--out", bundleFile, "--public-key-out", pemFile); code != 0 {
		t.Fatalf("proof export: %d %s", code, out)
	}
	if out, code := knhkCLI(t, ctx, "proof", "verify", bundleFile, "--public-key", pemFile); code != 0 {
		t.Fatalf("proof verify: %d %s", code, out)
	}

	// (c) The local endpoint does not evaluate IAM or the table's resource
	// policy, so the executor's credentials cannot be shown to fail here
	// (infra's TestOnlyTheCheckpointerWritesCheckpoints pins the policy).
	// What the local stack shows: a deleted checkpoint breaks the log, and
	// the cases it covered are not reported "not yet checkpointed".
	deleted, err := suite.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(suite.res.CheckpointsTable),
		Key: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: store.CheckpointPK},
			"sk": &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("%020d", r.Checkpoint.Seq-1)}},
		ReturnValues: ddbtypes.ReturnValueAllOld})
	if err != nil {
		t.Fatal(err)
	}
	// Put it back afterwards: later scenarios (the README's) sign and
	// verify on the same log.
	t.Cleanup(func() {
		if _, err := suite.db.PutItem(context.WithoutCancel(ctx), &dynamodb.PutItemInput{TableName: aws.String(suite.res.CheckpointsTable), Item: deleted.Attributes}); err != nil {
			t.Errorf("restore the deleted checkpoint: %v", err)
		}
	})
	if _, err := loadLog(t, ctx); !errors.Is(err, checkpoint.ErrLog) {
		t.Fatalf("log with a deleted checkpoint: %v", err)
	}
	out, code := knhkCLI(t, ctx, "verify", "--case", good.ID)
	if code != 3 || strings.Contains(out, "not yet checkpointed") || !strings.Contains(out, "does not verify") {
		t.Errorf("verify --case after a checkpoint was deleted: exit %d: %s", code, out)
	}
	if out, code := knhkCLI(t, ctx, "checkpoint", "verify"); code != 3 {
		t.Errorf("checkpoint verify after a deletion: exit %d: %s", code, out)
	}
}
