package executor

import (
	"context"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/sla"
)

// SLIs records service-level buckets (store.SLIs).
type SLIs interface {
	PutBuckets(ctx context.Context, batch string, bs []*sla.Bucket) error
}

// deadLettered records a message failing its last receive as a
// dead-lettered outcome in the service level of the minute, under the
// workflow of the case it belongs to when the chain says so, else
// sla.Unattributed (a message's own claims never choose the workflow whose
// service level it spoils). The bucket is keyed by the message id, so a
// last receive that is itself retried counts once.
func (x *Executor) deadLettered(ctx context.Context, m events.SQSMessage) {
	if x.slis == nil {
		return
	}
	b := sla.NewBucket(x.deadLetterWorkflow(ctx, m), x.now())
	b.Counts.Record(sla.DeadLettered)
	if err := x.slis.PutBuckets(ctx, "dlq-"+m.MessageId, []*sla.Bucket{b}); err != nil {
		x.log.WarnContext(ctx, "dead letter not recorded in the service level", "messageId", m.MessageId, "error", err.Error())
	}
}

// deadLetterWorkflow is the workflow whose service level a dead letter
// counts against: that of the case's genesis receipt when the message names
// an existing case of its own tenant.
func (x *Executor) deadLetterWorkflow(ctx context.Context, m events.SQSMessage) string {
	msg, err := message.Decode([]byte(m.Body))
	if err != nil {
		return sla.Unattributed
	}
	var tenant, caseID string
	switch {
	case msg.Start != nil:
		tenant, caseID = msg.Start.Tenant, msg.Start.CaseID()
	case msg.Continue != nil:
		tenant, caseID = msg.Continue.Tenant, msg.Continue.CaseID
	default:
		return sla.Unattributed
	}
	rs, _, err := x.chains.Range(ctx, caseID, 0, 0) // the genesis alone
	if err != nil || len(rs) == 0 || rs[0].Genesis == nil || rs[0].Tenant != tenant || rs[0].Genesis.Workflow == "" {
		return sla.Unattributed
	}
	return sla.WorkflowKey(rs[0].Genesis.Namespace, rs[0].Genesis.Workflow)
}
