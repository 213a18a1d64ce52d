package lambdasvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	st "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/uuid"
)

// streamAPI is the part of DynamoDB Streams the stream mapping uses.
type streamAPI interface {
	DescribeStream(ctx context.Context, in *dynamodbstreams.DescribeStreamInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
	GetShardIterator(ctx context.Context, in *dynamodbstreams.GetShardIteratorInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *dynamodbstreams.GetRecordsInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

// streamPoller plays one DynamoDB stream event source mapping.
type streamPoller struct {
	m           StreamMapping
	fn          invoker
	functionARN string
	streams     streamAPI
	sqs         *sqs.Client
	log         *slog.Logger
	region      string
	poll        time.Duration
	retryDelay  time.Duration
	ages        *iteratorAges
	positions   *positions
	failureURL  string
}

// run discovers shards and reads each one after its parent is done, until
// ctx ends.
func (sp *streamPoller) run(ctx context.Context) {
	if sp.m.OnFailureARN != "" {
		if service(sp.m.OnFailureARN) != "sqs" {
			sp.log.Warn("on-failure destination is not an SQS queue: failed batches are dropped", "mapping", sp.m.LogicalID)
		} else if u, err := queueURL(ctx, sp.sqs, sp.m.OnFailureARN); err != nil {
			sp.log.Error("on-failure destination", "mapping", sp.m.LogicalID, "err", err)
		} else {
			sp.failureURL = u
		}
	}
	done := map[string]chan struct{}{}
	var wg sync.WaitGroup
	first := true
	for ctx.Err() == nil {
		shards, err := sp.shards(ctx)
		if err != nil {
			if ctx.Err() == nil {
				sp.log.Warn("describe stream", "mapping", sp.m.LogicalID, "err", err)
			}
		}
		known := map[string]bool{}
		for _, sh := range shards {
			known[aws.ToString(sh.ShardId)] = true
		}
		for _, sh := range shards {
			id := aws.ToString(sh.ShardId)
			if _, started := done[id]; started {
				continue
			}
			ch := make(chan struct{})
			done[id] = ch
			var parent chan struct{}
			if p := aws.ToString(sh.ParentShardId); p != "" && known[p] {
				parent = done[p]
				if parent == nil {
					// Parent listed later in this page: start it first
					// next round.
					delete(done, id)
					continue
				}
			}
			pos := st.ShardIteratorTypeTrimHorizon
			if first && sp.m.StartingPosition == "LATEST" {
				pos = st.ShardIteratorTypeLatest
			}
			wg.Go(func() {
				defer close(ch)
				if parent != nil {
					select {
					case <-parent:
					case <-ctx.Done():
						return
					}
				}
				sp.readShard(ctx, id, pos)
			})
		}
		if err == nil {
			first = false
		}
		// New shards are rare (a stream rolls its shards every few hours):
		// look often only until the first one is there.
		if len(shards) == 0 {
			sleep(ctx, 2*time.Second)
		} else {
			sleep(ctx, 10*time.Second)
		}
	}
	wg.Wait()
}

func (sp *streamPoller) shards(ctx context.Context) ([]st.Shard, error) {
	var out []st.Shard
	var start *string
	for {
		d, err := sp.streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(sp.m.StreamARN), ExclusiveStartShardId: start})
		if err != nil {
			return out, fmt.Errorf("describe stream %s: %w", sp.m.StreamARN, err)
		}
		if d.StreamDescription == nil {
			return out, nil
		}
		out = append(out, d.StreamDescription.Shards...)
		start = d.StreamDescription.LastEvaluatedShardId
		if start == nil {
			return out, nil
		}
	}
}

// readShard reads a shard in order, batch by batch, until it is closed or
// ctx ends. It starts after the last record handled before (positions),
// else at pos.
func (sp *streamPoller) readShard(ctx context.Context, shard string, pos st.ShardIteratorType) {
	key := positionKey(sp.m.LogicalID, sp.m.StreamARN, shard)
	in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(sp.m.StreamARN), ShardId: aws.String(shard), ShardIteratorType: pos}
	if seq, ok := sp.positions.get(key); ok {
		in.ShardIteratorType, in.SequenceNumber = st.ShardIteratorTypeAfterSequenceNumber, aws.String(seq)
	}
	it, err := sp.streams.GetShardIterator(ctx, in)
	if err != nil && in.SequenceNumber != nil && ctx.Err() == nil {
		sp.log.Warn("cannot resume after the last handled record; starting at the mapping's position",
			"mapping", sp.m.LogicalID, "shard", shard, "sequenceNumber", aws.ToString(in.SequenceNumber), "err", err)
		in.ShardIteratorType, in.SequenceNumber = pos, nil
		it, err = sp.streams.GetShardIterator(ctx, in)
	}
	if err != nil {
		if ctx.Err() == nil {
			sp.log.Error("shard iterator", "mapping", sp.m.LogicalID, "shard", shard, "err", err)
		}
		return
	}
	iter := it.ShardIterator
	var buf []st.Record
	var windowEnd time.Time
	for ctx.Err() == nil {
		if iter != nil && len(buf) < sp.m.BatchSize {
			out, err := sp.streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(int32(min(sp.m.BatchSize-len(buf), 1000)))})
			if err != nil {
				if ctx.Err() == nil {
					sp.log.Warn("get records", "mapping", sp.m.LogicalID, "shard", shard, "err", err)
					sleep(ctx, sp.poll)
				}
				continue
			}
			if len(buf) == 0 && len(out.Records) > 0 {
				windowEnd = time.Now().Add(time.Duration(sp.m.WindowSeconds) * time.Second)
			}
			buf = append(buf, out.Records...)
			iter = out.NextShardIterator
			if len(out.Records) > 0 && len(buf) < sp.m.BatchSize && time.Now().Before(windowEnd) {
				continue
			}
			if len(out.Records) == 0 && len(buf) > 0 && time.Now().Before(windowEnd) {
				sleep(ctx, min(sp.poll, time.Until(windowEnd)))
				continue
			}
		}
		if len(buf) == 0 {
			if iter == nil {
				return // shard closed and drained
			}
			sleep(ctx, sp.poll)
			continue
		}
		n := min(len(buf), sp.m.BatchSize)
		if !sp.handle(ctx, shard, buf[:n]) {
			return // stopping: the batch is read again after a restart
		}
		if last := buf[n-1].Dynamodb; last != nil && last.SequenceNumber != nil {
			if err := sp.positions.set(key, *last.SequenceNumber); err != nil {
				sp.log.Warn("stream position not kept", "mapping", sp.m.LogicalID, "shard", shard, "err", err)
			}
		}
		buf = buf[n:]
	}
}

// work is a batch still to deliver and the invocations it has had.
type work struct {
	records  []st.Record
	attempts int
}

// handle delivers one batch: retries on error, bisects when configured,
// resumes from a reported failure, and sends what cannot be delivered to the
// on-failure destination. It reports whether the batch is done with (false
// when the service stopped first).
func (sp *streamPoller) handle(ctx context.Context, shard string, batch []st.Record) bool {
	queue := []work{{records: batch}}
	for len(queue) > 0 && ctx.Err() == nil {
		w := queue[0]
		queue = queue[1:]
		if sp.m.MaxRecordAge >= 0 {
			if age := time.Since(created(w.records[0])); age > time.Duration(sp.m.MaxRecordAge)*time.Second {
				sp.fail(ctx, shard, w, "RecordAgeExceeded", Result{})
				continue
			}
		}
		payload, err := json.Marshal(DynamoDBEvent(w.records, sp.m.StreamARN, sp.region))
		if err != nil {
			sp.log.Error("encode stream event", "err", err)
			return false
		}
		res, err := sp.fn.invoke(context.WithoutCancel(ctx), payload)
		if err != nil {
			if errors.Is(err, errPoolClosed) {
				return false
			}
			res = Result{FunctionError: "Unhandled", Reason: err.Error()}
		}
		w.attempts++
		from := FirstFailedRecord(res, w.records, sp.m.ReportFailures)
		sp.ages.record(sp.m.Function, time.Since(created(w.records[len(w.records)-1])))
		if from < 0 {
			continue
		}
		rest := work{records: w.records[from:], attempts: w.attempts}
		sp.log.Info("stream batch failed", "function", sp.m.Function, "records", len(rest.records), "attempt", w.attempts, "reason", res.Reason)
		if sp.m.MaxRetryAttempts >= 0 && w.attempts > sp.m.MaxRetryAttempts {
			sp.fail(ctx, shard, rest, "RetryAttemptsExhausted", res)
			continue
		}
		if sp.m.Bisect && len(rest.records) > 1 {
			half := len(rest.records) / 2
			// Each half is a new batch with its own retry budget, so
			// bisection always isolates a single failing record.
			queue = append([]work{{records: rest.records[:half]}, {records: rest.records[half:]}}, queue...)
			continue
		}
		sleep(ctx, sp.retryDelay)
		queue = append([]work{rest}, queue...)
	}
	return len(queue) == 0
}

// FirstFailedRecord returns the index of the first record to retry, or -1
// when the batch succeeded: 0 on a function error; with
// ReportBatchItemFailures, the earliest reported sequence number (an
// unknown or empty identifier or a malformed response fails the batch).
func FirstFailedRecord(res Result, records []st.Record, reportFailures bool) int {
	ids := make([]string, len(records))
	for i, r := range records {
		if r.Dynamodb != nil {
			ids[i] = aws.ToString(r.Dynamodb.SequenceNumber)
		}
	}
	failed := FailedMessages(res, ids, reportFailures)
	for i, id := range ids {
		if failed[id] {
			return i
		}
	}
	return -1
}

func created(r st.Record) time.Time {
	if r.Dynamodb != nil && r.Dynamodb.ApproximateCreationDateTime != nil {
		return *r.Dynamodb.ApproximateCreationDateTime
	}
	return time.Now()
}

// FailureRecord is what a stream mapping sends to its on-failure
// destination, in the shape Lambda uses.
type FailureRecord struct {
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionARN            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	ResponseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError,omitempty"`
	} `json:"responseContext"`
	Version   string    `json:"version"`
	Timestamp string    `json:"timestamp"`
	BatchInfo BatchInfo `json:"DDBStreamBatchInfo"`
}

// BatchInfo locates a failed batch in its stream.
type BatchInfo struct {
	ShardID                         string `json:"shardId"`
	StartSequenceNumber             string `json:"startSequenceNumber"`
	EndSequenceNumber               string `json:"endSequenceNumber"`
	ApproximateArrivalOfFirstRecord string `json:"approximateArrivalOfFirstRecord"`
	ApproximateArrivalOfLastRecord  string `json:"approximateArrivalOfLastRecord"`
	BatchSize                       int    `json:"batchSize"`
	StreamARN                       string `json:"streamArn"`
}

func (sp *streamPoller) fail(ctx context.Context, shard string, w work, condition string, res Result) {
	var f FailureRecord
	f.RequestContext.RequestID = uuid.NewString()
	f.RequestContext.FunctionARN = sp.functionARN
	f.RequestContext.Condition = condition
	f.RequestContext.ApproximateInvokeCount = w.attempts
	f.ResponseContext.StatusCode = 200
	f.ResponseContext.ExecutedVersion = "$LATEST"
	f.ResponseContext.FunctionError = res.FunctionError
	f.Version = "1.0"
	f.Timestamp = time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	first, last := w.records[0], w.records[len(w.records)-1]
	f.BatchInfo = BatchInfo{ShardID: shard, StreamARN: sp.m.StreamARN, BatchSize: len(w.records),
		StartSequenceNumber: seq(first), EndSequenceNumber: seq(last),
		ApproximateArrivalOfFirstRecord: created(first).UTC().Format(time.RFC3339),
		ApproximateArrivalOfLastRecord:  created(last).UTC().Format(time.RFC3339)}
	if sp.failureURL == "" {
		sp.log.Warn("stream batch dropped: no on-failure destination", "function", sp.m.Function, "condition", condition,
			"start", f.BatchInfo.StartSequenceNumber, "end", f.BatchInfo.EndSequenceNumber)
		return
	}
	body, _ := json.Marshal(f)
	if _, err := sp.sqs.SendMessage(context.WithoutCancel(ctx), &sqs.SendMessageInput{QueueUrl: aws.String(sp.failureURL), MessageBody: aws.String(string(body))}); err != nil {
		sp.log.Error("send to on-failure destination", "mapping", sp.m.LogicalID, "err", err)
	}
}

func seq(r st.Record) string {
	if r.Dynamodb == nil {
		return ""
	}
	return aws.ToString(r.Dynamodb.SequenceNumber)
}

// DynamoDBEvent builds the event Lambda delivers for a batch of stream
// records.
func DynamoDBEvent(records []st.Record, streamARN, region string) events.DynamoDBEvent {
	ev := events.DynamoDBEvent{Records: make([]events.DynamoDBEventRecord, 0, len(records))}
	for _, r := range records {
		rec := events.DynamoDBEventRecord{
			AWSRegion: aws.ToString(r.AwsRegion), EventID: aws.ToString(r.EventID), EventName: string(r.EventName),
			EventSource: aws.ToString(r.EventSource), EventVersion: aws.ToString(r.EventVersion), EventSourceArn: streamARN,
		}
		if rec.AWSRegion == "" {
			rec.AWSRegion = region
		}
		if rec.EventSource == "" {
			rec.EventSource = "aws:dynamodb"
		}
		if r.UserIdentity != nil {
			rec.UserIdentity = &events.DynamoDBUserIdentity{Type: aws.ToString(r.UserIdentity.Type), PrincipalID: aws.ToString(r.UserIdentity.PrincipalId)}
		}
		if d := r.Dynamodb; d != nil {
			rec.Change = events.DynamoDBStreamRecord{
				Keys: convertItem(d.Keys), NewImage: convertItem(d.NewImage), OldImage: convertItem(d.OldImage),
				SequenceNumber: aws.ToString(d.SequenceNumber), SizeBytes: aws.ToInt64(d.SizeBytes), StreamViewType: string(d.StreamViewType),
			}
			if d.ApproximateCreationDateTime != nil {
				rec.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: *d.ApproximateCreationDateTime}
			}
		}
		ev.Records = append(ev.Records, rec)
	}
	return ev
}

func convertItem(m map[string]st.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if m == nil {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(m))
	for k, v := range m {
		out[k] = convertAV(v)
	}
	return out
}

func convertAV(v st.AttributeValue) events.DynamoDBAttributeValue {
	switch x := v.(type) {
	case *st.AttributeValueMemberS:
		return events.NewStringAttribute(x.Value)
	case *st.AttributeValueMemberN:
		return events.NewNumberAttribute(x.Value)
	case *st.AttributeValueMemberB:
		return events.NewBinaryAttribute(x.Value)
	case *st.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(x.Value)
	case *st.AttributeValueMemberNULL:
		return events.NewNullAttribute()
	case *st.AttributeValueMemberSS:
		return events.NewStringSetAttribute(x.Value)
	case *st.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(x.Value)
	case *st.AttributeValueMemberBS:
		return events.NewBinarySetAttribute(x.Value)
	case *st.AttributeValueMemberL:
		l := make([]events.DynamoDBAttributeValue, len(x.Value))
		for i, e := range x.Value {
			l[i] = convertAV(e)
		}
		return events.NewListAttribute(l)
	case *st.AttributeValueMemberM:
		return events.NewMapAttribute(convertItem(x.Value))
	}
	return events.NewNullAttribute()
}

// iteratorAges keeps the latest iterator age per function.
type iteratorAges struct {
	mu   sync.Mutex
	ages map[string]time.Duration
}

func (a *iteratorAges) record(fn string, age time.Duration) {
	a.mu.Lock()
	a.ages[fn] = max(age, 0)
	a.mu.Unlock()
}

// publish sends IteratorAge (AWS/Lambda, by FunctionName) every interval
// for the functions that processed records since the last publish.
func (a *iteratorAges) publish(ctx context.Context, cw metricPutter, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		ages := a.ages
		a.ages = map[string]time.Duration{}
		a.mu.Unlock()
		var data []cwtypes.MetricDatum
		now := time.Now()
		for fn, age := range ages {
			data = append(data, cwtypes.MetricDatum{MetricName: aws.String("IteratorAge"), Unit: cwtypes.StandardUnitMilliseconds,
				Value: aws.Float64(float64(age.Milliseconds())), Timestamp: aws.Time(now),
				Dimensions: []cwtypes.Dimension{{Name: aws.String("FunctionName"), Value: aws.String(fn)}}})
		}
		if len(data) == 0 {
			continue
		}
		if _, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("AWS/Lambda"), MetricData: data}); err != nil && ctx.Err() == nil {
			log.Warn("put IteratorAge", "err", err)
		}
	}
}
