package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/limits"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/secrets"
	"github.com/knhk/knhk/shared/store"
)

// deepJSON is a value nested n arrays deep.
func deepJSON(n int) json.RawMessage {
	return json.RawMessage(strings.Repeat("[", n) + "1" + strings.Repeat("]", n))
}

// TestDeepInputs sends start messages whose inputs nest 512 and 700 levels
// (what `knhk submit` refuses, sent straight to the queue) beside good cases:
// each deep case opens, ends at once with a case.faulted receipt naming the
// limit, its chain decodes and verifies, and the verifier records no finding
// for it; the good cases complete.
func TestDeepInputs(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 120*time.Second)
	var deep []localrun.Case
	for _, n := range []int{512, 700} {
		c := newCase("e2e", "five-tasks", fmt.Sprintf("deep-%d", n), nil)
		c.Input = deepJSON(n)
		body, _ := json.Marshal(message.Start{Kind: message.KindStart, Tenant: c.Tenant, IdempotencyKey: c.Key,
			Workflow: message.WorkflowRef{Namespace: c.Namespace, Name: c.Workflow}, Input: c.Input})
		var le *limits.Error
		if _, err := message.Admit(body); !errors.As(err, &le) || le.Reason != limits.TooDeep {
			t.Fatalf("submit would send a %d-deep input: %v", n, err)
		}
		deep = append(deep, c)
	}
	good := []localrun.Case{newCase("e2e", "five-tasks", "beside-deep", map[string]any{"qty": 2, "unitPrice": 5})}
	if err := localrun.Submit(ctx, suite.work, append(deep, good...)); err != nil {
		t.Fatal(err)
	}
	for _, o := range awaitAll(t, ctx, good) {
		output(t, readChain(t, ctx, o.Case.ID))
	}
	for _, c := range deep {
		var rs []*receipt.Receipt
		if err := poll(ctx, 500*time.Millisecond, func() (bool, error) {
			rs = readChain(t, ctx, c.ID)
			return len(rs) > 0 && rs[len(rs)-1].Type == history.CaseFaulted, nil
		}); err != nil {
			t.Fatalf("case %s never faulted (chain %v): %v", c.ID, types(rs), err)
		}
		last := rs[len(rs)-1]
		if len(rs) != 2 || last.Error.Status != 413 || !strings.Contains(last.Error.Detail, "over the limit of 64") || rs[0].Input != nil {
			t.Fatalf("case %s: %v, error %+v; want case.started without the input, then a 413 naming the limit", c.ID, types(rs), last.Error)
		}
	}
	// The verifier read the same receipts: it must not cry tamper.
	time.Sleep(3 * time.Second)
	fs, err := suite.findings.Recent(ctx, time.Now().Add(-10*time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		for _, c := range deep {
			if f.CaseID == c.ID {
				t.Fatalf("false integrity finding for a deep input: %+v", f)
			}
		}
	}
}

// TestSecretsNeverInReceipts runs a workflow that puts a credential in a
// header, the query string, JSON body strings and its own output, then
// scans every attribute of every item of the receipts table (and the state
// table's blobs) for the credential's values.
func TestSecretsNeverInReceipts(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 120*time.Second)
	token, password := "tok-"+suite.run+"-7c1d", "pw-"+suite.run+"-e55a"
	seedSecret(t, ctx, "e2eCredential", map[string]string{"token": token, "password": password})
	cases := []localrun.Case{
		newCase("e2e", "secret-calls", "secrets-1", map[string]any{}),
		newCase("e2e", "secret-calls", "secrets-2", map[string]any{"note": "second"}),
		newCase("e2e", "five-tasks", "beside-secrets", map[string]any{"qty": 1, "unitPrice": 3}),
	}
	if err := localrun.Submit(ctx, suite.work, cases); err != nil {
		t.Fatal(err)
	}
	for _, o := range awaitAll(t, ctx, cases) {
		rs := readChain(t, ctx, o.Case.ID)
		out := output(t, rs)
		if o.Case.Workflow == "secret-calls" && !strings.Contains(out, `"status":200`) {
			t.Fatalf("secret-calls output %s: the call did not succeed", out)
		}
		if o.Case.Workflow == "secret-calls" && !strings.Contains(out, "[redacted]") {
			t.Fatalf("secret-calls output %s: nothing redacted", out)
		}
	}
	for _, table := range []string{suite.res.ReceiptsTable, suite.res.StateTable} {
		items := scanAll(t, ctx, table)
		for _, item := range items {
			for _, s := range []string{token, password} {
				if strings.Contains(item, s) {
					t.Fatalf("secret value %q found in table %s: %s", s, table, item)
				}
			}
		}
		t.Logf("scanned %d items of %s: no secret", len(items), table)
	}
}

func seedSecret(t *testing.T, ctx context.Context, name string, v any) {
	t.Helper()
	sm := secretsmanager.NewFromConfig(suite.cfg)
	raw, _ := json.Marshal(v)
	id := secrets.DefaultPrefix + name
	_, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: &id, SecretString: aws.String(string(raw))})
	var exists *smtypes.ResourceExistsException
	if errors.As(err, &exists) {
		_, err = sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: &id, SecretString: aws.String(string(raw))})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// scanAll reads every item of a table and flattens every attribute (names,
// strings, numbers, binaries, sets, maps and lists) into one string per item.
func scanAll(t *testing.T, ctx context.Context, table string) []string {
	t.Helper()
	var out []string
	p := dynamodb.NewScanPaginator(suite.db, &dynamodb.ScanInput{TableName: &table, ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			var b strings.Builder
			flattenItem(&b, &ddbtypes.AttributeValueMemberM{Value: it})
			out = append(out, b.String())
		}
	}
	return out
}

func flattenItem(b *strings.Builder, v ddbtypes.AttributeValue) {
	switch v := v.(type) {
	case *ddbtypes.AttributeValueMemberS:
		b.WriteString(v.Value)
	case *ddbtypes.AttributeValueMemberN:
		b.WriteString(v.Value)
	case *ddbtypes.AttributeValueMemberB:
		b.Write(v.Value)
	case *ddbtypes.AttributeValueMemberSS:
		b.WriteString(strings.Join(v.Value, "\x00"))
	case *ddbtypes.AttributeValueMemberNS:
		b.WriteString(strings.Join(v.Value, "\x00"))
	case *ddbtypes.AttributeValueMemberBS:
		for _, x := range v.Value {
			b.Write(x)
		}
	case *ddbtypes.AttributeValueMemberM:
		for k, x := range v.Value {
			b.WriteString(k + "=")
			flattenItem(b, x)
			b.WriteString("\x00")
		}
	case *ddbtypes.AttributeValueMemberL:
		for _, x := range v.Value {
			flattenItem(b, x)
			b.WriteString("\x00")
		}
	}
}

// TestOversizedInputByReference starts a case whose input makes the start
// message larger than the queue accepts: the queue refuses it inline, the
// input is uploaded to the payloads bucket as inputs/<sha256> and named by
// inputRef (what `knhk submit` does), the executor reads it from there (the
// state table holds no blob of it when the case starts), and the case completes with the input
// recorded by hash. A message from before the bucket, whose input is a
// state-table blob, still starts its case.
func TestOversizedInputByReference(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 120*time.Second)
	c := newCase("e2e", "five-tasks", "oversized", map[string]any{"qty": 3, "unitPrice": 7,
		"attachment": strings.Repeat("scanned-invoice ", 300<<10/16)})
	s := message.Start{Kind: message.KindStart, Tenant: c.Tenant, IdempotencyKey: c.Key,
		Workflow: message.WorkflowRef{Namespace: c.Namespace, Name: c.Workflow}, Input: c.Input}
	if err := suite.work.Send(ctx, queue.Message{Body: s, CaseID: c.ID}); err == nil {
		t.Fatalf("the queue accepted a %d-byte start message inline", len(c.Input))
	}
	if suite.res.PayloadBucket == "" {
		t.Fatal("the deployed stack has no payloads bucket output")
	}
	payloads := objects.NewPayloads(objects.New(objects.NewClient(suite.cfg), suite.res.PayloadBucket))
	if err := store.ByReference(ctx, payloads, &s); err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimPrefix(s.InputRef, "sha256:")
	if _, err := payloads.Blob(ctx, hash); err != nil {
		t.Fatalf("input not in s3://%s/%s: %v", suite.res.PayloadBucket, objects.InputKey(hash), err)
	}
	// Only the bucket holds it when the case starts (the receipts later
	// keep their own copy of a large genesis input).
	state := store.NewState(suite.db, suite.res.StateTable)
	if _, err := state.Blob(ctx, hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the bucket's input is also a state-table blob (%v)", err)
	}
	// An older message: the input as a state-table blob.
	old := newCase("e2e", "five-tasks", "oversized-blob", map[string]any{"qty": 3, "unitPrice": 7,
		"attachment": strings.Repeat("scanned-receipt ", 300<<10/16)})
	olds := message.Start{Kind: message.KindStart, Tenant: old.Tenant, IdempotencyKey: old.Key,
		Workflow: message.WorkflowRef{Namespace: old.Namespace, Name: old.Workflow}, Input: old.Input}
	if err := store.ByReference(ctx, state, &olds); err != nil {
		t.Fatal(err)
	}
	for _, m := range []queue.Message{{Body: s, CaseID: c.ID}, {Body: olds, CaseID: old.ID}} {
		if err := suite.work.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	outs := awaitAll(t, ctx, []localrun.Case{c, old})
	for i, ref := range []string{s.InputRef, olds.InputRef} {
		rs := readChain(t, ctx, outs[i].Case.ID)
		if out := output(t, rs); !strings.Contains(out, `"total":25`) {
			t.Fatalf("case %s output %s", outs[i].Case.ID, out)
		}
		if rs[0].InputHash != strings.TrimPrefix(ref, "sha256:") {
			t.Fatalf("genesis input hash %s, want the reference's %s", rs[0].InputHash, ref)
		}
	}
}
