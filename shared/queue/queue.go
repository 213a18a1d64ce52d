// Package queue sends KNHK's work-queue messages through SQS: batches of up
// to ten, per-message delays up to the SQS maximum, and the W3C trace context
// as a message attribute.
package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/shared/telemetry"
)

// MaxDelay is the longest delay SQS gives one message; longer waits are
// re-scheduled by the receiver.
const MaxDelay = 15 * time.Minute

// maxBatch is the SendMessageBatch limit.
const maxBatch = 10

// TraceAttribute names the message attribute carrying the W3C traceparent.
const TraceAttribute = "traceparent"

// CaseAttribute names the message attribute carrying the case id, so that a
// batch can be grouped by case without decoding bodies.
const CaseAttribute = "knhk-case"

// Message is one message to send.
type Message struct {
	Body        any           // encoded as JSON
	Delay       time.Duration // clamped to [0, MaxDelay]
	CaseID      string        // optional, becomes the knhk-case attribute
	TraceParent string        // optional, becomes the traceparent attribute
}

// SQS is the part of the SQS client the sender uses.
type SQS interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// Sender sends messages to one queue.
type Sender struct {
	client SQS
	url    string
}

// NewSender returns a sender to the queue at url.
func NewSender(client SQS, url string) *Sender { return &Sender{client: client, url: url} }

// Send sends msgs in batches of ten. Entries SQS refuses are retried once;
// an error names those still refused. When ctx carries a span, the
// traceparent attribute names it (the message's own trace context), so the
// receiver's span is its child; the body's trace is left as it is.
func (s *Sender) Send(ctx context.Context, msgs ...Message) error {
	if tp := telemetry.TraceParent(ctx); tp != "" {
		msgs = append([]Message(nil), msgs...)
		for i := range msgs {
			msgs[i].TraceParent = tp
		}
	}
	for start := 0; start < len(msgs); start += maxBatch {
		end := min(start+maxBatch, len(msgs))
		entries := make([]types.SendMessageBatchRequestEntry, 0, end-start)
		for i, m := range msgs[start:end] {
			e, err := entry(strconv.Itoa(start+i), m)
			if err != nil {
				return err
			}
			entries = append(entries, e)
		}
		if err := s.sendBatch(ctx, entries); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sender) sendBatch(ctx context.Context, entries []types.SendMessageBatchRequestEntry) error {
	for attempt := 0; ; attempt++ {
		out, err := s.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &s.url, Entries: entries})
		if err != nil {
			return fmt.Errorf("send %d messages: %w", len(entries), err)
		}
		if len(out.Failed) == 0 {
			return nil
		}
		failed := map[string]types.BatchResultErrorEntry{}
		for _, f := range out.Failed {
			failed[aws.ToString(f.Id)] = f
		}
		if attempt > 0 || !retryable(out.Failed) {
			f := out.Failed[0]
			return fmt.Errorf("send: %d of %d messages refused, first %s: %s", len(out.Failed), len(entries), aws.ToString(f.Code), aws.ToString(f.Message))
		}
		var again []types.SendMessageBatchRequestEntry
		for _, e := range entries {
			if _, ok := failed[aws.ToString(e.Id)]; ok {
				again = append(again, e)
			}
		}
		entries = again
	}
}

// retryable reports whether every refusal is the service's fault.
func retryable(fs []types.BatchResultErrorEntry) bool {
	for _, f := range fs {
		if f.SenderFault {
			return false
		}
	}
	return true
}

func entry(id string, m Message) (types.SendMessageBatchRequestEntry, error) {
	body, err := json.Marshal(m.Body)
	if err != nil {
		return types.SendMessageBatchRequestEntry{}, fmt.Errorf("encode message: %w", err)
	}
	delay := min(max(m.Delay, 0), MaxDelay)
	e := types.SendMessageBatchRequestEntry{
		Id:           aws.String(id),
		MessageBody:  aws.String(string(body)),
		DelaySeconds: int32((delay + time.Second - 1) / time.Second),
	}
	attrs := map[string]types.MessageAttributeValue{}
	if m.CaseID != "" {
		attrs[CaseAttribute] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(m.CaseID)}
	}
	if m.TraceParent != "" {
		attrs[TraceAttribute] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(m.TraceParent)}
	}
	if len(attrs) > 0 {
		e.MessageAttributes = attrs
	}
	return e, nil
}
