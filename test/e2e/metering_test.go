package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/localstack/lambdasvc"
	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/localstack/otlpsink"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/store"
)

// TestReceiptUsageMatchesTheEndpoint runs cases (five set tasks; an HTTP
// call with a secret; the cross-border payment sample, a fork of calls that
// sends continuations) through the deployed stack and counts, for each, on the endpoint's side, the requests the
// deployed executor made for it: the endpoint's log of traced requests
// (localaws.EnvRequests), filtered to the traces the case's stored items
// name and to the executor's signing key, one per client call (a retried
// call's attempts share its span). What the receipts' usage says the case
// consumed (the SDK middleware's count, split per receipt) equals that count
// per service, DynamoDB's capacity as the endpoint reported it included;
// the chain's own writes, which the receipts cannot carry, are exactly the
// endpoint's successful PutItems on the receipts table, one per stored
// item. Calls made outside the case's messages (the invocation's own: the
// tuner overrides' read, the overhead write) are shared cost and left out,
// as the trace shows them.
func TestReceiptUsageMatchesTheEndpoint(t *testing.T) {
	if suite.requests == "" || suite.external {
		t.Skip("needs the self-contained stack's endpoint request log")
	}
	noteFailure(t)
	ctx := ctxFor(t, 180*time.Second)
	for _, c := range []localrun.Case{
		newCase("e2e", "five-tasks", "metered", map[string]any{"qty": 3, "unitPrice": 4}),
		newCase("e2e", "secret-calls", "metered", map[string]any{}),
		newCase("payments", "cross-border-payment", "metered", sampleInput(t, "cross-border-payment")),
	} {
		t.Run(c.Workflow, func(t *testing.T) { meteredLikeTheEndpoint(t, ctx, c) })
	}
}

func meteredLikeTheEndpoint(t *testing.T, ctx context.Context, c localrun.Case) {
	awaitAll(t, ctx, submit(t, ctx, c))
	rs := readChain(t, ctx, c.ID)
	items := caseItems(t, ctx, c.ID)
	traces := map[string]bool{}
	for _, it := range items {
		if tp, ok := it[store.AttrTraceParent].(*dbtypes.AttributeValueMemberS); ok {
			if p := strings.Split(tp.Value, "-"); len(p) == 4 {
				traces[p[1]] = true
			}
		}
	}
	if len(traces) == 0 {
		t.Fatalf("the case's %d items name no trace", len(items))
	}
	key := lambdasvc.FunctionAccessKey(deployedFunction(t, "executor"))
	var calls []localaws.Request
	err := poll(ctx, 250*time.Millisecond, func() (bool, error) {
		all, err := localaws.ReadRequests(suite.requests)
		if err != nil {
			return false, err
		}
		calls = executorCalls(all, traces, key)
		return len(chainWrites(calls)) >= len(items), nil
	})
	if err != nil {
		t.Fatalf("the endpoint logged %d of the case's %d item writes: %v", len(chainWrites(calls)), len(items), err)
	}
	// A call belongs to the case when it was made while one of its messages
	// was processed (under a "process" span); the invocation's own calls
	// (under the function's span: the read of the tuner's overrides, the
	// overhead write) are shared cost. The spans arrive in export batches: wait a
	// little for all of them, and count a span never exported as outside.
	spans := map[string]otlpsink.Span{}
	wait, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_ = poll(wait, 250*time.Millisecond, func() (bool, error) {
		all, err := otlpsink.Read(suite.spans)
		if err != nil {
			return false, err
		}
		for _, s := range all {
			spans[s.SpanID] = s
		}
		for _, r := range calls {
			if _, ok := spans[r.Span]; !ok {
				return false, nil
			}
		}
		return true, nil
	})
	var outside []localaws.Request
	calls, outside = byMessage(calls, spans)

	var want cost.Usage // the endpoint's count
	failedWrites := 0
	for _, r := range calls {
		if isChainWrite(r) {
			continue
		}
		service, op, _ := strings.Cut(r.Op, ".")
		switch {
		case strings.HasPrefix(service, "DynamoDB_"):
			want.DynamoRequests++
			switch op {
			case "GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems":
				want.ReadUnits += r.Units
			default:
				want.WriteUnits += r.Units
				if r.Status != 200 {
					failedWrites++
				}
			}
		case service == "AmazonSQS":
			want.SQSRequests++
		case service == "secretsmanager":
			want.SecretsRequests++
		case service == "TrentService" && (op == "Sign" || op == "Verify" || op == "GetPublicKey"):
			want.KMSAsymRequests++
		case service == "TrentService":
			want.KMSRequests++
		case strings.HasPrefix(r.Op, "sns "):
			want.SNSPublishes++
		case strings.HasPrefix(r.Op, "s3 "):
			want.S3Gets++
		default:
			t.Errorf("the executor called %s, which this test does not classify", r.Op)
		}
	}
	var got cost.Usage // the receipts' count
	for _, r := range rs {
		if r.Usage == nil {
			t.Fatalf("receipt %d records no usage", r.Seq)
		}
		got.Add(meter.Usage(*r.Usage))
	}
	for _, l := range []struct {
		name      string
		got, want float64
	}{
		{"DynamoDB requests", float64(got.DynamoRequests), float64(want.DynamoRequests)},
		{"DynamoDB read units", got.ReadUnits, want.ReadUnits},
		{"SQS requests", float64(got.SQSRequests), float64(want.SQSRequests)},
		{"SNS publishes", float64(got.SNSPublishes), float64(want.SNSPublishes)},
		{"Secrets Manager calls", float64(got.SecretsRequests), float64(want.SecretsRequests)},
		{"KMS requests", float64(got.KMSRequests), float64(want.KMSRequests)},
		{"KMS asymmetric requests", float64(got.KMSAsymRequests), float64(want.KMSAsymRequests)},
		{"S3 requests", float64(got.S3Puts + got.S3Gets), float64(want.S3Gets)},
	} {
		if l.got != l.want {
			t.Errorf("%s: receipts %v, endpoint %v", l.name, l.got, l.want)
		}
	}
	// A failed conditional write reports no capacity to the endpoint's
	// client; the meter charges at least one write unit for each.
	if failedWrites == 0 && got.WriteUnits != want.WriteUnits ||
		failedWrites > 0 && got.WriteUnits < want.WriteUnits+float64(failedWrites) {
		t.Errorf("DynamoDB write units: receipts %v, endpoint %v reported (%d failed writes)", got.WriteUnits, want.WriteUnits, failedWrites)
	}
	if n := len(chainWrites(calls)); n != len(items) {
		t.Errorf("chain writes: %d stored items, the endpoint served %d successful PutItems on the receipts table", len(items), n)
	}
	if t.Failed() {
		logCalls(t, calls, spans)
	}
	for _, r := range outside {
		t.Logf("shared, outside the case's messages: %s %s on %q, span %q", r.Span, r.Op, r.Table, spans[r.Span].Name)
	}
	t.Logf("case %s: %d receipts in %d items; receipts' usage %+v; endpoint %+v", c.ID, len(rs), len(items), got, want)
}

// executorCalls is the log's requests of traces signed with key, one per
// client call: the last attempt of each span, in the order first seen.
func executorCalls(all []localaws.Request, traces map[string]bool, key string) []localaws.Request {
	index := map[string]int{}
	var out []localaws.Request
	for _, r := range all {
		if !traces[r.Trace] || r.Key != key {
			continue
		}
		if i, ok := index[r.Span]; ok {
			out[i] = r
			continue
		}
		index[r.Span] = len(out)
		out = append(out, r)
	}
	return out
}

func isChainWrite(r localaws.Request) bool {
	return r.Op == "DynamoDB_20120810.PutItem" && r.Status == 200 && r.Table == suite.res.ReceiptsTable
}

func chainWrites(calls []localaws.Request) []localaws.Request {
	var out []localaws.Request
	for _, r := range calls {
		if isChainWrite(r) {
			out = append(out, r)
		}
	}
	return out
}

// byMessage splits calls into those made while a message was processed
// (the nearest "process" or invocation span above the call's client span
// is a "process" span) and the rest (the invocation's own calls, made
// under its "executor" span).
func byMessage(calls []localaws.Request, spans map[string]otlpsink.Span) (in, out []localaws.Request) {
	for _, r := range calls {
		found := false
	walk:
		for id, n := r.Span, 0; id != "" && n < 64; n++ {
			s, ok := spans[id]
			switch {
			case !ok || s.Name == "executor":
				break walk
			case strings.HasPrefix(s.Name, "process "):
				found = true
				break walk
			}
			id = s.ParentSpanID
		}
		if found {
			in = append(in, r)
		} else {
			out = append(out, r)
		}
	}
	return in, out
}

// logCalls logs each call with the name of its client span and the span
// above it.
func logCalls(t *testing.T, calls []localaws.Request, spans map[string]otlpsink.Span) {
	for _, r := range calls {
		var path []string
		for id, n := r.Span, 0; id != "" && n < 64; n++ {
			s, ok := spans[id]
			if !ok {
				break
			}
			path = append(path, s.Name)
			id = s.ParentSpanID
		}
		t.Logf("%s %s status %d table %q units %v, spans %s", r.Span, r.Op, r.Status, r.Table, r.Units, strings.Join(path, " < "))
	}
}
