package costjob_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/big"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/shared/chargeback"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/costjob"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

type exports struct {
	mu   sync.Mutex
	objs map[string][]byte
	puts int
}

func (e *exports) Put(_ context.Context, key, _ string, body []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.objs[key] = bytes.Clone(body)
	e.puts++
	return nil
}

type topic struct {
	mu       sync.Mutex
	subjects []string
}

func (t *topic) Alert(_ context.Context, subject, _ string) error {
	t.mu.Lock()
	t.subjects = append(t.subjects, subject)
	t.mu.Unlock()
	return nil
}

// TestRunIsLeasedAndIdempotent: on the local endpoint's tables with one
// case of a published sample, a run while another holds the lease does
// nothing; a run exports the chargeback by workflow, tenant and department
// and alerts the crossed budget thresholds; a second run rewrites the same
// exports and alerts nothing again.
func TestRunIsLeasedAndIdempotent(t *testing.T) {
	ep := localaws.StartT(t)
	outs := provision.DeployForTest(t, ep)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	reg := registry.New(db, outs[stack.OutStateTable])
	body, err := os.ReadFile("../../events/workflows/payment-processing.yaml")
	if err != nil {
		t.Fatal(err)
	}
	entry, _, err := reg.Push(ctx, body)
	if err != nil {
		t.Fatal(err)
	}
	chains := store.NewReceipts(db, outs[stack.OutReceiptsTable])
	now := time.Now().UTC()
	ev := history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{}`), Started: now,
		Genesis: &history.Genesis{Tenant: "acme", Namespace: entry.Namespace, Workflow: entry.Name, Version: entry.Version, DescriptorHash: entry.Hash}}
	res, err := chains.Append(ctx, nil, "acme", "case-1", ev, receipt.WithUsage(receipt.Usage{BilledMs: 100, Requests: 1, Arch: "arm64", MemoryMB: 1024, InvocationMicros: 1_000_000, SQSRequests: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chains.Append(ctx, res.Receipt, "acme", "case-1", history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{}`), Ended: now.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	prices, _ := cost.Load(cost.DefaultVersion)
	conf, err := costjob.ParseConfig(`{"budgets":{"acme":"0.0000039"}}`)
	if err != nil {
		t.Fatal(err)
	}
	leases := store.NewLeases(db, outs[stack.OutStateTable])
	// The month's overhead, as the functions record it: a verifier batch's
	// SQS request is shared, a scheduled job's SNS publish idle.
	over := store.NewOverheads(db, outs[stack.OutStateTable])
	if err := over.Add(ctx, chargeback.Period(now), cost.Shared, "verifier", cost.Usage{SQSRequests: 1}); err != nil {
		t.Fatal(err)
	}
	if err := over.Add(ctx, chargeback.Period(now), cost.Idle, "sla", cost.Usage{SNSPublishes: 1}); err != nil {
		t.Fatal(err)
	}
	out, alerts := &exports{objs: map[string][]byte{}}, &topic{}
	deps := func(owner string) costjob.Deps {
		return costjob.Deps{Leases: leases, Chains: chains, Descriptors: reg, Overheads: over, Claims: store.NewBudgetAlerts(db, outs[stack.OutStateTable]),
			Alerts: alerts, Export: out, Prices: prices, Config: conf, Owner: owner, Now: func() time.Time { return now }}
	}
	if ok, err := leases.Acquire(ctx, costjob.LeaseName, "other-run", time.Minute); !ok || err != nil {
		t.Fatalf("lease %v %v", ok, err)
	}
	if r, err := costjob.Run(ctx, deps("run-1")); err != nil || !r.Skipped || out.puts != 0 {
		t.Fatalf("run under another's lease: %+v %v (%d exports)", r, err, out.puts)
	}
	if err := leases.Release(ctx, costjob.LeaseName, "other-run"); err != nil {
		t.Fatal(err)
	}
	first, err := costjob.Run(ctx, deps("run-2"))
	if err != nil || first.Skipped || first.Cases != 1 || len(first.Exports) != 6 {
		t.Fatalf("first run %+v %v", first, err)
	}
	// 1 invocation, 100 ms x 1 GB arm64, 2 receipt writes, 1 SQS request:
	// $0.00000318334 direct, and the shared SQS request ($0.0000004): 91.9 %
	// of a $0.0000039 budget, the 50 and 80 % alerts. The idle SNS publish
	// ($0.0000005) is shown, charged to nobody.
	if len(alerts.subjects) != 2 || !strings.Contains(alerts.subjects[1], "80%") {
		t.Errorf("alerts %q", alerts.subjects)
	}
	period := chargeback.Period(now)
	byDept := string(out.objs["chargeback/"+period+"/by-department.csv"])
	if !strings.Contains(byDept, ","+chargeback.Unassigned+",1,") {
		t.Errorf("by department:\n%s", byDept)
	}
	var byTenant struct {
		Shared string `json:"shared"`
		Idle   string `json:"idle"`
		Total  string `json:"total"`
	}
	if err := json.Unmarshal(out.objs["chargeback/"+period+"/by-tenant.json"], &byTenant); err != nil {
		t.Fatal(err)
	}
	if rat(byTenant.Shared) != "1/2500000" || rat(byTenant.Idle) != "1/2000000" {
		t.Errorf("by tenant: shared %s idle %s, want 0.0000004 and 0.0000005", byTenant.Shared, byTenant.Idle)
	}
	before := map[string]string{}
	for k, v := range out.objs {
		before[k] = string(v)
	}
	second, err := costjob.Run(ctx, deps("run-3"))
	if err != nil || second.Skipped || len(second.Alerts) != 0 || len(alerts.subjects) != 2 {
		t.Fatalf("second run %+v %v, alerts %q", second, err, alerts.subjects)
	}
	for k, v := range out.objs {
		if before[k] != string(v) {
			t.Errorf("%s changed on a second run:\n%s\n%s", k, before[k], v)
		}
	}
	if _, err := costjob.ParseConfig(`{"budgets":{"acme":"lots"}}`); err == nil {
		t.Error("a budget that is not an amount was accepted")
	}
}

// rat is a decimal string's exact value, or "" when it is not one.
func rat(dec string) string {
	r, ok := new(big.Rat).SetString(dec)
	if !ok {
		return ""
	}
	return r.RatString()
}

// TestPollingIsPricedAsSharedAndIdle: the job reads each polled queue's
// AWS/SQS metrics of the month from CloudWatch (the local endpoint's; other
// queues and earlier months are not counted) and prices the empty receives
// as idle and the receives and deletes of messages as shared cost.
func TestPollingIsPricedAsSharedAndIdle(t *testing.T) {
	ep := localaws.StartT(t)
	outs := provision.DeployForTest(t, ep)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	cw := localaws.NewCloudWatch(cfg)
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	queue := "polled-" + now.Format("150405.000000000")
	put := func(q, metric string, at time.Time, v float64) {
		t.Helper()
		if _, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("AWS/SQS"), MetricData: []cwtypes.MetricDatum{{
			MetricName: aws.String(metric), Unit: cwtypes.StandardUnitCount, Timestamp: aws.Time(at), Value: aws.Float64(v),
			Dimensions: []cwtypes.Dimension{{Name: aws.String("QueueName"), Value: aws.String(q)}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	minute := now.Truncate(time.Minute).Add(-2 * time.Minute)
	if minute.Before(month) {
		minute = month
	}
	put(queue, "NumberOfEmptyReceives", minute, 9)
	put(queue, "NumberOfEmptyReceives", minute.Add(time.Minute), 3)
	put(queue, "NumberOfMessagesReceived", minute, 4)
	put(queue, "NumberOfMessagesDeleted", minute.Add(time.Minute), 4)
	put(queue, "NumberOfEmptyReceives", month.Add(-time.Hour), 1000) // last month
	put(queue+"-other", "NumberOfEmptyReceives", minute, 1000)       // a queue not polled
	prices, _ := cost.Load(cost.DefaultVersion)
	out := &exports{objs: map[string][]byte{}}
	res, err := costjob.Run(ctx, costjob.Deps{Leases: store.NewLeases(db, outs[stack.OutStateTable]),
		Chains: store.NewReceipts(db, outs[stack.OutReceiptsTable]), Descriptors: registry.New(db, outs[stack.OutStateTable]),
		Polling: costjob.CloudWatchPolling{CW: cw, Queues: []string{queue}},
		Claims:  store.NewBudgetAlerts(db, outs[stack.OutStateTable]), Alerts: &topic{}, Export: out, Prices: prices,
		Owner: "polling", Now: func() time.Time { return now.Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	want := []cost.Polling{{Queue: queue, EmptyReceives: 12, MessagesReceived: 4, MessagesDeleted: 4}}
	if len(res.Polling) != 1 || res.Polling[0] != want[0] {
		t.Fatalf("polling %+v, want %+v", res.Polling, want)
	}
	var byTenant struct {
		Shared string `json:"shared"`
		Idle   string `json:"idle"`
	}
	if err := json.Unmarshal(out.objs["chargeback/"+res.Period+"/by-tenant.json"], &byTenant); err != nil {
		t.Fatal(err)
	}
	// 8 shared requests, $0.0000032; 12 idle, $0.0000048.
	if rat(byTenant.Shared) != "1/312500" || rat(byTenant.Idle) != "3/625000" {
		t.Errorf("by tenant: shared %s idle %s, want 0.0000032 and 0.0000048", byTenant.Shared, byTenant.Idle)
	}
}
