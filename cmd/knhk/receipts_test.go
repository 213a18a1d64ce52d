package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/store"
)

// run resets every flag to its default (flag values live in package
// variables and would leak from one in-process run to the next) and runs
// the CLI.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	resetFlags()
	return runRoot(t, args...)
}

// resetFlags sets every flag of the CLI back to its default.
func resetFlags() {
	var reset func(c *cobra.Command)
	reset = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if sv, ok := f.Value.(pflag.SliceValue); ok {
					_ = sv.Replace(nil)
				} else {
					_ = f.Value.Set(f.DefValue)
				}
				f.Changed = false
			})
		}
		for _, sub := range c.Commands() {
			reset(sub)
		}
	}
	reset(root)
}

func writeEvents(t *testing.T, dir string, n int) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	evs := []history.Event{{Type: history.CaseStarted, Input: json.RawMessage(`{"order":"A-1"}`), Started: t0,
		Genesis: &history.Genesis{Namespace: "shop", Workflow: "order", Version: "1.0.0", DescriptorHash: strings.Repeat("ab", 32)}}}
	for i := 1; i < n; i++ {
		evs = append(evs, history.Event{Type: history.TaskCompleted, Task: fmt.Sprintf("/do/%d/step", i),
			Output: json.RawMessage(fmt.Sprintf(`{"step":%d}`, i)), Started: t0, Ended: t0.Add(time.Second)})
	}
	for _, e := range evs {
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type verifyReport struct {
	Intact   bool              `json:"intact"`
	Receipts int               `json:"receipts"`
	Findings []receipt.Finding `json:"findings"`
}

func TestChainAndVerifyFile(t *testing.T) {
	dir := t.TempDir()
	events := writeEvents(t, dir, 6)
	out, errOut, code := run(t, "receipts", "chain", "--events", events, "--tenant", "acme", "--case", "c-1")
	if code != 0 {
		t.Fatalf("chain: %d %s", code, errOut)
	}
	file := filepath.Join(dir, "receipts.jsonl")
	if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = run(t, "verify", "--file", file)
	var rep verifyReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || !rep.Intact || rep.Receipts != 6 || len(rep.Findings) != 0 {
		t.Fatalf("verify intact: %d %s %s", code, out, errOut)
	}

	cases := map[string]func(string) string{
		"byte changed": func(s string) string { return strings.Replace(s, `"step":3`, `"step":4`, 1) },
		"line deleted": func(s string) string {
			ls := strings.SplitAfter(s, "\n")
			return strings.Join(append(ls[:2], ls[3:]...), "")
		},
		"not a receipt": func(s string) string { return s + "{\"v\":1}\n" },
	}
	want := map[string]receipt.Kind{"byte changed": receipt.HashMismatch, "line deleted": receipt.Gap, "not a receipt": receipt.Malformed}
	for name, tamper := range cases {
		orig, _ := os.ReadFile(file)
		bad := filepath.Join(dir, "bad.jsonl")
		if err := os.WriteFile(bad, []byte(tamper(string(orig))), 0o600); err != nil {
			t.Fatal(err)
		}
		out, _, code := run(t, "verify", "--file", bad)
		rep = verifyReport{}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitTampered || rep.Intact || len(rep.Findings) == 0 || rep.Findings[0].Kind != want[name] {
			t.Errorf("%s: exit %d, report %s", name, code, out)
		}
	}
	if _, _, code := run(t, "verify", "--file", filepath.Join(dir, "missing")); code != 2 {
		t.Errorf("missing file: exit %d", code)
	}
	if _, _, code := run(t, "verify"); code != 2 {
		t.Errorf("no source: exit %d", code)
	}
}

// The deployed path end to end on the local endpoint: append, checkpoint,
// export a bundle, verify it offline, then rewrite the chain.
func TestCheckpointAndProofOnLocalEndpoint(t *testing.T) {
	ctx, db, dir, outputs := cliStack(t)
	cases := store.NewCases(db, "state")
	write := func(caseID, salt string, n int) {
		var prev *receipt.Receipt
		for i := 0; i < n; i++ {
			ev := history.Event{Type: history.TaskCompleted, Task: "/do/0/a", Output: json.RawMessage(fmt.Sprintf(`{"i":%d,"s":%q}`, i, salt))}
			if i == 0 {
				ev = history.Event{Type: history.CaseStarted, Genesis: &history.Genesis{Tenant: "acme", Workflow: "wf", Version: "1", DescriptorHash: strings.Repeat("cd", 32)}}
			}
			if prev == nil && i > 0 {
				t.Fatal("no genesis")
			}
			r, err := receipt.New(prev, "acme", caseID, ev)
			if err != nil {
				t.Fatal(err)
			}
			item, _ := store.Item(r)
			if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("receipts"), Item: item}); err != nil {
				t.Fatal(err)
			}
			prev = r
		}
		// The verifier's watermark: what the checkpointer may sign.
		if err := cases.SetWatermarks(ctx, map[string]receipt.Watermark{caseID: {Seq: prev.Seq, Hash: prev.Hash}}); err != nil {
			t.Fatal(err)
		}
	}
	write("case-1", "", 5)
	write("case-2", "", 5)

	out, errOut, code := run(t, "--outputs", outputs, "checkpoint", "create")
	if code != 0 {
		t.Fatalf("checkpoint create: %d %s", code, errOut)
	}
	if !strings.Contains(out, `"size": 2`) || !strings.Contains(out, `"signed": 2`) {
		t.Fatalf("tree head: %s", out)
	}
	bundleFile, pemFile := filepath.Join(dir, "case-1.bundle.json"), filepath.Join(dir, "key.pem")
	if _, errOut, code := run(t, "--outputs", outputs, "proof", "export", "--case", "case-1", "--out", bundleFile, "--public-key-out", pemFile); code != 0 {
		t.Fatalf("proof export: %d %s", code, errOut)
	}
	if out, _, code := run(t, "proof", "verify", bundleFile, "--public-key", pemFile); code != 0 || !strings.Contains(out, `"verified": true`) {
		t.Fatalf("proof verify: %d %s", code, out)
	}
	data, _ := os.ReadFile(bundleFile)
	bad := filepath.Join(dir, "bad.bundle.json")
	tampered := bytes.Replace(data, []byte(`{"i":3,`), []byte(`{"i":9,`), 1)
	if bytes.Equal(tampered, data) {
		t.Fatal("tamper did not apply")
	}
	if err := os.WriteFile(bad, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, code := run(t, "proof", "verify", bad, "--public-key", pemFile); code != exitTampered || !strings.Contains(out, `"verified": false`) {
		t.Fatalf("tampered bundle: %d %s", code, out)
	}
	if out, errOut, code := run(t, "--outputs", outputs, "verify", "--case", "case-1"); code != 0 || !strings.Contains(out, "signatures verified") {
		t.Fatalf("verify case: %d %s %s", code, out, errOut)
	}
	logFile := filepath.Join(dir, "log.json")
	if _, errOut, code := run(t, "--outputs", outputs, "checkpoint", "export", "--out", logFile); code != 0 {
		t.Fatalf("checkpoint export: %d %s", code, errOut)
	}
	if out, _, code := run(t, "checkpoint", "verify", "--file", logFile, "--public-key", pemFile); code != 0 || !strings.Contains(out, `"verified": true`) {
		t.Fatalf("checkpoint verify: %d %s", code, out)
	}
	// A consistent rewrite, longer than the signed chain, passes the chain
	// check but not the checkpoint; running the checkpointer does not
	// launder it: the head is refused and recorded.
	write("case-1", "rewritten", 7)
	out, _, code = run(t, "--outputs", outputs, "verify", "--case", "case-1")
	if code != exitTampered || !strings.Contains(out, string(receipt.NotCheckpointed)) {
		t.Fatalf("rewritten case: %d %s", code, out)
	}
	if out, _, code := run(t, "--outputs", outputs, "checkpoint", "create"); code != exitTampered || !strings.Contains(out, string(receipt.CheckpointRefused)) {
		t.Fatalf("checkpoint over a rewrite: %d %s", code, out)
	}
	out, _, code = run(t, "--outputs", outputs, "verify", "--case", "case-1")
	if code != exitTampered || !strings.Contains(out, string(receipt.CheckpointRefused)) || !strings.Contains(out, "checkpoint 0 of 1") {
		t.Fatalf("rewritten case after a checkpoint run: %d %s", code, out)
	}
}

// cliStack starts a local endpoint with the receipts, state and
// checkpoints tables, a signing key and an alerts topic, and points the
// CLI's environment at them.
func cliStack(t *testing.T) (ctx context.Context, db *dynamodb.Client, dir, outputs string) {
	t.Helper()
	ep := localaws.StartT(t)
	ctx = context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db = dynamodb.NewFromConfig(cfg)
	if err := store.CreateTables(ctx, db, "receipts", "state"); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateCheckpointsTable(ctx, db, "checkpoints"); err != nil {
		t.Fatal(err)
	}
	topic, err := sns.NewFromConfig(cfg).CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("alerts")})
	if err != nil {
		t.Fatal(err)
	}
	key, err := kms.NewFromConfig(cfg).CreateKey(ctx, &kms.CreateKeyInput{KeySpec: kmstypes.KeySpecEccNistP256, KeyUsage: kmstypes.KeyUsageTypeSignVerify})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": ep.URL, "AWS_REGION": localaws.Region, "AWS_ACCESS_KEY_ID": "test",
		"AWS_SECRET_ACCESS_KEY": "test", "KNHK_RECEIPTS_TABLE": "receipts", "KNHK_STATE_TABLE": "state",
		"KNHK_CHECKPOINT_KEY_ID": aws.ToString(key.KeyMetadata.KeyId), "KNHK_CHECKPOINTS_TABLE": "checkpoints",
		"KNHK_ALERTS_TOPIC_ARN": aws.ToString(topic.TopicArn)} {
		t.Setenv(k, v)
	}
	dir = t.TempDir()
	outputs = filepath.Join(dir, "none.json")
	return ctx, db, dir, outputs
}
