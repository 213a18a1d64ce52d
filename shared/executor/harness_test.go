package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/alert"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

// env is one deployed local stack with the sample workflows published and
// the sample services standing in on loopback.
type env struct {
	t        *testing.T
	ctx      context.Context
	ddb      *dynamodb.Client
	sqs      *sqs.Client
	sns      *sns.Client
	queueURL string
	receipts string
	state    string
	topic    string
	reg      *registry.Registry
	chains   *store.Receipts // the executor's, on the counted client
	view     *store.Receipts // the test's own reads, not counted
	cases    *store.Cases
	services string // stand-in address
	ops      *opCounter
	cfg      aws.Config // the local endpoint's
	ep       *localaws.Endpoint
}

// opCounter counts DynamoDB requests by operation and table.
type opCounter struct {
	mu  sync.Mutex
	ops map[string]int
}

func (c *opCounter) add(op, table string) {
	c.mu.Lock()
	c.ops[op+" "+table]++
	c.mu.Unlock()
}

func (c *opCounter) get(op, table string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops[op+" "+table]
}

func (c *opCounter) reset() {
	c.mu.Lock()
	c.ops = map[string]int{}
	c.mu.Unlock()
}

// middleware counts each request at the Initialize step (SDK retries of one
// call are one request for this purpose).
func (c *opCounter) option(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("countOps",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				table := ""
				switch v := in.Parameters.(type) {
				case *dynamodb.PutItemInput:
					table = aws.ToString(v.TableName)
				case *dynamodb.QueryInput:
					table = aws.ToString(v.TableName)
				case *dynamodb.GetItemInput:
					table = aws.ToString(v.TableName)
				}
				c.add(awsmiddleware.GetOperationName(ctx), table)
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	})
}

func newEnv(t *testing.T, services http.Handler) *env {
	t.Helper()
	ep := localaws.StartT(t)
	outs := provision.DeployForTest(t, ep)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, ops: &opCounter{ops: map[string]int{}}, ep: ep,
		queueURL: outs[stack.OutWorkQueueURL], receipts: outs[stack.OutReceiptsTable],
		state: outs[stack.OutStateTable], topic: outs[stack.OutAlertsTopicArn], cfg: cfg}
	e.ddb = dynamodb.NewFromConfig(cfg, e.ops.option)
	e.sqs = sqs.NewFromConfig(cfg)
	e.sns = sns.NewFromConfig(cfg)
	e.reg = registry.New(e.ddb, e.state)
	e.chains = store.NewReceipts(e.ddb, e.receipts)
	e.cases = store.NewCases(e.ddb, e.state)
	e.chains.Blobs = e.cases.State
	e.view = store.NewReceipts(dynamodb.NewFromConfig(cfg), e.receipts)
	if services == nil {
		services = standin.Handler()
	}
	srv := httptest.NewServer(services)
	t.Cleanup(srv.Close)
	e.services = srv.Listener.Addr().String()
	files, _ := filepath.Glob(filepath.Join("..", "..", "events", "workflows", "*.yaml"))
	more, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, f := range append(files, more...) {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.reg.Push(ctx, body); err != nil {
			t.Fatalf("push %s: %v", f, err)
		}
	}
	return e
}

// executor builds an executor on the env, returning its metrics too.
func (e *env) executor(cfg Config) (*Executor, *telemetry.Metrics) {
	m := telemetry.NewMetrics(telemetry.Namespace)
	x := New(cfg, Deps{
		Chains:      e.chains,
		Descriptors: e.reg,
		Sender:      queue.NewSender(e.sqs, e.queueURL),
		Cases:       e.cases,
		Alerts:      alert.NewSNS(e.sns, e.topic),
		HTTP:        standin.Client(e.services),
		Metrics:     m,
		Log:         telemetry.NewLogger(testLog{e.t}, slog.LevelInfo),
		SLIs:        store.NewSLIs(e.ddb, e.state),
	})
	return x, m
}

// testLog sends the executor's log lines to the test's log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// send puts raw bodies on the work queue.
func (e *env) send(bodies ...any) {
	e.t.Helper()
	for _, b := range bodies {
		raw, ok := b.(string)
		if !ok {
			j, err := json.Marshal(b)
			if err != nil {
				e.t.Fatal(err)
			}
			raw = string(j)
		}
		if _, err := e.sqs.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: &e.queueURL, MessageBody: &raw}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// receive takes one batch off the queue in the shape Lambda delivers it.
func (e *env) receive(wait int32) events.SQSEvent {
	e.t.Helper()
	out, err := e.sqs.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{
		QueueUrl: &e.queueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: wait, VisibilityTimeout: 2,
		MessageAttributeNames:       []string{"All"},
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var ev events.SQSEvent
	for _, m := range out.Messages {
		sm := events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
			Body: aws.ToString(m.Body), EventSource: "aws:sqs", Attributes: m.Attributes,
			MessageAttributes: map[string]events.SQSMessageAttribute{}}
		for k, a := range m.MessageAttributes {
			sm.MessageAttributes[k] = events.SQSMessageAttribute{DataType: aws.ToString(a.DataType), StringValue: a.StringValue}
		}
		ev.Records = append(ev.Records, sm)
	}
	return ev
}

// handle runs one batch the way the event source mapping does: it deletes
// the messages the response does not report as failures.
func (e *env) handle(x *Executor, ev events.SQSEvent, timeout time.Duration) events.SQSEventResponse {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	defer cancel()
	resp, err := x.Handle(ctx, ev)
	if err != nil {
		e.t.Fatalf("handler returned an error: %v", err)
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, m := range ev.Records {
		if failed[m.MessageId] {
			continue
		}
		if _, err := e.sqs.DeleteMessage(e.ctx, &sqs.DeleteMessageInput{QueueUrl: &e.queueURL, ReceiptHandle: &m.ReceiptHandle}); err != nil {
			e.t.Fatal(err)
		}
	}
	return resp
}

// pump plays the event source mapping until done holds, recording every
// body it delivered.
func (e *env) pump(x *Executor, done func() bool, limit time.Duration) []string {
	e.t.Helper()
	var seen []string
	deadline := time.Now().Add(limit)
	for !done() {
		if time.Now().After(deadline) {
			e.t.Fatalf("not done after %s", limit)
		}
		ev := e.receive(1)
		for _, m := range ev.Records {
			seen = append(seen, m.Body)
		}
		if len(ev.Records) > 0 {
			e.handle(x, ev, 60*time.Second)
		}
	}
	return seen
}

// chain reads and verifies a case's chain.
func (e *env) chain(caseID string) []*receipt.Receipt {
	e.t.Helper()
	rs, bad, err := e.view.Chain(e.ctx, caseID)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(bad) > 0 {
		e.t.Fatalf("case %s: malformed receipts %v", caseID, bad)
	}
	if fs := receipt.VerifyChain(rs); len(fs) > 0 {
		e.t.Fatalf("case %s: chain findings %v", caseID, fs)
	}
	return rs
}

// ended reports whether a case's chain ends with a terminal receipt.
func (e *env) ended(caseID string) bool {
	rs, _, err := e.view.Chain(e.ctx, caseID)
	if err != nil || len(rs) == 0 {
		return false
	}
	switch rs[len(rs)-1].Type {
	case history.CaseCompleted, history.CaseFaulted, history.CaseCancelled:
		return true
	}
	return false
}

func startMessage(tenant, ns, name, key string, input any) map[string]any {
	return map[string]any{"kind": "start", "tenant": tenant, "idempotencyKey": key,
		"workflow": map[string]any{"namespace": ns, "name": name}, "input": input}
}

func sampleInput(t *testing.T, name string) any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", "inputs", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// sameJSON compares two JSON texts semantically.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// emfSum adds up the values of one metric in EMF output.
func emfSum(t *testing.T, out []byte, name string) float64 {
	t.Helper()
	var sum float64
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal(line, &doc); err != nil {
			t.Fatalf("EMF line %q: %v", line, err)
		}
		switch v := doc[name].(type) {
		case float64:
			sum += v
		case []any:
			for _, x := range v {
				sum += x.(float64)
			}
		}
	}
	return sum
}

type stringAttr = dbtypes.AttributeValueMemberS

func getItem(table, caseID string, seq int) *dynamodb.GetItemInput {
	return &dynamodb.GetItemInput{TableName: &table, ConsistentRead: aws.Bool(true), Key: map[string]dbtypes.AttributeValue{
		receipt.AttrCase: &dbtypes.AttributeValueMemberS{Value: caseID},
		receipt.AttrSeq:  &dbtypes.AttributeValueMemberN{Value: strconv.Itoa(seq)},
	}}
}

func putItem(table string, item map[string]dbtypes.AttributeValue) *dynamodb.PutItemInput {
	return &dynamodb.PutItemInput{TableName: &table, Item: item}
}

func seqs(rs []*receipt.Receipt) string {
	var b bytes.Buffer
	for _, r := range rs {
		b.WriteString(strconv.FormatInt(r.Seq, 10) + ":" + string(r.Type) + " ")
	}
	return b.String()
}

func withTimeout(e *env, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(e.ctx, d)
}

// segmentItem reads the stored item that holds a case's receipt at seq and
// returns it with that receipt's stored form and a function that puts the
// item back with the receipt's stored form replaced.
func (e *env) segmentItem(t *testing.T, caseID string, seq int64) (stored string, put func(string)) {
	t.Helper()
	out, err := e.ddb.Query(e.ctx, &dynamodb.QueryInput{TableName: aws.String(e.receipts), ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("#c = :c AND #s <= :s"),
		ExpressionAttributeNames:  map[string]string{"#c": receipt.AttrCase, "#s": receipt.AttrSeq},
		ExpressionAttributeValues: map[string]dbtypes.AttributeValue{":c": &stringAttr{Value: caseID}, ":s": &dbtypes.AttributeValueMemberN{Value: strconv.FormatInt(seq, 10)}},
		ScanIndexForward:          aws.Bool(false), Limit: aws.Int32(1)})
	if err != nil || len(out.Items) == 0 {
		t.Fatalf("no item holds %s/%d: %v", caseID, seq, err)
	}
	item := out.Items[0]
	first, _ := strconv.ParseInt(item[receipt.AttrSeq].(*dbtypes.AttributeValueMemberN).Value, 10, 64)
	list := item[receipt.AttrReceipts].(*dbtypes.AttributeValueMemberL).Value
	i := int(seq - first)
	if i >= len(list) {
		t.Fatalf("item at %s/%d does not hold seq %d", caseID, first, seq)
	}
	return list[i].(*stringAttr).Value, func(v string) {
		t.Helper()
		l := append([]dbtypes.AttributeValue(nil), list...)
		l[i] = &stringAttr{Value: v}
		c := map[string]dbtypes.AttributeValue{}
		for k, a := range item {
			c[k] = a
		}
		c[receipt.AttrReceipts] = &dbtypes.AttributeValueMemberL{Value: l}
		if _, err := e.ddb.PutItem(e.ctx, putItem(e.receipts, c)); err != nil {
			t.Fatal(err)
		}
	}
}

// externalEffects counts what a chain shows performed outside the case: the
// calls requested, the events emitted and the timers scheduled (each one
// sent to the queue or fired inline). The executor persists before each
// decision that has such effects, so a case's receipt writes are at most
// this plus one.
func externalEffects(rs []*receipt.Receipt) int {
	n := 0
	for _, r := range rs {
		switch r.Type {
		case history.EffectRequested, history.EventEmitted, history.TimerScheduled:
			n++
		}
	}
	return n
}
