package executor

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/alert"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

// tally is the test's own count of what the executor's clients did: every
// request, with the capacity DynamoDB reported, and every HTTP call with
// its bytes, whatever the executor's meter made of them.
type tally struct {
	mu                   sync.Mutex
	dynamo, sqs, sns     int64
	receiptPuts          int64
	receiptUnits         float64
	write, read          float64
	httpCalls, httpBytes int64
	receiptsTable        string
	base                 http.RoundTripper
}

func (c *tally) option(st *middleware.Stack) error {
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("tally",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			c.mu.Lock()
			defer c.mu.Unlock()
			switch awsmiddleware.GetServiceID(ctx) {
			case "SQS":
				c.sqs++
			case "SNS":
				c.sns++
			case "DynamoDB":
				var cc *dbtypes.ConsumedCapacity
				switch v := out.Result.(type) {
				case *dynamodb.PutItemOutput:
					cc = v.ConsumedCapacity
				case *dynamodb.GetItemOutput:
					cc = v.ConsumedCapacity
				case *dynamodb.QueryOutput:
					cc = v.ConsumedCapacity
				case *dynamodb.UpdateItemOutput:
					cc = v.ConsumedCapacity
				case *dynamodb.DeleteItemOutput:
					cc = v.ConsumedCapacity
				}
				if p, ok := in.Parameters.(*dynamodb.PutItemInput); ok && aws.ToString(p.TableName) == c.receiptsTable {
					c.receiptPuts++ // the chain's own writes: priced from the chain
					if cc != nil && cc.CapacityUnits != nil {
						c.receiptUnits += *cc.CapacityUnits
					}
					return out, md, err
				}
				c.dynamo++
				if cc != nil && cc.CapacityUnits != nil {
					switch in.Parameters.(type) {
					case *dynamodb.GetItemInput, *dynamodb.QueryInput:
						c.read += *cc.CapacityUnits
					default:
						c.write += *cc.CapacityUnits
					}
				}
			}
			return out, md, err
		}), middleware.Before)
}

func (c *tally) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	c.mu.Lock()
	c.httpCalls++
	c.httpBytes += max(req.ContentLength, 0)
	c.mu.Unlock()
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.mu.Lock()
		c.httpBytes += int64(len(b))
		c.mu.Unlock()
		resp.Body = io.NopCloser(&byteReader{b: b})
	}
	return resp, err
}

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestReceiptUsageIsWhatTheCaseConsumed runs each sample alone through an
// executor whose clients carry the metering middleware and, outside it, the
// test's own tally. What the tally counted equals the sum of the case's
// receipts' usage plus the chain's own writes plus what was metered as
// shared (a case's work after its last receipt of an invocation): nothing is
// lost or counted twice.
func TestReceiptUsageIsWhatTheCaseConsumed(t *testing.T) {
	t.Setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
	e := newEnv(t, nil)
	cfg := e.cfg
	for _, s := range samples {
		if s.name == "insurance-claim" { // waits for an outside event
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			hc := standin.Client(e.services)
			c := &tally{receiptsTable: e.receipts, base: hc.Transport}
			hc.Transport = meter.Transport{Base: c}
			mcfg := cfg.Copy()
			mcfg.APIOptions = append(mcfg.APIOptions, c.option, meter.AddMiddleware)
			ddb := dynamodb.NewFromConfig(mcfg)
			chains := store.NewReceipts(ddb, e.receipts)
			cases := store.NewCases(ddb, e.state)
			chains.Blobs = cases.State
			x := New(sampleConfig(), Deps{
				Chains: chains, Descriptors: registry.New(ddb, e.state),
				Sender: queue.NewSender(sqs.NewFromConfig(mcfg), e.queueURL), Cases: cases,
				Alerts: alert.NewSNS(sns.NewFromConfig(mcfg), e.topic), HTTP: hc,
				Metrics: telemetry.NewMetrics(telemetry.Namespace),
			})
			id := message.CaseID("acme", s.ns, s.name, "metered-"+s.name)
			meter.Shared.Take()
			e.send(startMessage("acme", s.ns, s.name, "metered-"+s.name, sampleInput(t, s.name)))
			e.pump(x, func() bool { return e.ended(id) }, 2*time.Minute)
			shared := meter.Shared.Take()

			var sum cost.Usage
			rs := e.chain(id)
			for _, r := range rs {
				if r.Usage == nil {
					t.Fatalf("receipt %d has no usage", r.Seq)
				}
				sum.Add(meter.Usage(*r.Usage))
				if r.Usage.MemoryMB != 1024 || r.Usage.Arch == "" {
					t.Errorf("receipt %d usage %+v: want the function's memory and arch", r.Seq, *r.Usage)
				}
			}
			all := sum
			all.Add(shared)
			c.mu.Lock()
			defer c.mu.Unlock()
			if limit := int64(externalEffects(rs) + 1); c.receiptPuts > limit || c.receiptPuts < 1 {
				t.Errorf("%d receipt writes for %d receipts, want 1 to %d (one per external effect plus one)", c.receiptPuts, len(rs), limit)
			}
			got := []int64{all.DynamoRequests, all.SQSRequests, all.SNSPublishes, all.HTTPCalls, all.HTTPBytes}
			want := []int64{c.dynamo, c.sqs, c.sns, c.httpCalls, c.httpBytes}
			names := []string{"DynamoDB requests", "SQS requests", "SNS publishes", "HTTP calls", "HTTP bytes"}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s: receipts + shared = %d, tally %d", names[i], got[i], want[i])
				}
			}
			if all.WriteUnits != c.write || all.ReadUnits != c.read {
				t.Errorf("units: metered %v write %v read, tally %v write %v read", all.WriteUnits, all.ReadUnits, c.write, c.read)
			}
			if sum.HTTPCalls == 0 || sum.LambdaMBms == 0 || sum.InvocationMicros == 0 {
				t.Errorf("receipts record no HTTP calls or duration: %+v", sum)
			}
			// Billed write units (one per started KB of each item): the
			// case's segment items against one item per receipt.
			before, after := 0, 0
			for _, r := range rs {
				before += (store.StoredSize(r) + 1023) / 1024
			}
			for _, it := range e.items(t, id) {
				after += (meter.ItemSize(it) + 1023) / 1024
			}
			if after > before {
				t.Errorf("segments bill %d write units, one item per receipt %d", after, before)
			}
			t.Logf("%s: %d receipts; writes %d (one item per receipt: %d); write units %d (one item per receipt: %d); receipts %+v, shared %+v",
				s.name, len(rs), c.receiptPuts, len(rs), after, before, sum, shared)
		})
	}
}

// rivalFirst is a chain store on which another writer of the same case
// lands first: before the executor's first append it writes the same
// events at the same position (a duplicate delivery that won the race), so
// the executor's conditional write fails, is billed and stores nothing. It
// keeps what the store reported lost.
type rivalFirst struct {
	*store.Receipts
	mu    sync.Mutex
	raced bool
	lost  cost.Usage
}

func (r *rivalFirst) AppendSegment(ctx context.Context, prev *receipt.Receipt, tenant, caseID string, evs []store.Pending) (store.Appended, error) {
	r.mu.Lock()
	if !r.raced {
		r.raced = true
		if _, err := r.Receipts.AppendSegment(ctx, prev, tenant, caseID, evs); err != nil {
			r.mu.Unlock()
			return store.Appended{}, err
		}
	}
	r.mu.Unlock()
	res, err := r.Receipts.AppendSegment(ctx, prev, tenant, caseID, evs)
	r.mu.Lock()
	r.lost.Add(res.Lost)
	r.mu.Unlock()
	return res, err
}

// TestLostRaceIsChargedToTheCase: the write units and requests of an
// append that lost its position (the failed conditional write and the read
// that resolved it) are metered, not dropped: with no receipt of the case
// left to carry them in that invocation they are shared cost, next to the
// staged usage the rival's receipts already recorded.
func TestLostRaceIsChargedToTheCase(t *testing.T) {
	e := newEnv(t, nil)
	rival := &rivalFirst{Receipts: e.chains}
	m := telemetry.NewMetrics(telemetry.Namespace)
	x := New(DefaultConfig(), Deps{Chains: rival, Descriptors: e.reg, Sender: queue.NewSender(e.sqs, e.queueURL),
		Cases: e.cases, Alerts: alert.NewSNS(e.sns, e.topic), HTTP: standin.Client(e.services), Metrics: m})
	id := message.CaseID("acme", "test", "five-tasks", "lost-race")
	meter.Shared.Take()
	resp := e.direct(x, sqsEvent(t, []any{startMessage("acme", "test", "five-tasks", "lost-race", map[string]any{"qty": 1, "unitPrice": 2})}, nil), 30*time.Second)
	shared := meter.Shared.Take()
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("start reported for retry: %v", resp.BatchItemFailures)
	}
	rs := e.chain(id)
	if len(rs) != 7 {
		t.Fatalf("chain: %s", seqs(rs))
	}
	var sum cost.Usage
	for _, r := range rs {
		sum.Add(meter.Usage(*r.Usage))
	}
	rival.mu.Lock()
	lost := rival.lost
	rival.mu.Unlock()
	if lost.DynamoRequests != 2 || lost.WriteUnits < 1 || lost.ReadUnits <= 0 {
		t.Fatalf("store reported lost %+v, want a failed write and its read", lost)
	}
	for _, c := range []struct {
		name             string
		got, receipts, l float64
	}{
		{"DynamoDB requests", float64(shared.DynamoRequests), float64(sum.DynamoRequests), float64(lost.DynamoRequests)},
		{"write units", shared.WriteUnits, sum.WriteUnits, lost.WriteUnits},
		{"read units", shared.ReadUnits, sum.ReadUnits, lost.ReadUnits},
	} {
		if c.got != c.receipts+c.l {
			t.Errorf("%s: shared %v, want the staged %v plus the lost %v", c.name, c.got, c.receipts, c.l)
		}
	}
}
