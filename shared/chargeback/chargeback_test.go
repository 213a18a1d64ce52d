package chargeback_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/shared/chargeback"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/workflow/dsl"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// fiveTaskCase is docs/cost.md's worked example as a chain: genesis, five
// tasks, the end, all in 250 ms; the genesis carries the step's tenth of an
// invocation, 120 ms of a 1,024 MB arm64 function, one read unit and two
// SQS requests.
func fiveTaskCase(t *testing.T, tenant, ns, name, id string) []*receipt.Receipt {
	t.Helper()
	g := history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{}`), Started: t0,
		Genesis: &history.Genesis{Tenant: tenant, Namespace: ns, Workflow: name, Version: "1.0.0", DescriptorHash: fmt.Sprintf("%064x", len(name))}}
	u := receipt.Usage{BilledMs: 120, ReadUnits: 1, Requests: 3, Arch: "arm64", MemoryMB: 1024, InvocationMicros: 100_000, SQSRequests: 2}
	r, err := receipt.New(nil, tenant, id, g, receipt.WithUsage(u))
	if err != nil {
		t.Fatal(err)
	}
	rs := []*receipt.Receipt{r}
	for i := range 5 {
		ev := history.Event{Type: history.TaskCompleted, Task: fmt.Sprintf("/do/%d/t", i), Output: json.RawMessage(`{}`),
			Started: t0.Add(time.Duration(i) * 40 * time.Millisecond), Ended: t0.Add(time.Duration(i+1) * 40 * time.Millisecond)}
		if r, err = receipt.New(r, tenant, id, ev, receipt.WithUsage(receipt.Usage{})); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if r, err = receipt.New(r, tenant, id, history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{}`), Ended: t0.Add(250 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	return append(rs, r)
}

// perReceipt stores each receipt of rs as an item of its own of 500 bytes,
// the layout before segments and the one docs/cost.md's example prices.
func perReceipt(rs []*receipt.Receipt) ([]*receipt.Receipt, []int) {
	items := make([]int, len(rs))
	for i := range items {
		items[i] = 500
	}
	return rs, items
}

func rat(t *testing.T, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatal(s)
	}
	return r
}

// TestWorkedExample: the chain of docs/cost.md's five-task case costs
// $0.000006920008 (its seven receipts' writes priced from the chain), 6
// Step Functions transitions, and Express's 0.3 s at 64 MB.
func TestWorkedExample(t *testing.T) {
	tab, err := cost.Load(cost.DefaultVersion)
	if err != nil {
		t.Fatal(err)
	}
	c, err := chargeback.FromChain(perReceipt(fiveTaskCase(t, "acme", "payments", "five", "c1")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Usage.WriteUnits != 7 || c.Usage.DynamoRequests != 8 || c.Transitions != 6 || c.Ended.Sub(c.Started) != 250*time.Millisecond {
		t.Fatalf("case %+v", c)
	}
	r, err := chargeback.Build(tab, "2026-12", chargeback.ByWorkflow, []chargeback.Case{c}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := r.Lines[0]
	if got := cost.Dollars(l.Express, 13); got != "$0.0000013125006" {
		t.Errorf("Express %s", got)
	}
	for name, got := range map[string][2]*big.Rat{
		"KNHK":     {l.Total(), rat(t, "0.000006920008")},
		"Standard": {l.Standard, rat(t, "0.00015")},
		"Express":  {l.Express, tab.StepFunctionsExpress(cost.StepFunctionsCase{Transitions: 6, Duration: 250 * time.Millisecond})},
	} {
		if got[0].Cmp(got[1]) != 0 {
			t.Errorf("%s = %s, want %s", name, got[0].FloatString(13), got[1].FloatString(13))
		}
	}
}

// TestSegmentIsOneWrite: the same chain stored as one segment item of
// 3,500 bytes is one write request of 4 units, not seven of one: the case
// costs $0.000005045008, docs/cost.md's figure for the segment layout.
func TestSegmentIsOneWrite(t *testing.T) {
	tab, err := cost.Load(cost.DefaultVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		items    []int
		requests int64
		units    float64
		total    string
	}{
		{"one segment", []int{3500}, 2, 4, "0.000005045008"},
		{"two segments", []int{1024, 1025}, 3, 3, "0.000004420008"},
		{"no items given", nil, 1, 0, "0.000002545008"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := chargeback.FromChain(fiveTaskCase(t, "acme", "payments", "five", "c1"), tc.items)
			if err != nil {
				t.Fatal(err)
			}
			if c.Usage.WriteUnits != tc.units || c.Usage.DynamoRequests != tc.requests || c.Receipts != 7 {
				t.Fatalf("usage %+v, receipts %d: want %d requests, %v write units", c.Usage, c.Receipts, tc.requests, tc.units)
			}
			r, err := chargeback.Build(tab, "2026-12", chargeback.ByWorkflow, []chargeback.Case{c}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Lines[0].Total(); got.Cmp(rat(t, tc.total)) != 0 {
				t.Fatalf("total %s, want %s", got.FloatString(12), tc.total)
			}
		})
	}
}

// TestSharedSplitAndGroupings: shared cost goes to owners in proportion to
// their direct cost, idle to nobody; every grouping charges the same total.
func TestSharedSplitAndGroupings(t *testing.T) {
	tab, _ := cost.Load(cost.DefaultVersion)
	var cases []chargeback.Case
	for i, w := range []struct{ tenant, ns, name, dept string }{
		{"acme", "payments", "pay", "finance"}, {"acme", "payments", "pay", "finance"}, {"globex", "energy", "grid", "ops"},
	} {
		c, err := chargeback.FromChain(perReceipt(fiveTaskCase(t, w.tenant, w.ns, w.name, fmt.Sprint("c", i))))
		if err != nil {
			t.Fatal(err)
		}
		c.Department = w.dept
		cases = append(cases, c)
	}
	shared := []cost.Usage{{SQSRequests: 2_000}, {Arch: cost.X86, SQSRequests: 1_000}}
	idle := []cost.Usage{{SQSRequests: 1_000}}
	var totals []*big.Rat
	for _, by := range []chargeback.Key{chargeback.ByWorkflow, chargeback.ByTenant, chargeback.ByDepartment} {
		r, err := chargeback.Build(tab, "2026-12", by, cases, shared, idle)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Lines) != 2 || r.Lines[0].Cases != 2 {
			t.Fatalf("%s: lines %+v", by, r.Lines)
		}
		// two thirds of the direct cost, two thirds of $0.0012 shared
		if r.Lines[0].Shared.Cmp(rat(t, "0.0008")) != 0 || r.Idle.Cmp(rat(t, "0.0004")) != 0 {
			t.Errorf("%s: shared %s idle %s", by, r.Lines[0].Shared.FloatString(6), r.Idle.FloatString(6))
		}
		totals = append(totals, r.Total())
		var buf bytes.Buffer
		if err := r.WriteCSV(&buf); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil || len(rows) != 4 || rows[1][3] != "2" {
			t.Errorf("%s: CSV %v %v", by, rows, err)
		}
		j, _ := json.Marshal(r)
		var back struct {
			Total string `json:"total"`
		}
		if err := json.Unmarshal(j, &back); err != nil || rat(t, back.Total).Cmp(r.Total()) != 0 {
			t.Errorf("%s: JSON total %s %v", by, back.Total, err)
		}
	}
	if totals[0].Cmp(totals[1]) != 0 || totals[1].Cmp(totals[2]) != 0 {
		t.Errorf("totals differ by grouping: %v", totals)
	}
	if _, err := chargeback.Build(tab, "2026-12", "colour", cases, shared, idle); err == nil {
		t.Error("unknown grouping accepted")
	}
}

func TestDepartment(t *testing.T) {
	for _, tc := range []struct {
		meta map[string]any
		want string
	}{
		{map[string]any{"department": "payments-ops", "costCentre": "CC-1"}, "payments-ops"},
		{map[string]any{"costCentre": "CC-1"}, "CC-1"},
		{map[string]any{"department": 7}, chargeback.Unassigned},
		{nil, chargeback.Unassigned},
	} {
		w := &dsl.Workflow{Document: dsl.Document{Metadata: tc.meta}}
		if got := chargeback.Department(w); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.meta, got, tc.want)
		}
	}
}

type sent struct {
	mu       sync.Mutex
	subjects []string
	fail     bool
}

func (s *sent) Alert(_ context.Context, subject, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("topic unavailable")
	}
	s.subjects = append(s.subjects, subject)
	return nil
}

// TestBudgetThresholdsOncePerPeriod runs the budget check on the local
// endpoint's state table: a tenant past 80 % gets the 50 and 80 % alerts
// once, however many runs (concurrent ones too) see it; a failed send is
// retried by the next run; a new period alerts again.
func TestBudgetThresholdsOncePerPeriod(t *testing.T) {
	ep := localaws.StartT(t)
	outs := provision.DeployForTest(t, ep)
	cfg, err := ep.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	claims := store.NewBudgetAlerts(dynamodb.NewFromConfig(cfg), outs[stack.OutStateTable])
	tab, _ := cost.Load(cost.DefaultVersion)
	c, _ := chargeback.FromChain(perReceipt(fiveTaskCase(t, "acme", "payments", "five", "c1")))
	report := func(period string) chargeback.Report {
		r, err := chargeback.Build(tab, period, chargeback.ByTenant, []chargeback.Case{c}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// $0.000006920008 spent of $0.0000085: 81 %
	budgets := map[string]*big.Rat{"acme": rat(t, "0.0000085"), "globex": rat(t, "1")}
	ctx := context.Background()
	out := &sent{fail: true}
	if _, err := chargeback.Alerts(ctx, report("2026-12"), budgets, claims, out); err == nil {
		t.Fatal("a failed send was not reported")
	}
	out.fail = false
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := chargeback.Alerts(ctx, report("2026-12"), budgets, claims, out); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(out.subjects) != 2 {
		t.Fatalf("alerts %q, want the 50 and 80 %% thresholds once each", out.subjects)
	}
	if a, err := chargeback.Alerts(ctx, report("2027-01"), budgets, claims, out); err != nil || len(a) != 2 {
		t.Errorf("next period: %v %v", a, err)
	}
}

// TestReportJSONRoundTrip: a report read back from its JSON export has the
// same lines and amounts to the export's 12 decimals (what knhk cost prints
// from the cost job's export); a malformed amount is refused.
func TestReportJSONRoundTrip(t *testing.T) {
	tab, _ := cost.Load(cost.DefaultVersion)
	var cases []chargeback.Case
	for i, tenant := range []string{"acme", "globex", "acme"} {
		c, err := chargeback.FromChain(perReceipt(fiveTaskCase(t, tenant, "payments", "pay", fmt.Sprint("c", i))))
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	r, err := chargeback.Build(tab, "2026-12", chargeback.ByTenant, cases, []cost.Usage{{SQSRequests: 7}}, []cost.Usage{{SQSRequests: 1}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back chargeback.Report
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	if back.Period != r.Period || back.By != r.By || back.Prices != r.Prices || len(back.Lines) != len(r.Lines) ||
		back.Idle.FloatString(12) != r.Idle.FloatString(12) || back.Shared.FloatString(12) != r.Shared.FloatString(12) {
		t.Fatalf("report after round trip: %+v", back)
	}
	for i, l := range r.Lines {
		b := back.Lines[i]
		if b.Key != l.Key || b.Cases != l.Cases || b.Usage != l.Usage {
			t.Errorf("line %d: %+v, want %+v", i, b, l)
		}
		for _, p := range [][2]*big.Rat{{b.Direct, l.Direct}, {b.Shared, l.Shared}, {b.Standard, l.Standard}, {b.Express, l.Express}} {
			if p[0].FloatString(12) != p[1].FloatString(12) {
				t.Errorf("line %s: amount %s, want %s", l.Key, p[0].FloatString(12), p[1].FloatString(12))
			}
		}
	}
	bad := strings.Replace(string(j), `"idle":"`, `"idle":"x`, 1)
	if err := json.Unmarshal([]byte(bad), &back); err == nil {
		t.Error("a malformed amount was accepted")
	}
}
