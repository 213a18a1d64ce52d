// Package dlq lists, shows and redrives the messages of KNHK's dead-letter
// queue. On AWS a whole-queue redrive is an SQS message move task; where the
// endpoint has none (the local one), and whenever only some messages are to
// move, messages are moved one at a time: sent to the work queue with their
// body and attributes, then deleted from the dead-letter queue.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/knhk/knhk/shared/message"
)

// SQS is the part of the SQS client the package uses.
type SQS interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	StartMessageMoveTask(ctx context.Context, in *sqs.StartMessageMoveTaskInput, opts ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error)
}

// Queues are the dead-letter queue and the work queue its messages return to.
type Queues struct {
	SQS       SQS
	DeadURL   string
	SourceURL string
	// Hold is how long a message stays hidden from other readers while it is
	// listed or moved (default 30 s). Listed messages are released at once
	// when the listing ends.
	Hold time.Duration
}

// Message is one dead-lettered message.
type Message struct {
	ID           string            `json:"messageId"`
	Kind         string            `json:"kind,omitempty"`   // start, continue or event (empty when the body is invalid)
	CaseID       string            `json:"caseId,omitempty"` // of a valid start or continue message
	Invalid      string            `json:"invalid,omitempty"`
	ReceiveCount int               `json:"receiveCount"`
	SentAt       time.Time         `json:"sentAt,omitzero"`
	Attributes   map[string]string `json:"attributes,omitempty"` // message attributes (string values)
	Body         string            `json:"body"`

	handle string
	attrs  map[string]types.MessageAttributeValue
	trace  string // the AWSTraceHeader system attribute
}

func (q *Queues) hold() int32 {
	if q.Hold <= 0 {
		return 30
	}
	return int32(max(q.Hold/time.Second, 1))
}

// receive takes up to n messages out of sight for the hold time.
func (q *Queues) receive(ctx context.Context, n int32) ([]Message, error) {
	out, err := q.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(q.DeadURL), MaxNumberOfMessages: min(max(n, 1), 10), VisibilityTimeout: q.hold(),
		WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
	})
	if err != nil {
		return nil, fmt.Errorf("receive from the dead-letter queue: %w", err)
	}
	msgs := make([]Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		msgs = append(msgs, describe(m))
	}
	return msgs, nil
}

// describe decodes what a dead-lettered message is about.
func describe(m types.Message) Message {
	d := Message{ID: aws.ToString(m.MessageId), Body: aws.ToString(m.Body), handle: aws.ToString(m.ReceiptHandle), attrs: m.MessageAttributes}
	d.ReceiveCount, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		d.SentAt = time.UnixMilli(ms).UTC()
	}
	d.trace = m.Attributes[string(types.MessageSystemAttributeNameAWSTraceHeader)]
	for k, v := range m.MessageAttributes {
		if v.StringValue != nil {
			if d.Attributes == nil {
				d.Attributes = map[string]string{}
			}
			d.Attributes[k] = *v.StringValue
		}
	}
	msg, err := message.Decode([]byte(d.Body))
	switch {
	case err != nil:
		d.Invalid = err.Error()
	case msg.Start != nil:
		d.Kind, d.CaseID = string(message.KindStart), msg.Start.CaseID()
	case msg.Continue != nil:
		d.Kind, d.CaseID = string(message.KindContinue), msg.Continue.CaseID
	default:
		d.Kind = "event"
	}
	return d
}

// release makes held messages visible again.
func (q *Queues) release(ctx context.Context, msgs []Message) error {
	var errs []error
	for start := 0; start < len(msgs); start += 10 {
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, 0, 10)
		for i, m := range msgs[start:min(start+10, len(msgs))] {
			entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(m.handle), VisibilityTimeout: 0,
			})
		}
		if _, err := q.SQS.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(q.DeadURL), Entries: entries}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release listed messages (they reappear after %ds): %w", q.hold(), err)
	}
	return nil
}

// List returns up to max messages (0: all that can be seen), without
// removing any. Each message is seen once per listing.
func (q *Queues) List(ctx context.Context, max int) ([]Message, error) {
	var held []Message
	defer func() { _ = q.release(context.WithoutCancel(ctx), held) }()
	for max <= 0 || len(held) < max {
		want := int32(10)
		if max > 0 {
			want = int32(min(max-len(held), 10))
		}
		got, err := q.receive(ctx, want)
		if err != nil {
			return held, err
		}
		if len(got) == 0 {
			break
		}
		held = append(held, got...)
	}
	return held, nil
}

// Show returns the message with the given id, if it is in the queue.
func (q *Queues) Show(ctx context.Context, id string) (Message, bool, error) {
	msgs, err := q.List(ctx, 0)
	if err != nil {
		return Message{}, false, err
	}
	for _, m := range msgs {
		if m.ID == id {
			return m, true, nil
		}
	}
	return Message{}, false, nil
}

// Filter selects the messages a redrive moves.
type Filter struct {
	CaseID string // only messages of this case
	Max    int    // at most this many (0: all)
}

// Result says what a redrive did.
type Result struct {
	// Moved are the ids (in the dead-letter queue) of the messages moved one
	// at a time.
	Moved []string `json:"moved"`
	// TaskHandle names the SQS message move task that moves the whole queue,
	// when one was started instead.
	TaskHandle string `json:"taskHandle,omitempty"`
}

// Redrive returns messages to the work queue. With no filter it starts an SQS
// message move task when the endpoint has them; otherwise, or when the
// endpoint has none, it moves matching messages one at a time, each sent
// before it is deleted, so a failure in between leaves a copy in both
// queues (a harmless duplicate: the executor recognises redelivered work)
// and never none.
func (q *Queues) Redrive(ctx context.Context, f Filter) (Result, error) {
	if f.CaseID == "" && f.Max <= 0 {
		h, err := q.moveTask(ctx)
		if err == nil {
			return Result{TaskHandle: h}, nil
		}
		if !unsupported(err) {
			return Result{}, err
		}
	}
	res := Result{Moved: []string{}}
	var skipped []Message
	defer func() { _ = q.release(context.WithoutCancel(ctx), skipped) }()
	for f.Max <= 0 || len(res.Moved) < f.Max {
		got, err := q.receive(ctx, 1)
		if err != nil {
			return res, err
		}
		if len(got) == 0 {
			return res, nil
		}
		m := got[0]
		if f.CaseID != "" && m.CaseID != f.CaseID {
			skipped = append(skipped, m)
			continue
		}
		if err := q.move(ctx, m); err != nil {
			return res, err
		}
		res.Moved = append(res.Moved, m.ID)
	}
	return res, nil
}

// move sends one message to the work queue as it was, then deletes it from
// the dead-letter queue.
func (q *Queues) move(ctx context.Context, m Message) error {
	in := &sqs.SendMessageInput{QueueUrl: aws.String(q.SourceURL), MessageBody: aws.String(m.Body)}
	if len(m.attrs) > 0 {
		in.MessageAttributes = m.attrs
	}
	if m.trace != "" {
		in.MessageSystemAttributes = map[string]types.MessageSystemAttributeValue{
			string(types.MessageSystemAttributeNameForSendsAWSTraceHeader): {DataType: aws.String("String"), StringValue: aws.String(m.trace)},
		}
	}
	if _, err := q.SQS.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("redrive %s: send to the work queue: %w", m.ID, err)
	}
	if _, err := q.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.DeadURL), ReceiptHandle: aws.String(m.handle)}); err != nil {
		return fmt.Errorf("redrive %s: sent, but not deleted from the dead-letter queue (it will be seen again): %w", m.ID, err)
	}
	return nil
}

// moveTask starts an SQS message move task from the dead-letter queue to the
// work queue.
func (q *Queues) moveTask(ctx context.Context) (string, error) {
	arn := func(url string) (string, error) {
		out, err := q.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
		if err != nil {
			return "", fmt.Errorf("queue arn of %s: %w", url, err)
		}
		return out.Attributes[string(types.QueueAttributeNameQueueArn)], nil
	}
	src, err := arn(q.DeadURL)
	if err != nil {
		return "", err
	}
	dst, err := arn(q.SourceURL)
	if err != nil {
		return "", err
	}
	out, err := q.SQS.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(src), DestinationArn: aws.String(dst)})
	if err != nil {
		return "", fmt.Errorf("start message move task: %w", err)
	}
	return aws.ToString(out.TaskHandle), nil
}

// unsupported reports whether an endpoint answered that it has no such
// operation (the local endpoint has no message move tasks).
func unsupported(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "InvalidAction", "UnsupportedOperation", "NotImplemented", "InternalFailure", "AWS.SimpleQueueService.UnsupportedOperation":
			return true
		}
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode() == 501 || re.HTTPStatusCode() == 500
	}
	return false
}
