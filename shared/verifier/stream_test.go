package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/shared/alert"
	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

// env is a deployed stack on the local endpoint, shared by the subtests of
// TestOnLocalEndpoint; each subtest uses its own cases.
type env struct {
	cfg      aws.Config
	db       *dynamodb.Client
	streams  *dynamodbstreams.Client
	receipts string
	state    string
	topic    string
	queueURL string
	sqs      *sqs.Client

	mu     sync.Mutex
	alerts map[string]int // alerts received per case
}

func newEnv(t *testing.T) *env {
	ep := localaws.StartT(t)
	outs := provision.DeployForTest(t, ep)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{cfg: cfg, db: dynamodb.NewFromConfig(cfg), streams: dynamodbstreams.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg),
		receipts: outs[stack.OutReceiptsTable], state: outs[stack.OutStateTable], topic: outs[stack.OutAlertsTopicArn], alerts: map[string]int{}}
	if e.receipts == "" || e.state == "" || e.topic == "" {
		t.Fatalf("stack outputs lack tables or topic: %v", outs)
	}
	q, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("alerts-tap")})
	if err != nil {
		t.Fatal(err)
	}
	e.queueURL = *q.QueueUrl
	qa, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sns.NewFromConfig(cfg).Subscribe(ctx, &sns.SubscribeInput{TopicArn: aws.String(e.topic), Protocol: aws.String("sqs"),
		Endpoint: aws.String(qa.Attributes["QueueArn"])}); err != nil {
		t.Fatal(err)
	}
	return e
}

// counter counts the DynamoDB operations a client makes, by name.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op]
}

func (c *counter) option(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("countOps", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			c.mu.Lock()
			c.n[middleware.GetOperationName(ctx)]++
			c.mu.Unlock()
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
	})
}

// harness is one verifier over the deployed tables, with its output kept.
type harness struct {
	v       *Verifier
	ops     *counter
	logs    bytes.Buffer
	metrics bytes.Buffer
}

func (e *env) verifier(t *testing.T, stateTable string) *harness {
	t.Helper()
	return e.verifierTo(t, stateTable, e.topic)
}

func (e *env) verifierTo(t *testing.T, stateTable, topic string) *harness {
	t.Helper()
	h := &harness{ops: &counter{n: map[string]int{}}}
	db := dynamodb.NewFromConfig(e.cfg, h.ops.option)
	metrics := telemetry.NewMetrics(telemetry.Namespace)
	if err := metrics.SetDimensions(telemetry.Dimension{Name: telemetry.DimFunction, Value: FunctionName}); err != nil {
		t.Fatal(err)
	}
	v, err := New(Deps{
		Chains:   store.NewReceipts(db, e.receipts),
		Cases:    store.NewCases(db, stateTable),
		Findings: store.NewFindings(db, stateTable),
		Alerts:   alert.NewSNS(sns.NewFromConfig(e.cfg), topic),
		SLIs:     store.NewSLIs(db, stateTable),
		Archives: store.NewArchives(db, stateTable),
		Log:      telemetry.NewLogger(&h.logs, nil),
		Metrics:  metrics,
		Out:      &h.metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.v = v
	return h
}

// handle runs one invocation and returns its response and the metric sums
// it flushed.
func (h *harness) handle(t *testing.T, recs []events.DynamoDBEventRecord) (events.DynamoDBEventResponse, map[string]float64) {
	t.Helper()
	h.metrics.Reset()
	resp, err := h.v.Handler(context.Background(), events.DynamoDBEvent{Records: recs})
	if err != nil {
		t.Fatalf("handler returned an error: %v", err)
	}
	return resp, emfSums(t, h.metrics.Bytes())
}

// emfSums parses EMF lines and sums every metric's values; it fails the
// test when a document's dimension set is not exactly Function=verifier.
func emfSums(t *testing.T, out []byte) map[string]float64 {
	t.Helper()
	sums := map[string]float64{}
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(line, &doc); err != nil {
			t.Fatalf("EMF line %s: %v", line, err)
		}
		var meta struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		}
		if err := json.Unmarshal(doc["_aws"], &meta); err != nil {
			t.Fatal(err)
		}
		var fn string
		_ = json.Unmarshal(doc[telemetry.DimFunction], &fn)
		for _, d := range meta.CloudWatchMetrics {
			if d.Namespace != telemetry.Namespace || len(d.Dimensions) != 1 || !slices.Equal(d.Dimensions[0], []string{telemetry.DimFunction}) || fn != FunctionName {
				t.Fatalf("EMF directive %+v Function=%q, want namespace %s and one dimension set Function=verifier", d, fn, telemetry.Namespace)
			}
			for _, m := range d.Metrics {
				var one float64
				var many []float64
				if err := json.Unmarshal(doc[m.Name], &one); err == nil {
					sums[m.Name] += one
				} else if err := json.Unmarshal(doc[m.Name], &many); err == nil {
					for _, x := range many {
						sums[m.Name] += x
					}
				} else {
					t.Fatalf("metric %s value %s", m.Name, doc[m.Name])
				}
			}
		}
	}
	return sums
}

// streamRecords reads the receipts table's stream from TRIM_HORIZON and
// returns the records of one case in stream order, as Lambda delivers them.
func (e *env) streamRecords(t *testing.T, caseID string) []events.DynamoDBEventRecord {
	t.Helper()
	ctx := context.Background()
	desc, err := e.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(e.receipts)})
	if err != nil {
		t.Fatal(err)
	}
	arn := desc.Table.LatestStreamArn
	sd, err := e.streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: arn})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.DynamoDBEventRecord
	for _, sh := range sd.StreamDescription.Shards {
		it, err := e.streams.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: arn, ShardId: sh.ShardId,
			ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for range 1000 {
			page, err := e.streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Records {
				rec := lambdaRecord(r, aws.ToString(arn))
				if id, _ := keyOf(rec); id == caseID {
					out = append(out, rec)
				}
			}
			if len(page.Records) == 0 || page.NextShardIterator == nil {
				break
			}
			iter = page.NextShardIterator
		}
	}
	return out
}

// lambdaRecord converts a DynamoDB Streams record to the form Lambda gives
// the function.
func lambdaRecord(r stypes.Record, arn string) events.DynamoDBEventRecord {
	rec := events.DynamoDBEventRecord{EventID: aws.ToString(r.EventID), EventName: string(r.EventName), EventVersion: aws.ToString(r.EventVersion),
		EventSource: aws.ToString(r.EventSource), AWSRegion: aws.ToString(r.AwsRegion), EventSourceArn: arn}
	if r.UserIdentity != nil {
		rec.UserIdentity = &events.DynamoDBUserIdentity{Type: aws.ToString(r.UserIdentity.Type), PrincipalID: aws.ToString(r.UserIdentity.PrincipalId)}
	}
	if d := r.Dynamodb; d != nil {
		rec.Change = events.DynamoDBStreamRecord{Keys: streamAttrs(d.Keys), NewImage: streamAttrs(d.NewImage), OldImage: streamAttrs(d.OldImage),
			SequenceNumber: aws.ToString(d.SequenceNumber), StreamViewType: string(d.StreamViewType)}
		if d.SizeBytes != nil {
			rec.Change.SizeBytes = *d.SizeBytes
		}
		if d.ApproximateCreationDateTime != nil {
			rec.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: *d.ApproximateCreationDateTime}
		}
	}
	return rec
}

func streamAttrs(img map[string]stypes.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if img == nil {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(img))
	for k, v := range img {
		switch v := v.(type) {
		case *stypes.AttributeValueMemberS:
			out[k] = events.NewStringAttribute(v.Value)
		case *stypes.AttributeValueMemberN:
			out[k] = events.NewNumberAttribute(v.Value)
		case *stypes.AttributeValueMemberB:
			out[k] = events.NewBinaryAttribute(v.Value)
		case *stypes.AttributeValueMemberBOOL:
			out[k] = events.NewBooleanAttribute(v.Value)
		case *stypes.AttributeValueMemberL:
			l := make([]events.DynamoDBAttributeValue, len(v.Value))
			for i, e := range v.Value {
				l[i] = streamAttrs(map[string]stypes.AttributeValue{"e": e})["e"]
			}
			out[k] = events.NewListAttribute(l)
		}
	}
	return out
}

// alertsFor drains the alert tap queue and returns how many alerts named
// the case so far.
func (e *env) alertsFor(t *testing.T, caseID string) int {
	t.Helper()
	ctx := context.Background()
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(e.queueURL), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			var env struct{ Message string }
			body := aws.ToString(m.Body)
			if json.Unmarshal([]byte(body), &env) == nil && env.Message != "" {
				body = env.Message
			}
			for _, line := range strings.Split(body, "\n") {
				if c, ok := strings.CutPrefix(line, "Case:"); ok {
					e.alerts[strings.TrimSpace(c)]++
				}
			}
			if _, err := e.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(e.queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return e.alerts[caseID]
}

var caseNo atomic.Int64

// appendCase writes n receipts of a new case one item each, the layout
// written before segments (which the verifier still reads), and returns the
// case id and the receipts.
func (e *env) appendCase(t *testing.T, name string, n int) (string, []*receipt.Receipt) {
	t.Helper()
	caseID := fmt.Sprintf("%s-%03d", name, caseNo.Add(1))
	out := buildChain(t, "acme", caseID, n)
	for _, r := range out {
		e.putReceipt(t, r)
	}
	return caseID, out
}

func (e *env) putReceipt(t *testing.T, r *receipt.Receipt) {
	t.Helper()
	item, err := store.Item(r)
	if err != nil {
		t.Fatal(err)
	}
	e.putItem(t, item)
}

func (e *env) putItem(t *testing.T, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := e.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.receipts), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) item(t *testing.T, caseID string, seq int64) map[string]types.AttributeValue {
	t.Helper()
	out, err := e.db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(e.receipts), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{receipt.AttrCase: &types.AttributeValueMemberS{Value: caseID}, receipt.AttrSeq: &types.AttributeValueMemberN{Value: fmt.Sprint(seq)}}})
	if err != nil || out.Item == nil {
		t.Fatalf("get %s/%d: %v", caseID, seq, err)
	}
	return out.Item
}

func (e *env) deleteReceipt(t *testing.T, caseID string, seq int64) {
	t.Helper()
	if _, err := e.db.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(e.receipts),
		Key: map[string]types.AttributeValue{receipt.AttrCase: &types.AttributeValueMemberS{Value: caseID}, receipt.AttrSeq: &types.AttributeValueMemberN{Value: fmt.Sprint(seq)}}}); err != nil {
		t.Fatal(err)
	}
}

// archived records the case in the archive index, as the archiver does once
// the case's archive object verified.
func (e *env) archived(t *testing.T, caseID string, rs []*receipt.Receipt) {
	t.Helper()
	last := rs[len(rs)-1]
	if _, err := store.NewArchives(e.db, e.state).Record(context.Background(), archive.Summary{Tenant: last.Tenant, CaseID: caseID,
		Ended: last.Started, HeadSeq: last.Seq, HeadHash: last.Hash, Key: archive.Key(last.Tenant, caseID)}); err != nil {
		t.Fatal(err)
	}
}

// setExpiry sets the time-to-live attribute on the case's items, as the
// archiver does.
func (e *env) setExpiry(t *testing.T, caseID string) {
	t.Helper()
	if _, err := store.NewReceipts(e.db, e.receipts).SetExpiry(context.Background(), caseID, time.Unix(1<<31, 0)); err != nil {
		t.Fatal(err)
	}
}

func (e *env) watermark(t *testing.T, caseID string) receipt.Watermark {
	t.Helper()
	ws, err := store.NewCases(e.db, e.state).Watermarks(context.Background(), []string{caseID})
	if err != nil {
		t.Fatal(err)
	}
	return ws[caseID]
}

func (e *env) findings(t *testing.T, caseID string) []receipt.Finding {
	t.Helper()
	fs, err := store.NewFindings(e.db, e.state).Case(context.Background(), caseID)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// verified runs a fresh verifier over all stream records of a case so far
// and checks that the chain verified clean.
func (e *env) verified(t *testing.T, caseID string, rs []*receipt.Receipt) []events.DynamoDBEventRecord {
	t.Helper()
	recs := e.streamRecords(t, caseID)
	h := e.verifier(t, e.state)
	resp, sums := h.handle(t, recs)
	if len(resp.BatchItemFailures) != 0 || sums[telemetry.IntegrityFindings] != 0 {
		t.Fatalf("clean chain: failures %v, metrics %v, logs %s", resp.BatchItemFailures, sums, h.logs.String())
	}
	tail := rs[len(rs)-1]
	if w := e.watermark(t, caseID); w.Seq != tail.Seq || w.Hash != tail.Hash {
		t.Fatalf("watermark %+v, want the tail %d", w, tail.Seq)
	}
	return recs
}

func findingKinds(fs []receipt.Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s@%d", f.Kind, f.Seq))
	}
	slices.Sort(out)
	return out
}

func TestOnLocalEndpoint(t *testing.T) {
	e := newEnv(t)

	t.Run("service levels", func(t *testing.T) { testServiceLevels(t, e) })
	t.Run("segments", func(t *testing.T) { testSegments(t, e) })

	t.Run("clean chain", func(t *testing.T) {
		caseID, rs := e.appendCase(t, "clean", 20)
		recs := e.streamRecords(t, caseID)
		if len(recs) != 20 {
			t.Fatalf("%d stream records, want 20", len(recs))
		}
		// A second case's records interleaved, as a shard delivers them.
		other, ors := e.appendCase(t, "clean", 7)
		var batch []events.DynamoDBEventRecord
		for i, r := range recs {
			batch = append(batch, r)
			if ro := e.streamRecords(t, other); i < len(ro) {
				batch = append(batch, ro[i])
			}
		}
		h := e.verifier(t, e.state)
		resp, sums := h.handle(t, batch)
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("failures %v: %s", resp.BatchItemFailures, h.logs.String())
		}
		if sums[telemetry.ReceiptsVerified] != 27 || sums[telemetry.IntegrityFindings] != 0 {
			t.Fatalf("metrics %v, want 27 verified and no findings", sums)
		}
		if fs := e.findings(t, caseID); len(fs) != 0 {
			t.Fatalf("findings %v", fs)
		}
		if w := e.watermark(t, caseID); w.Seq != 19 || w.Hash != rs[19].Hash {
			t.Fatalf("watermark %+v, want the tail", w)
		}
		if w := e.watermark(t, other); w.Seq != 6 || w.Hash != ors[6].Hash {
			t.Fatalf("watermark of the other case %+v, want its tail", w)
		}
		if got := h.ops.get("BatchWriteItem"); got != 1 || h.ops.get("PutItem") != 0 {
			t.Fatalf("%d batch writes and %d puts, want the batch's watermarks in one write", got, h.ops.get("PutItem"))
		}
		if got := h.ops.get("BatchGetItem"); got != 1 || h.ops.get("GetItem") != 0 {
			t.Fatalf("%d batch reads and %d gets, want the batch's watermarks in one read", got, h.ops.get("GetItem"))
		}
		if n := e.alertsFor(t, caseID); n != 0 {
			t.Fatalf("%d alerts", n)
		}
	})

	// Each tamper class, done directly in the table, reported from the
	// real stream records it causes.
	for _, tc := range []struct {
		name   string
		n      int
		tamper func(t *testing.T, caseID string, rs []*receipt.Receipt)
		want   []string
	}{
		{"one byte changed", 6, func(t *testing.T, caseID string, rs []*receipt.Receipt) {
			it := e.item(t, caseID, 4)
			r := it[receipt.AttrReceipt].(*types.AttributeValueMemberS).Value
			changed := strings.Replace(r, `"step":2`, `"step":3`, 1)
			if changed == r {
				t.Fatalf("receipt 4 has no step 2: %s", r)
			}
			it[receipt.AttrReceipt] = &types.AttributeValueMemberS{Value: changed}
			e.putItem(t, it)
		}, []string{"Modified@4"}},
		{"same change written twice", 6, func(t *testing.T, caseID string, rs []*receipt.Receipt) {
			// A retried put (its first response lost) repeats a write that
			// changes nothing the second time: one tampering, one finding.
			it := e.item(t, caseID, 3)
			it[receipt.AttrSeq] = e.item(t, caseID, 4)[receipt.AttrSeq]
			e.putItem(t, it)
			e.putItem(t, it)
		}, []string{"Modified@4"}},
		{"receipt deleted", 6, func(t *testing.T, caseID string, rs []*receipt.Receipt) {
			e.deleteReceipt(t, caseID, 2)
		}, []string{"Removed@2"}},
		{"two receipts swapped", 6, func(t *testing.T, caseID string, rs []*receipt.Receipt) {
			a, b := e.item(t, caseID, 2), e.item(t, caseID, 3)
			a[receipt.AttrSeq], b[receipt.AttrSeq] = b[receipt.AttrSeq], a[receipt.AttrSeq]
			e.putItem(t, a)
			e.putItem(t, b)
		}, []string{"Modified@2", "Modified@3"}},
		{"forged receipt after the tail", 6, func(t *testing.T, caseID string, rs []*receipt.Receipt) {
			other := buildChain(t, "acme", caseID, 6)
			e.putReceipt(t, forgeAfter(t, rs[5], other[4].Hash))
		}, []string{"BrokenLink@6"}},
		{"chain rewritten consistently", 4, func(t *testing.T, caseID string, rs []*receipt.Receipt) {
			var prev *receipt.Receipt
			for i, ev := range caseEvents("acme", 4) {
				ev.Input, ev.Output = nil, json.RawMessage(fmt.Sprintf(`{"rewritten":%d}`, i))
				r, err := receipt.New(prev, "acme", caseID, ev)
				if err != nil {
					t.Fatal(err)
				}
				e.putReceipt(t, r)
				prev = r
			}
		}, []string{"Modified@0", "Modified@1", "Modified@2", "Modified@3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caseID, rs := e.appendCase(t, "tamper", tc.n)
			seen := len(e.verified(t, caseID, rs))
			tc.tamper(t, caseID, rs)
			recs := e.streamRecords(t, caseID)[seen:]
			h := e.verifier(t, e.state)
			resp, sums := h.handle(t, recs)
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures %v: %s", resp.BatchItemFailures, h.logs.String())
			}
			fs := e.findings(t, caseID)
			if got := findingKinds(fs); !slices.Equal(got, tc.want) {
				t.Fatalf("findings %v, want %v", got, tc.want)
			}
			if sums[telemetry.IntegrityFindings] != float64(len(tc.want)) {
				t.Fatalf("IntegrityFindings %v, want %d", sums[telemetry.IntegrityFindings], len(tc.want))
			}
			if n := e.alertsFor(t, caseID); n != 1 {
				t.Fatalf("%d alerts, want exactly one for the case", n)
			}
			// One log line per finding, naming the case, seq and kind.
			lines := 0
			for _, l := range strings.Split(h.logs.String(), "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(l), &m) == nil && m[telemetry.AttrMessage] == "integrity finding" {
					if m[telemetry.AttrCaseID] != caseID || m[telemetry.AttrTenant] != "acme" || m["kind"] == nil || m[telemetry.AttrSeq] == nil {
						t.Errorf("finding log line lacks fields: %s", l)
					}
					lines++
				}
			}
			if lines != len(tc.want) {
				t.Fatalf("%d finding log lines, want %d:\n%s", lines, len(tc.want), h.logs.String())
			}
			// The operator's listing shows them.
			recent, err := store.NewFindings(e.db, e.state).Recent(context.Background(), time.Now().Add(-time.Hour), 0)
			if err != nil {
				t.Fatal(err)
			}
			listed := 0
			for _, f := range recent {
				if f.CaseID == caseID {
					listed++
				}
			}
			if listed != len(tc.want) {
				t.Fatalf("recent findings list %d of the case, want %d", listed, len(tc.want))
			}
		})
	}

	// Retention: a TTL deletion, a plain deletion or a time to live set on
	// an item is allowed once the case is archived, a finding before.
	for _, tc := range []struct {
		name     string
		archived bool
		ttl      bool // the deletion is the table's TTL (user identity of the service)
		expiry   bool // set expiresAt instead of deleting
		want     []string
	}{
		{"TTL deletion of an archived case", true, true, false, nil},
		{"deletion of an archived case", true, false, false, nil},
		{"expiry set on an archived case", true, false, true, nil},
		{"TTL deletion of an unarchived case", false, true, false, []string{"Removed@0"}},
		{"expiry set on an unarchived case", false, false, true, []string{"ExpirySet@0", "ExpirySet@1", "ExpirySet@2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caseID, rs := e.appendCase(t, strings.ReplaceAll(tc.name, " ", "-"), 3)
			seen := len(e.verified(t, caseID, rs))
			if tc.archived {
				e.archived(t, caseID, rs)
			}
			want, items := "REMOVE", 1
			if tc.expiry {
				want, items = "MODIFY", len(rs)
				e.setExpiry(t, caseID)
			} else {
				e.deleteReceipt(t, caseID, 0)
			}
			recs := e.streamRecords(t, caseID)[seen:]
			if len(recs) != items || recs[0].EventName != want {
				t.Fatalf("records %v", recs)
			}
			if tc.ttl {
				recs[0].UserIdentity = &events.DynamoDBUserIdentity{Type: "Service", PrincipalID: "dynamodb.amazonaws.com"}
			}
			h := e.verifier(t, e.state)
			resp, sums := h.handle(t, recs)
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures %v", resp.BatchItemFailures)
			}
			if got := findingKinds(e.findings(t, caseID)); !slices.Equal(got, tc.want) {
				t.Fatalf("findings %v, want %v", got, tc.want)
			}
			if tc.want == nil {
				if sums[telemetry.IntegrityFindings] != 0 || sums[ReceiptsExpired] != float64(items) {
					t.Fatalf("metrics %v", sums)
				}
				if n := e.alertsFor(t, caseID); n != 0 {
					t.Fatalf("%d alerts for an expiry", n)
				}
				if !strings.Contains(h.logs.String(), `"kind":"Expired"`) || !strings.Contains(h.logs.String(), `"level":"INFO"`) {
					t.Fatalf("expiry not logged at info: %s", h.logs.String())
				}
				return
			}
			if sums[telemetry.IntegrityFindings] != float64(len(tc.want)) || e.alertsFor(t, caseID) != 1 {
				t.Fatalf("metrics %v, %d alerts", sums, e.alertsFor(t, caseID))
			}
		})
	}

	t.Run("second finding sends no second alert", func(t *testing.T) {
		caseID, rs := e.appendCase(t, "twice", 5)
		seen := len(e.verified(t, caseID, rs))
		e.deleteReceipt(t, caseID, 4)
		recs := e.streamRecords(t, caseID)
		h := e.verifier(t, e.state)
		h.handle(t, recs[seen:])
		if n := e.alertsFor(t, caseID); n != 1 {
			t.Fatalf("%d alerts after the first finding", n)
		}
		seen = len(recs)
		e.deleteReceipt(t, caseID, 3)
		_, sums := h.handle(t, e.streamRecords(t, caseID)[seen:])
		if sums[telemetry.IntegrityFindings] != 1 {
			t.Fatalf("second finding not counted: %v", sums)
		}
		if got := findingKinds(e.findings(t, caseID)); !slices.Equal(got, []string{"Removed@3", "Removed@4"}) {
			t.Fatalf("findings %v", got)
		}
		if n := e.alertsFor(t, caseID); n != 1 {
			t.Fatalf("%d alerts after the second finding, want still 1", n)
		}
	})

	t.Run("redelivered batch changes nothing", func(t *testing.T) {
		caseID, rs := e.appendCase(t, "redeliver", 6)
		e.putReceipt(t, forgeAfter(t, rs[5], rs[3].Hash))
		recs := e.streamRecords(t, caseID)
		h := e.verifier(t, e.state)
		if _, sums := h.handle(t, recs); sums[telemetry.IntegrityFindings] != 1 {
			t.Fatalf("first delivery: %v", sums)
		}
		fs, w := e.findings(t, caseID), e.watermark(t, caseID)
		if w.Seq != 6 {
			t.Fatalf("watermark %+v, want 6", w)
		}
		// A fresh verifier gets the same batch again, then its tail again.
		for _, batch := range [][]events.DynamoDBEventRecord{recs, recs[4:]} {
			h2 := e.verifier(t, e.state)
			resp, sums := h2.handle(t, batch)
			if len(resp.BatchItemFailures) != 0 || sums[telemetry.IntegrityFindings] != 0 {
				t.Fatalf("redelivery: failures %v metrics %v logs %s", resp.BatchItemFailures, sums, h2.logs.String())
			}
			if got := e.findings(t, caseID); !slices.Equal(got, fs) {
				t.Fatalf("findings changed on redelivery: %v, was %v", got, fs)
			}
			if got := e.watermark(t, caseID); got != w {
				t.Fatalf("watermark changed on redelivery: %+v, was %+v", got, w)
			}
			if got := h2.ops.get("PutItem") + h2.ops.get("BatchWriteItem"); got != 0 {
				t.Fatalf("%d writes on redelivery", got)
			}
		}
		if n := e.alertsFor(t, caseID); n != 1 {
			t.Fatalf("%d alerts", n)
		}
	})

	t.Run("a redelivered receipt that differs is reported", func(t *testing.T) {
		caseID, rs := e.appendCase(t, "replaced", 5)
		recs := e.verified(t, caseID, rs)
		// The receipt at seq 2 deleted and a different one written there.
		e.deleteReceipt(t, caseID, 2)
		e.putReceipt(t, forgeAfter(t, rs[1], rs[0].Hash))
		h := e.verifier(t, e.state)
		_, sums := h.handle(t, e.streamRecords(t, caseID)[len(recs):])
		if got := findingKinds(e.findings(t, caseID)); !slices.Equal(got, []string{"Modified@2", "Removed@2"}) {
			t.Fatalf("findings %v (metrics %v)", got, sums)
		}
	})

	t.Run("stale watermark catches up with one query", func(t *testing.T) {
		caseID, rs := e.appendCase(t, "stale", 12)
		recs := e.streamRecords(t, caseID)
		h := e.verifier(t, e.state)
		h.handle(t, recs[:5])
		if w := e.watermark(t, caseID); w.Seq != 4 {
			t.Fatalf("watermark %+v after the first batch", w)
		}
		// Records 5..8 never reach this verifier.
		h2 := e.verifier(t, e.state)
		resp, sums := h2.handle(t, recs[9:])
		if len(resp.BatchItemFailures) != 0 || sums[telemetry.IntegrityFindings] != 0 || sums[telemetry.ReceiptsVerified] != 7 {
			t.Fatalf("catch-up: failures %v metrics %v logs %s", resp.BatchItemFailures, sums, h2.logs.String())
		}
		if got := h2.ops.get("Query"); got != 1 {
			t.Fatalf("%d queries, want 1", got)
		}
		if w := e.watermark(t, caseID); w.Seq != 11 || w.Hash != rs[11].Hash {
			t.Fatalf("watermark %+v, want the tail", w)
		}
	})

	t.Run("stale watermark finds a change in the gap", func(t *testing.T) {
		caseID, _ := e.appendCase(t, "stalebad", 8)
		recs := e.streamRecords(t, caseID)
		e.verifier(t, e.state).handle(t, recs[:3])
		it := e.item(t, caseID, 4)
		r := it[receipt.AttrReceipt].(*types.AttributeValueMemberS).Value
		it[receipt.AttrReceipt] = &types.AttributeValueMemberS{Value: strings.Replace(r, `"task":"/do/`, `"task":"/dx/`, 1)}
		e.putItem(t, it)
		e.verifier(t, e.state).handle(t, recs[6:])
		if got := findingKinds(e.findings(t, caseID)); !slices.Equal(got, []string{"HashMismatch@4"}) {
			t.Fatalf("findings %v", got)
		}
	})

	t.Run("undecodable item", func(t *testing.T) {
		caseID, rs := e.appendCase(t, "malformed", 4)
		seen := len(e.verified(t, caseID, rs))
		it, err := store.Item(rs[3])
		if err != nil {
			t.Fatal(err)
		}
		it[receipt.AttrSeq] = &types.AttributeValueMemberN{Value: "4"}
		it[receipt.AttrReceipt] = &types.AttributeValueMemberS{Value: `{"seq":4`}
		e.putItem(t, it)
		fake := *rs[3]
		fake.Seq, fake.Hash = 4, strings.Repeat("ab", 32)
		e.putReceipt(t, forgeAfter(t, &fake, fake.Hash))
		h := e.verifier(t, e.state)
		resp, sums := h.handle(t, e.streamRecords(t, caseID)[seen:])
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("failures %v", resp.BatchItemFailures)
		}
		if got := findingKinds(e.findings(t, caseID)); !slices.Equal(got, []string{"Gap@4", "Malformed@4"}) {
			t.Fatalf("findings %v (metrics %v)", got, sums)
		}
		if w := e.watermark(t, caseID); w.Seq != 5 {
			t.Fatalf("watermark %+v, want 5", w)
		}
	})

	t.Run("SNS error retries the alert", func(t *testing.T) {
		caseID, rs := e.appendCase(t, "snsdown", 3)
		seen := len(e.verified(t, caseID, rs))
		e.deleteReceipt(t, caseID, 2)
		recs := e.streamRecords(t, caseID)[seen:]
		down := e.verifierTo(t, e.state, e.topic+"-missing")
		resp, sums := down.handle(t, recs)
		if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != recs[0].Change.SequenceNumber {
			t.Fatalf("failures %v, want the record (logs %s)", resp.BatchItemFailures, down.logs.String())
		}
		if sums[telemetry.IntegrityFindings] != 1 {
			t.Fatalf("metrics %v", sums)
		}
		if n := e.alertsFor(t, caseID); n != 0 {
			t.Fatalf("%d alerts while SNS fails", n)
		}
		// Lambda delivers the record again to a working verifier.
		resp, sums = e.verifier(t, e.state).handle(t, recs)
		if len(resp.BatchItemFailures) != 0 || sums[telemetry.IntegrityFindings] != 0 {
			t.Fatalf("retry: failures %v metrics %v", resp.BatchItemFailures, sums)
		}
		if n := e.alertsFor(t, caseID); n != 1 {
			t.Fatalf("%d alerts after the retry, want 1", n)
		}
		if got := findingKinds(e.findings(t, caseID)); !slices.Equal(got, []string{"Removed@2"}) {
			t.Fatalf("findings %v", got)
		}
	})

	t.Run("SNS error retries the alert of an inserted receipt", func(t *testing.T) {
		caseID, rs := e.appendCase(t, "snsdown-insert", 6)
		seen := len(e.verified(t, caseID, rs))
		other := buildChain(t, "acme", caseID, 6)
		e.putReceipt(t, forgeAfter(t, rs[5], other[4].Hash))
		recs := e.streamRecords(t, caseID)[seen:]
		down := e.verifierTo(t, e.state, e.topic+"-missing")
		resp, _ := down.handle(t, recs)
		if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != recs[0].Change.SequenceNumber {
			t.Fatalf("failures %v, want the forged record (logs %s)", resp.BatchItemFailures, down.logs.String())
		}
		if w := e.watermark(t, caseID); w.Seq != 5 {
			t.Fatalf("watermark %+v moved past the record reported for retry", w)
		}
		// Lambda delivers the record again to a working verifier: the
		// finding exists, the alert goes out now.
		resp, _ = e.verifier(t, e.state).handle(t, recs)
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("retry: failures %v", resp.BatchItemFailures)
		}
		if n := e.alertsFor(t, caseID); n != 1 {
			t.Fatalf("%d alerts after the retry, want 1", n)
		}
		if got := findingKinds(e.findings(t, caseID)); !slices.Equal(got, []string{"BrokenLink@6"}) {
			t.Fatalf("findings %v", got)
		}
	})

	t.Run("DynamoDB error is a batch item failure", func(t *testing.T) {
		caseID, _ := e.appendCase(t, "broken", 3)
		recs := e.streamRecords(t, caseID)
		h := e.verifier(t, "no-such-state-table")
		resp, sums := h.handle(t, recs)
		if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != recs[0].Change.SequenceNumber {
			t.Fatalf("failures %v, want the first record", resp.BatchItemFailures)
		}
		if sums[telemetry.BatchItemFailures] != 1 || sums[telemetry.HandlerPanics] != 0 {
			t.Fatalf("metrics %v", sums)
		}
		if !strings.Contains(h.logs.String(), "reported for retry") {
			t.Fatalf("failure not logged: %s", h.logs.String())
		}
	})
}
