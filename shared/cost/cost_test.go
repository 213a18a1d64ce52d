package cost

import (
	"encoding/json"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/history"
)

func table(t *testing.T) *Table {
	t.Helper()
	tb, err := Load(DefaultVersion)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func rat(t *testing.T, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("bad decimal %q", s)
	}
	return r
}

// Every embedded table prices every unit, each price with a public source
// and the date it was read.
func TestEveryEmbeddedTableIsSourcedAndDated(t *testing.T) {
	versions, err := Tables()
	if err != nil || !slices.Contains(versions, DefaultVersion) {
		t.Fatalf("tables %v (%v), want %s among them", versions, err, DefaultVersion)
	}
	for _, v := range versions {
		if _, err := Load(v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
}

func TestATableWithoutSourceOrDateIsRefused(t *testing.T) {
	b, err := tables.ReadFile("prices/" + DefaultVersion + ".json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(p *Price)
		want   string
	}{
		{"no source", func(p *Price) { p.Source = "" }, "source"},
		{"no date", func(p *Price) { p.Read = "" }, "read date"},
		{"a date that is not one", func(p *Price) { p.Read = "December 2026" }, "read date"},
		{"a negative price", func(p *Price) { p.USD = "-0.1" }, "non-negative"},
		{"a price that is not a number", func(p *Price) { p.USD = "cheap" }, "non-negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var raw map[string]any
			var tb Table
			_ = json.Unmarshal(b, &raw)
			_ = json.Unmarshal(b, &tb)
			p := tb.Prices[SQSRequest]
			tc.change(&p)
			tb.Prices[SQSRequest] = p
			out, _ := json.Marshal(tb)
			_, err := Parse(out)
			if err == nil || !strings.Contains(err.Error(), string(SQSRequest)) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %s and %q", err, SQSRequest, tc.want)
			}
		})
	}
	var tb Table
	_ = json.Unmarshal(b, &tb)
	delete(tb.Prices, KMSAsymmetricRequest)
	out, _ := json.Marshal(tb)
	if _, err := Parse(out); err == nil || !strings.Contains(err.Error(), "kms.asymmetricRequest: no price") {
		t.Fatalf("a table missing a unit: %v", err)
	}
}

// fiveTask is the worked example of docs/cost.md: a five-task case on an
// arm64 executor of 1,024 MB that served ten cases in the invocation.
var fiveTask = Usage{
	Arch:             Arm64,
	InvocationMicros: 100_000,    // a tenth of an invocation
	LambdaMBms:       120 * 1024, // 120 ms of billed duration at 1,024 MB
	WriteUnits:       7,          // genesis, five tasks, the end
	ReadUnits:        1,          // one strongly consistent chain read
	SQSRequests:      2,          // the start message's send, its share of receive and delete
}

func TestPriceIsExact(t *testing.T) {
	tb := table(t)
	b := tb.Price(fiveTask)
	want := rat(t, "0.000006920008")
	if b.Total.Cmp(want) != 0 {
		t.Fatalf("total %s, want %s", b.Total.FloatString(12), want.FloatString(12))
	}
	lines := map[Unit]string{}
	for _, l := range b.Lines {
		lines[l.Unit] = l.Cost.FloatString(12)
	}
	for u, c := range map[Unit]string{
		LambdaRequest: "0.000000020000", LambdaGBSecondArm64: "0.000001600008", DynamoWriteUnit: "0.000004375000",
		DynamoReadUnit: "0.000000125000", SQSRequest: "0.000000800000",
	} {
		if lines[u] != c {
			t.Errorf("%s: %s, want %s", u, lines[u], c)
		}
	}
	if got := Dollars(PerMillion(b.Total), 2); got != "$6.92" {
		t.Fatalf("per million cases %s, want $6.92", got)
	}
	x86 := fiveTask
	x86.Arch = X86
	if got := tb.Price(x86).Total.FloatString(12); got != "0.000007320004" {
		t.Fatalf("on x86_64: %s", got)
	}
}

// The total of a case is the exact sum of its receipts' usage, however it is
// split.
func TestSumOfPartsIsExact(t *testing.T) {
	tb := table(t)
	var sum Usage
	parts := []Usage{
		{InvocationMicros: 33_333, LambdaMBms: 40_961, WriteUnits: 1, SQSRequests: 1},
		{InvocationMicros: 33_333, LambdaMBms: 40_960, WriteUnits: 3, ReadUnits: 0.5},
		{InvocationMicros: 33_334, LambdaMBms: 40_959, WriteUnits: 3, ReadUnits: 0.5, SQSRequests: 1},
	}
	total := new(big.Rat)
	for _, p := range parts {
		sum.Add(p)
		total.Add(total, tb.Price(p).Total)
	}
	if tb.Price(sum).Total.Cmp(total) != 0 || tb.Price(sum).Total.Cmp(tb.Price(fiveTask).Total) != 0 {
		t.Fatalf("sum priced %s, parts priced %s, the whole %s", tb.Price(sum).Total.FloatString(15), total.FloatString(15), tb.Price(fiveTask).Total.FloatString(15))
	}
}

func TestStepFunctionsComparison(t *testing.T) {
	tb := table(t)
	types := []history.Type{history.CaseStarted}
	for range 5 {
		types = append(types, history.TaskStarted, history.TaskCompleted)
	}
	types = append(types, history.TaskFaulted, history.TaskRetried, history.CaseCompleted)
	if n := Transitions(types); n != 7 {
		t.Fatalf("transitions %d, want 7 (5 tasks, a faulted attempt, the end)", n)
	}
	c := StepFunctionsCase{Transitions: 6, Duration: 250 * time.Millisecond}
	if got := Dollars(PerMillion(tb.StepFunctionsStandard(c)), 2); got != "$150.00" {
		t.Fatalf("standard %s", got)
	}
	// 250 ms bills as 300 ms; 64 MB: 0.3 s x 0.0625 GB = 0.01875 GB-s.
	if got := tb.StepFunctionsExpress(c).FloatString(13); got != "0.0000013125006" {
		t.Fatalf("express %s", got)
	}
	big := StepFunctionsCase{Transitions: 6, Duration: time.Second, MemoryMB: 65}
	if got := tb.StepFunctionsExpress(big).FloatString(13); got != "0.0000030833375" {
		t.Fatalf("express with 65 MB (two chunks) for 1 s: %s", got)
	}
	cmp := Comparison{KNHK: tb.Price(fiveTask).Total, Standard: tb.StepFunctionsStandard(c), Express: tb.StepFunctionsExpress(c)}
	if s := cmp.String(); s != "KNHK $6.92, Step Functions Standard $150.00, Express $1.31 per million cases" {
		t.Fatalf("comparison %q", s)
	}
}

func TestSplitSharesExactlyWithIdleApart(t *testing.T) {
	direct := map[string]*big.Rat{"claims": big.NewRat(3, 1), "orders": big.NewRat(1, 1), "payments": big.NewRat(2, 1)}
	shared := big.NewRat(1, 1)
	allocs, idle := Split(direct, shared, big.NewRat(1, 2))
	got := map[string]string{}
	sum := new(big.Rat)
	for _, a := range allocs {
		got[a.Key] = a.Shared.RatString()
		sum.Add(sum, a.Shared)
	}
	if got["claims"] != "1/2" || got["orders"] != "1/6" || got["payments"] != "1/3" || sum.Cmp(shared) != 0 || idle.RatString() != "1/2" {
		t.Fatalf("shares %v (sum %s), idle %s", got, sum.RatString(), idle.RatString())
	}
	even, _ := Split(map[string]*big.Rat{"a": new(big.Rat), "b": new(big.Rat)}, big.NewRat(1, 1), nil)
	if even[0].Shared.RatString() != "1/2" || even[1].Total().RatString() != "1/2" {
		t.Fatalf("even split %v", even)
	}
}

func TestBudgetThresholdsOncePerPeriod(t *testing.T) {
	limit := big.NewRat(100, 1)
	var alerted []int
	for _, tc := range []struct {
		spent string
		want  []int
	}{
		{"10", nil}, {"50", []int{50}}, {"60", nil}, {"99.99", []int{80}}, {"100", []int{100}}, {"250", nil},
	} {
		got := Crossed(limit, rat(t, tc.spent), alerted)
		if !slices.Equal(got, tc.want) {
			t.Fatalf("spent %s: %v, want %v", tc.spent, got, tc.want)
		}
		alerted = append(alerted, got...)
	}
	if got := Crossed(limit, rat(t, "120"), nil); !slices.Equal(got, []int{50, 80, 100}) {
		t.Fatalf("a jump past every threshold: %v", got)
	}
	if Crossed(nil, rat(t, "1"), nil) != nil {
		t.Fatal("no budget alerted")
	}
}

func TestMigrationPaybackAndROI(t *testing.T) {
	m := Migration{LegacyPerCase: rat(t, "0.002"), KNHKPerCase: rat(t, "0.000007"), CasesPerMonth: 10_000_000, OneOffCost: rat(t, "39860")}
	if s := m.Savings().FloatString(2); s != "19930.00" {
		t.Fatalf("savings %s", s)
	}
	if p, ok := m.PaybackMonths(); !ok || p.FloatString(2) != "2.00" {
		t.Fatalf("payback %v %v", p, ok)
	}
	if r, err := m.ROI(12); err != nil || r.FloatString(2) != "5.00" {
		t.Fatalf("roi %v %v", r, err)
	}
	worse := Migration{LegacyPerCase: rat(t, "0.000001"), KNHKPerCase: rat(t, "0.000007"), CasesPerMonth: 1, OneOffCost: big.NewRat(1, 1)}
	if _, ok := worse.PaybackMonths(); ok {
		t.Fatal("a migration that saves nothing pays back")
	}
}

// The capacity plan of docs/cost.md: 1,000 five-task cases a second.
func TestCapacityPlanMatchesTheWorkedExample(t *testing.T) {
	tb := table(t)
	p, err := tb.Capacity(1000, []Share{{Workflow: "five-task", Weight: 1, PerCase: fiveTask, MemoryMB: 1024}}, DefaultQuotas)
	if err != nil {
		t.Fatal(err)
	}
	if p.LambdaConcurrency != 120 || p.MappingConcurrency != 120 || p.WriteUnits != 7000 || p.ReadUnits != 1000 || p.SQSRequests != 2000 || p.StreamShards != 7 {
		t.Fatalf("plan %+v", p)
	}
	if got := Dollars(p.Monthly, 2); got != "$17936.66" {
		t.Fatalf("monthly %s", got)
	}
	if p.Needs[0].Quota.Name != DefaultQuotas["dynamodb.tableWriteUnits"].Name || p.Needs[0].Ratio != 0.175 {
		t.Fatalf("binding quota %+v", p.Needs[0])
	}
	if _, err := tb.Capacity(0, nil, nil); err == nil {
		t.Fatal("a zero rate planned")
	}
	if _, err := tb.Capacity(1, []Share{{Workflow: "x", Weight: 1}}, nil); err == nil {
		t.Fatal("a mix without memory planned")
	}
}

func BenchmarkPriceCase(b *testing.B) {
	tb, err := Load(DefaultVersion)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = tb.Price(fiveTask)
	}
}

// TestCountersListEveryField pins Counters to Usage: every numeric field
// appears once, under its JSON name, and Add and Sub go through all of them.
func TestCountersListEveryField(t *testing.T) {
	var u Usage
	cs := u.Counters()
	rt := reflect.TypeOf(u)
	var want []string
	for i := range rt.NumField() {
		f := rt.Field(i)
		if k := f.Type.Kind(); k == reflect.Int64 || k == reflect.Float64 {
			want = append(want, strings.Split(f.Tag.Get("json"), ",")[0])
		}
	}
	var got []string
	for i, c := range cs {
		if (c.Int == nil) == (c.Float == nil) {
			t.Fatalf("counter %s: exactly one of Int and Float must be set", c.Name)
		}
		// Setting counter i through its pointer changes that field alone.
		if c.Int != nil {
			*c.Int = int64(i + 1)
		} else {
			*c.Float = float64(i + 1)
		}
		got = append(got, c.Name)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("counters %v, want the fields %v", got, want)
	}
	sum := u
	sum.Add(u)
	for i, c := range sum.Counters() {
		if c.Value() != float64(2*(i+1)) {
			t.Errorf("Add: %s = %v, want %d", c.Name, c.Value(), 2*(i+1))
		}
	}
	sum.Sub(u)
	if sum != u {
		t.Errorf("Sub after Add: %+v, want %+v", sum, u)
	}
}

// The event source mapping's polling is priced per request, empty receives
// as idle and the receives and deletes of messages as shared, exact to the
// cent (docs/cost.md's worked example: Lambda's five pollers long-polling an
// empty queue for a 30-day month).
func TestPollingPricedAsSharedAndIdle(t *testing.T) {
	tb := table(t)
	for _, c := range []struct {
		name         string
		p            Polling
		shared, idle string
	}{
		{"an idle month", Polling{Queue: "work", EmptyReceives: 5 * 3 * 60 * 24 * 30}, "0.000000000000", "0.259200000000"},
		{"a million cases", Polling{Queue: "work", EmptyReceives: 100, MessagesReceived: 1_000_000, MessagesDeleted: 999_990}, "0.799996000000", "0.000040000000"},
		{"nothing", Polling{Queue: "work"}, "0.000000000000", "0.000000000000"},
		{"negative sums count as none", Polling{Queue: "work", EmptyReceives: -1, MessagesReceived: -2, MessagesDeleted: 3}, "0.000001200000", "0.000000000000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, i := c.p.Usage()
			if got := tb.Price(s).Total.FloatString(12); got != c.shared {
				t.Errorf("shared %s, want %s", got, c.shared)
			}
			if got := tb.Price(i).Total.FloatString(12); got != c.idle {
				t.Errorf("idle %s, want %s", got, c.idle)
			}
		})
	}
}
