package batch

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/aws/aws-lambda-go/events"
)

// SQSOptions configure ProcessSQS.
type SQSOptions struct {
	Options
	// Key returns the group of a message; messages of one group are handled
	// in batch order. An empty key, or a nil Key, makes the message a group of
	// its own.
	Key func(events.SQSMessage) string
}

// ProcessSQS handles the messages of an SQS batch and returns the partial
// batch response for Lambda (the event source mapping must enable
// ReportBatchItemFailures). A message is reported by id when its handler
// failed or panicked, when an earlier message of its group failed (it is not
// started), or when the remaining time fell below the margin before it
// started. Messages whose handler succeeded or returned a Permanent error are
// not reported, so SQS deletes them. Each id is reported at most once.
func ProcessSQS(ctx context.Context, ev events.SQSEvent, opts SQSOptions, handle func(context.Context, events.SQSMessage) error) events.SQSEventResponse {
	msgs := ev.Records
	key := func(i int) (string, bool) {
		if opts.Key == nil {
			return "", false
		}
		k := safeKey(opts.Key, msgs[i])
		return k, k != ""
	}
	out := run(ctx, opts.Options, job{
		n:      len(msgs),
		key:    key,
		id:     func(i int) string { return msgs[i].MessageId },
		handle: func(ctx context.Context, i int) error { return handle(ctx, msgs[i]) },
	})
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	seen := make(map[string]bool)
	for i, o := range out {
		if o == succeeded || o == dropped || seen[msgs[i].MessageId] {
			continue
		}
		seen[msgs[i].MessageId] = true
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: msgs[i].MessageId})
	}
	return resp
}

// ByMessageAttribute groups messages by the string value of a message
// attribute, e.g. "caseId".
func ByMessageAttribute(name string) func(events.SQSMessage) string {
	return func(m events.SQSMessage) string {
		a, ok := m.MessageAttributes[name]
		if !ok || a.StringValue == nil {
			return ""
		}
		return *a.StringValue
	}
}

// ByMessageGroupID groups messages of a FIFO queue by their MessageGroupId,
// so that a failure holds back only the rest of its message group.
func ByMessageGroupID(m events.SQSMessage) string {
	return m.Attributes["MessageGroupId"]
}

// ByBodyField groups messages by a top-level string member of their JSON
// body, e.g. "caseId". A body that is not a JSON object, or lacks the member,
// yields no key.
func ByBodyField(field string) func(events.SQSMessage) string {
	return func(m events.SQSMessage) string {
		var body map[string]json.RawMessage
		if json.Unmarshal([]byte(m.Body), &body) != nil {
			return ""
		}
		var s string
		if json.Unmarshal(body[field], &s) != nil {
			return ""
		}
		return s
	}
}

// ReceiveCount returns how many times SQS has delivered m
// (ApproximateReceiveCount), or 0 when the attribute is missing or malformed.
// A message that fails when ReceiveCount reaches the queue's maxReceiveCount
// goes to the dead-letter queue.
func ReceiveCount(m events.SQSMessage) int {
	n, err := strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
	if err != nil || n < 0 {
		return 0
	}
	return n
}
