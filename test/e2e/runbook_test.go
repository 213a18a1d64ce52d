package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/receipt"
)

// TestDeadLetterRunbookRunsAsWritten runs the ```sh blocks of the
// dead-letter runbook as written, with MESSAGE_ID and CASE_ID naming a
// message in the dead-letter queue (the start message of a completed case,
// put there as SQS would after maxReceiveCount receives), the way the
// runbook tells an operator to set them from `knhk dlq list`; every
// command, the redrives included, must exit 0.
func TestDeadLetterRunbookRunsAsWritten(t *testing.T) {
	noteFailure(t)
	if suite.external {
		t.Skip("runs against the self-contained stack only")
	}
	ctx := ctxFor(t, 120*time.Second)
	c := newCase("commerce", "order-routing", "runbook-dlq", map[string]any{"orderId": "ord-dlq", "region": "EU", "priority": "standard",
		"lines": []map[string]any{{"sku": "SKU-1", "quantity": 1, "unitPrice": 5}}})
	body, err := json.Marshal(message.Start{Kind: message.KindStart, Tenant: c.Tenant,
		Workflow: message.WorkflowRef{Namespace: c.Namespace, Name: c.Workflow}, IdempotencyKey: c.Key, Input: c.Input})
	if err != nil {
		t.Fatal(err)
	}
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{c}); err != nil {
		t.Fatal(err)
	}
	awaitChain(t, ctx, c.ID, func(rs []*receipt.Receipt) bool { return len(rs) > 0 && rs[len(rs)-1].Type == history.CaseCompleted })
	sent, err := suite.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(suite.res.DeadLetterURL), MessageBody: aws.String(string(body))})
	if err != nil {
		t.Fatal(err)
	}
	runDocBlocks(t, "docs/runbooks/dead-letter-queue-depth.md", "MESSAGE_ID="+aws.ToString(sent.MessageId), "CASE_ID="+c.ID)
}
