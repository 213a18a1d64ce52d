package lambdasvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// invoker runs one invocation of a function.
type invoker interface {
	invoke(ctx context.Context, payload []byte) (Result, error)
}

// queueAPI is the part of SQS the queue mapping uses.
type queueAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// queuePoller plays one SQS event source mapping.
type queuePoller struct {
	m QueueMapping
	// live, when set, carries the batch size and concurrency as the
	// Lambda API last set them.
	live   *liveMapping
	limit  func() int // workers polling now (default: all)
	url    string
	region string
	sqs    queueAPI
	fn     invoker
	log    *slog.Logger
	// maxWait is the long-poll wait (at most 20 seconds).
	maxWait int32
	// metrics counts receives and deletes as AWS/SQS metrics (nil: none).
	metrics *queueMetrics
}

// run polls with up to concurrency workers until ctx ends; each worker
// gathers a batch, invokes the function and deletes what succeeded. Worker
// i polls only while i is below the mapping's current limit, so that a
// mapping update takes effect on the next poll.
func (q *queuePoller) run(ctx context.Context, concurrency int) {
	done := make(chan struct{})
	for i := range concurrency {
		go func() {
			defer func() { done <- struct{}{} }()
			for ctx.Err() == nil {
				if q.limit != nil && i >= q.limit() {
					sleep(ctx, 200*time.Millisecond)
					continue
				}
				batch := q.gather(ctx)
				if len(batch) == 0 {
					continue
				}
				q.process(context.WithoutCancel(ctx), batch)
			}
		}()
	}
	for range concurrency {
		<-done
	}
}

// gather receives up to BatchSize messages: one long poll, then more
// receives until the batching window closes or the batch is full.
func (q *queuePoller) gather(ctx context.Context) []sqstypes.Message {
	size := q.m.BatchSize
	if q.live != nil {
		size = int(q.live.batch.Load())
	}
	var batch []sqstypes.Message
	var windowEnd time.Time
	for {
		wait := q.maxWait
		if len(batch) > 0 {
			left := time.Until(windowEnd)
			if left <= 0 || len(batch) >= size {
				return batch
			}
			wait = int32(min(left/time.Second, 20))
		}
		out, err := q.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(q.url),
			MaxNumberOfMessages:         int32(min(size-len(batch), 10)),
			WaitTimeSeconds:             wait,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			if ctx.Err() != nil {
				// Messages received by a cancelled call reappear after
				// their visibility timeout.
				return batch
			}
			q.log.Warn("sqs receive", "mapping", q.m.LogicalID, "err", err)
			sleep(ctx, time.Second)
			return batch
		}
		q.metrics.received(len(out.Messages))
		if len(batch) == 0 && len(out.Messages) > 0 {
			windowEnd = time.Now().Add(time.Duration(q.m.WindowSeconds) * time.Second)
		}
		batch = append(batch, out.Messages...)
		if len(batch) == 0 {
			return nil
		}
		if len(out.Messages) == 0 && time.Until(windowEnd) < time.Second {
			// Short remaining window: poll briefly rather than long-poll
			// past it.
			sleep(ctx, min(time.Until(windowEnd), 200*time.Millisecond))
		}
		if ctx.Err() != nil {
			return batch
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// SQSEvent builds the event Lambda delivers for a batch of messages.
func SQSEvent(msgs []sqstypes.Message, queueARN, region string) events.SQSEvent {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, 0, len(msgs))}
	for _, m := range msgs {
		r := events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
			Md5OfBody: aws.ToString(m.MD5OfBody), Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
			Attributes: map[string]string{}, MessageAttributes: map[string]events.SQSMessageAttribute{},
			EventSourceARN: queueARN, EventSource: "aws:sqs", AWSRegion: region,
		}
		for k, v := range m.Attributes {
			r.Attributes[k] = v
		}
		for k, v := range m.MessageAttributes {
			r.MessageAttributes[k] = events.SQSMessageAttribute{
				StringValue: v.StringValue, BinaryValue: v.BinaryValue, DataType: aws.ToString(v.DataType),
				StringListValues: v.StringListValues, BinaryListValues: v.BinaryListValues,
			}
		}
		ev.Records = append(ev.Records, r)
	}
	return ev
}

// FailedMessages decides which messages of a batch failed, from the
// function's result, as the SQS mapping does: a function error fails the
// whole batch; with ReportBatchItemFailures, the listed message ids fail, an
// empty or null list means all succeeded, and a malformed response or an
// unknown or empty id fails the whole batch.
func FailedMessages(res Result, ids []string, reportFailures bool) map[string]bool {
	all := func() map[string]bool {
		out := make(map[string]bool, len(ids))
		for _, id := range ids {
			out[id] = true
		}
		return out
	}
	if res.Failed() {
		return all()
	}
	if !reportFailures {
		return map[string]bool{}
	}
	body := strings.TrimSpace(string(res.Payload))
	if body == "" || body == "null" {
		return map[string]bool{}
	}
	var resp struct {
		BatchItemFailures []struct {
			ItemIdentifier *string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return all()
	}
	known := make(map[string]bool, len(ids))
	for _, id := range ids {
		known[id] = true
	}
	out := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		if f.ItemIdentifier == nil || !known[*f.ItemIdentifier] {
			return all()
		}
		out[*f.ItemIdentifier] = true
	}
	return out
}

// process invokes the function with a batch and deletes the successes.
func (q *queuePoller) process(ctx context.Context, batch []sqstypes.Message) {
	payload, err := json.Marshal(SQSEvent(batch, q.m.QueueARN, q.region))
	if err != nil {
		q.log.Error("encode sqs event", "err", err)
		return
	}
	res, err := q.fn.invoke(ctx, payload)
	if err != nil {
		if !errors.Is(err, errPoolClosed) {
			q.log.Warn("invoke", "function", q.m.Function, "err", err)
		}
		return
	}
	ids := make([]string, len(batch))
	for i, m := range batch {
		ids[i] = aws.ToString(m.MessageId)
	}
	failed := FailedMessages(res, ids, q.m.ReportFailures)
	if res.Failed() {
		q.log.Info("function error: batch left to reappear", "function", q.m.Function, "messages", len(batch), "reason", res.Reason)
	}
	var del []sqstypes.DeleteMessageBatchRequestEntry
	for i, m := range batch {
		if !failed[ids[i]] {
			del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle})
		}
	}
	for len(del) > 0 {
		n := min(len(del), 10)
		out, err := q.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.url), Entries: del[:n]})
		if err != nil {
			q.log.Warn("sqs delete", "mapping", q.m.LogicalID, "err", err)
		} else {
			q.metrics.deleted(len(out.Successful))
			if len(out.Failed) > 0 {
				q.log.Warn("sqs delete: some entries failed", "mapping", q.m.LogicalID, "failed", len(out.Failed))
			}
		}
		del = del[n:]
	}
}
