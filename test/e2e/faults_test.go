package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/localstack/lambdasvc"
	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

// TestPoisonMessageDeadLetters sends a start message whose inputRef names
// a blob that is not stored: the executor cannot read the input and treats
// that as transient (the blob may be written late), so every receive fails
// and the message lands in the dead-letter queue after maxReceiveCount
// receives, while the cases sent with it complete, including the one whose
// case id the poison (and an invalid message) carried in its knhk-case
// attribute in the same batch. Self-contained only: it
// lowers the work queue's visibility timeout (see withVisibilityTimeout).
func TestPoisonMessageDeadLetters(t *testing.T) {
	if suite.external {
		t.Skip("needs a short work-queue visibility timeout: the deployed 360 s makes five receives take half an hour")
	}
	noteFailure(t)
	withVisibilityTimeout(t, 5)
	ctx := ctxFor(t, 120*time.Second)
	since := time.Now()
	var missing [32]byte
	_, _ = rand.Read(missing[:])
	key := suite.run + "-poison"
	poison := message.Start{Kind: message.KindStart, Tenant: suite.tenant, IdempotencyKey: key,
		Workflow: message.WorkflowRef{Namespace: "e2e", Name: "five-tasks"}, InputRef: "sha256:" + hex.EncodeToString(missing[:])}
	poisonID := poison.CaseID()
	var others []localrun.Case
	for i := range 6 {
		others = append(others, newCase("e2e", "five-tasks", fmt.Sprintf("beside-poison-%d", i), map[string]any{"qty": i + 1, "unitPrice": 10}))
	}
	// In one batch with the victim's start: the poison and a message that
	// fails validation, both carrying the victim's case id in their
	// knhk-case attribute. Neither may hold the victim back.
	victim := others[0]
	invalid := map[string]any{"kind": "continue", "tenant": suite.tenant, "caseId": victim.ID, "reason": "forged"}
	if err := suite.work.Send(ctx, queue.Message{Body: poison, CaseID: victim.ID}, queue.Message{Body: invalid, CaseID: victim.ID},
		queue.Message{CaseID: victim.ID, Body: message.Start{Kind: message.KindStart, Tenant: suite.tenant, IdempotencyKey: victim.Key,
			Workflow: message.WorkflowRef{Namespace: victim.Namespace, Name: victim.Workflow}, Input: victim.Input}}); err != nil {
		t.Fatal(err)
	}
	if err := localrun.Submit(ctx, suite.work, others); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, others)
	for _, c := range others {
		readChain(t, ctx, c.ID)
	}
	// Find the poison message in the dead-letter queue by its key.
	var got sqstypes.Message
	err := poll(ctx, time.Second, func() (bool, error) {
		out, err := suite.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(suite.res.DeadLetterURL),
			MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount}})
		if err != nil {
			return false, err
		}
		for _, m := range out.Messages {
			if strings.Contains(aws.ToString(m.Body), key) {
				got = m
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("poison message never reached the dead-letter queue: %v", err)
	}
	var body message.Start
	if err := json.Unmarshal([]byte(aws.ToString(got.Body)), &body); err != nil || body.InputRef != poison.InputRef {
		t.Errorf("dead-lettered body %s, want the poison start message", aws.ToString(got.Body))
	}
	// The count carries over from the work queue; our own receive adds one.
	n, _ := strconv.Atoi(got.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
	if n < maxReceiveCount {
		t.Errorf("dead-lettered after %d receives, want at least maxReceiveCount %d", n, maxReceiveCount)
	}
	t.Logf("dead-lettered with ApproximateReceiveCount %d (maxReceiveCount %d)", n, maxReceiveCount)
	if tail, err := suite.chains.Tail(ctx, poisonID); err != nil || tail != nil {
		t.Errorf("the poison message opened a case: %+v, %v", tail, err)
	}
	// The executor reported the last failing receive as bound for the DLQ.
	awaitMetricSum(t, ctx, telemetry.DLQBound, since, 1)
}

// TestTamperFindings modifies one receipt and deletes another directly in
// the receipts table: the verifier records a Modified and a Removed finding
// for the two cases, and publishes one alert per case to the alerts topic,
// received here through a queue subscribed to it.
func TestTamperFindings(t *testing.T) {
	noteFailure(t)
	ctx := ctxFor(t, 90*time.Second)
	alerts := subscribeAlerts(t, ctx)
	in := sampleInput(t, "payment-processing")
	modified := newCase("payments", "payment-processing", "tamper-modified", in)
	removed := newCase("payments", "payment-processing", "tamper-removed", in)
	clean := newCase("payments", "payment-processing", "tamper-clean", in)
	cases := []localrun.Case{modified, removed, clean}
	if err := localrun.Submit(ctx, suite.work, cases); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, cases)
	for _, c := range cases {
		readChain(t, ctx, c.ID)
	}
	// Change one receipt's stored JSON inside its segment and delete the
	// segment that holds another.
	rs := readChain(t, ctx, modified.ID)
	target := rs[len(rs)/2]
	it, i := itemHolding(t, ctx, modified.ID, target.Seq)
	list := slices.Clone(it[receipt.AttrReceipts].(*ddbtypes.AttributeValueMemberL).Value)
	stored := list[i].(*ddbtypes.AttributeValueMemberS).Value
	forged := strings.Replace(stored, `"attempt":0`, `"attempt":1`, 1)
	if forged == stored {
		t.Fatalf("receipt %d has no attempt 0: %s", target.Seq, stored)
	}
	list[i] = &ddbtypes.AttributeValueMemberS{Value: forged}
	it[receipt.AttrReceipts] = &ddbtypes.AttributeValueMemberL{Value: list}
	if _, err := suite.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(suite.res.ReceiptsTable), Item: it}); err != nil {
		t.Fatal(err)
	}
	gone, _ := itemHolding(t, ctx, removed.ID, 2)
	if _, err := suite.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(suite.res.ReceiptsTable),
		Key: map[string]ddbtypes.AttributeValue{receipt.AttrCase: gone[receipt.AttrCase], receipt.AttrSeq: gone[receipt.AttrSeq]}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		id   string
		kind receipt.Kind
	}{{modified.ID, receipt.Modified}, {removed.ID, receipt.Removed}} {
		var fs []receipt.Finding
		err := poll(ctx, time.Second, func() (bool, error) {
			var err error
			fs, err = suite.findings.Case(ctx, want.id)
			return slices.ContainsFunc(fs, func(f receipt.Finding) bool { return f.Kind == want.kind }), err
		})
		if err != nil {
			t.Fatalf("case %s: no %s finding (have %v): %v", want.id, want.kind, fs, err)
		}
	}
	// One alert per tampered case, none for the clean one: collect until both
	// arrived, then a few quiet seconds more for any duplicate.
	per := map[string]int{}
	deadline := time.Time{}
	for {
		if ctx.Err() != nil {
			t.Fatalf("alerts received %v: %v", per, ctx.Err())
		}
		out, err := suite.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(alerts), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			for _, c := range cases {
				if strings.Contains(aws.ToString(m.Body), c.ID) {
					per[c.ID]++
				}
			}
		}
		if deadline.IsZero() && per[modified.ID] > 0 && per[removed.ID] > 0 {
			deadline = time.Now().Add(5 * time.Second)
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
	}
	if per[modified.ID] != 1 || per[removed.ID] != 1 || per[clean.ID] != 0 {
		t.Errorf("alerts per case %v: want one for each tampered case (%s, %s), none for %s", per, modified.ID, removed.ID, clean.ID)
	}
	if fs, err := suite.findings.Case(ctx, clean.ID); err != nil || len(fs) > 0 {
		t.Errorf("clean case has findings %v (%v)", fs, err)
	}
}

func mustCanonical(t *testing.T, r *receipt.Receipt) []byte {
	t.Helper()
	b, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// itemHolding reads the stored segment item that holds a case's receipt at
// seq and the receipt's index in it.
func itemHolding(t *testing.T, ctx context.Context, caseID string, seq int64) (map[string]ddbtypes.AttributeValue, int) {
	t.Helper()
	out, err := suite.db.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(suite.res.ReceiptsTable), ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("#c = :c AND #s <= :s"),
		ExpressionAttributeNames:  map[string]string{"#c": receipt.AttrCase, "#s": receipt.AttrSeq},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":c": &ddbtypes.AttributeValueMemberS{Value: caseID}, ":s": &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(seq, 10)}},
		ScanIndexForward:          aws.Bool(false), Limit: aws.Int32(1)})
	if err != nil || len(out.Items) == 0 {
		t.Fatalf("no item holds %s/%d: %v", caseID, seq, err)
	}
	it := out.Items[0]
	first, _ := strconv.ParseInt(it[receipt.AttrSeq].(*ddbtypes.AttributeValueMemberN).Value, 10, 64)
	l, ok := it[receipt.AttrReceipts].(*ddbtypes.AttributeValueMemberL)
	if !ok || int(seq-first) >= len(l.Value) {
		t.Fatalf("item %s/%d does not hold seq %d", caseID, first, seq)
	}
	return it, int(seq - first)
}

// dropTail removes a case's last n receipts as a writer with table access
// would: segments wholly in the tail are deleted, the one it cuts is
// rewritten shorter. It returns the stream finding that shows it: Removed
// when whole segments went, Modified when one was cut.
func dropTail(t *testing.T, ctx context.Context, rs []*receipt.Receipt, n int) receipt.Kind {
	t.Helper()
	kind := receipt.Removed
	keep := rs[:len(rs)-n]
	for len(rs) > len(keep) {
		last := rs[len(rs)-1]
		_, i := itemHolding(t, ctx, last.CaseID, last.Seq)
		first := last.Seq - int64(i)
		if first >= int64(len(keep)) {
			if _, err := suite.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(suite.res.ReceiptsTable),
				Key: receiptKey(last.CaseID, first)}); err != nil {
				t.Fatal(err)
			}
			rs = rs[:first]
			continue
		}
		short, err := store.SegmentItem(keep[first:])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := suite.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(suite.res.ReceiptsTable), Item: short}); err != nil {
			t.Fatal(err)
		}
		rs, kind = keep, receipt.Modified
	}
	return kind
}

func receiptKey(caseID string, seq int64) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{
		receipt.AttrCase: &ddbtypes.AttributeValueMemberS{Value: caseID},
		receipt.AttrSeq:  &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(seq, 10)},
	}
}

// subscribeAlerts creates a queue subscribed to the alerts topic (raw
// delivery off: each message is the SNS envelope) and removes both when the
// test ends. It returns the queue's URL.
func subscribeAlerts(t *testing.T, ctx context.Context) string {
	t.Helper()
	if suite.res.AlertsTopicArn == "" {
		t.Skip("the stack names no alerts topic")
	}
	return subscribeTopic(t, ctx, "alerts", suite.res.AlertsTopicArn)
}

// subscribeTopic subscribes a new queue to an SNS topic of the stack and
// returns the queue's URL.
func subscribeTopic(t *testing.T, ctx context.Context, label, topicArn string) string {
	t.Helper()
	name := "knhk-e2e-" + label + "-" + suite.run
	q, err := suite.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(q.QueueUrl)
	t.Cleanup(func() {
		_, _ = suite.sqs.DeleteQueue(context.WithoutCancel(ctx), &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
	})
	attrs, err := suite.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	arn := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	// On AWS the topic needs the queue's permission to deliver.
	policy, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect": "Allow", "Principal": map[string]any{"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
		"Resource": arn, "Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": topicArn}}}}})
	if _, err := suite.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{"Policy": string(policy)}}); err != nil {
		t.Fatal(err)
	}
	sub, err := suite.sns.Subscribe(ctx, &sns.SubscribeInput{TopicArn: aws.String(topicArn),
		Protocol: aws.String("sqs"), Endpoint: aws.String(arn), ReturnSubscriptionArn: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = suite.sns.Unsubscribe(context.WithoutCancel(ctx), &sns.UnsubscribeInput{SubscriptionArn: sub.SubscriptionArn})
	})
	return url
}

// TestExecutorKilled SIGKILLs the runtime process of a busy executor
// instance while 30 cases run: the local Lambda service replaces the
// instance, the killed invocation's messages come back after the
// visibility timeout, and every case completes with a chain that verifies
// and records no event twice. Self-contained only.
func TestExecutorKilled(t *testing.T) {
	if suite.external {
		t.Skip("kills a function process of the in-process local Lambda service")
	}
	noteFailure(t)
	withVisibilityTimeout(t, 15)
	ctx := ctxFor(t, 150*time.Second)
	fn := executorStatus(t)
	var cases []localrun.Case
	for i := range 30 {
		s := suite.samples[i%len(suite.samples)]
		in := s.Input
		if s.Name == "insurance-claim" {
			s, in = suite.samples[0], suite.samples[0].Input
		}
		cases = append(cases, newCase(s.Namespace, s.Name, fmt.Sprintf("kill-%02d", i), in))
	}
	effectsBefore := suite.env.Standin.Stats()
	if err := localrun.Submit(ctx, suite.work, cases); err != nil {
		t.Fatal(err)
	}
	// Wait for a busy instance, then kill its runtime (the bootstrap the
	// emulator started), not the emulator.
	var victim int
	err := poll(ctx, 50*time.Millisecond, func() (bool, error) {
		for _, in := range executorStatus(t).Instances {
			if in.Busy {
				victim = runtimePID(t, in.Addr)
				return victim != 0, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no busy executor instance: %v", err)
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatalf("kill runtime %d: %v", victim, err)
	}
	t.Logf("killed executor runtime pid %d", victim)
	awaitAll(t, ctx, cases)
	for _, c := range cases {
		rs := readChain(t, ctx, c.ID)
		if got := rs[len(rs)-1].Type; got != history.CaseCompleted {
			t.Errorf("%s %s ended with %s", c.Workflow, c.ID, got)
		}
		if n := count(rs, history.CaseStarted); n != 1 {
			t.Errorf("%s: %d genesis receipts", c.ID, n)
		}
		if d := duplicates(rs); len(d) > 0 {
			t.Errorf("%s %s: events recorded twice: %v", c.Workflow, c.ID, d)
		}
	}
	// Calls repeated by the redelivered messages carried the key of the
	// first try: the stand-ins performed each recorded call exactly once.
	awaitQueueIdle(t, ctx)
	st := suite.env.Standin.Stats()
	effects, want := st.Effects-effectsBefore.Effects, effectsRequested(t, ctx, cases)
	t.Logf("stand-ins: %d requests, %d effects, %d replayed for %d calls recorded", st.Requests-effectsBefore.Requests, effects, st.Replays-effectsBefore.Replays, want)
	if effects != want || st.Unkeyed != effectsBefore.Unkeyed {
		t.Errorf("%d effects at the stand-ins (%d unkeyed requests) for %d calls recorded: %d duplicate effects", effects, st.Unkeyed-effectsBefore.Unkeyed, want, effects-want)
	}
	after := executorStatus(t)
	t.Logf("executor restarts %d -> %d, invocations %d", fn.Restarts, after.Restarts, after.Invocations)
	if after.Restarts <= fn.Restarts {
		t.Errorf("the local Lambda service reports no restart of the executor (%d before, %d after)", fn.Restarts, after.Restarts)
	}
}

func executorStatus(t *testing.T) lambdasvc.FunctionStatus {
	t.Helper()
	for _, f := range suite.env.Lambda.Stack().Functions {
		if f.Source != "executor" {
			continue
		}
		for _, s := range suite.env.Lambda.Status() {
			if s.Name == f.Name {
				return s
			}
		}
	}
	t.Fatal("no executor function runs")
	return lambdasvc.FunctionStatus{}
}

// runtimePID finds the runtime process of the instance listening on addr:
// the service marks every process of an instance with
// _KNHK_LOCAL_INSTANCE=<service pid>-<addr>; the runtime is the one whose
// executable is the function's bootstrap.
func runtimePID(t *testing.T, addr string) int {
	t.Helper()
	marker := []byte("_KNHK_LOCAL_INSTANCE=" + strconv.Itoa(os.Getpid()) + "-" + addr + "\x00")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, marker) {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && (filepath.Base(exe) == "executor" || filepath.Base(exe) == "bootstrap") {
			return pid
		}
	}
	return 0
}
