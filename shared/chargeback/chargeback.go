// Package chargeback prices cases from their receipt chains and charges
// them to workflows, tenants and departments: direct cost from each case's
// metered usage plus its chain's own writes, shared cost split in proportion
// (idle apart), the same cases priced on Step Functions Standard and
// Express, and the report's CSV and JSON forms.
package chargeback

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/workflow/dsl"
)

// Unassigned is the department of a workflow whose document names none.
const Unassigned = "unassigned"

// Department is the cost centre a workflow document names in its metadata
// (department, else costCentre), else Unassigned.
func Department(w *dsl.Workflow) string {
	if w == nil {
		return Unassigned
	}
	for _, k := range []string{"department", "costCentre"} {
		if s, ok := w.Document.Metadata[k].(string); ok && s != "" {
			return s
		}
	}
	return Unassigned
}

// Case is one case as the chargeback sees it.
type Case struct {
	ID, Tenant, Namespace, Workflow, Version, DescriptorHash string
	Department                                               string
	Started, Ended                                           time.Time
	Receipts                                                 int
	Usage                                                    cost.Usage // its receipts' usage plus the chain's own writes
	Transitions                                              int64      // as Step Functions would bill them
}

// FromChain sums a verified chain's usage. items are the billed sizes of
// the table items that store the chain (one per segment, or per receipt in
// the layout before segments): each was one write of the chain's own
// (meter.ReceiptWrite), which the receipts' usage cannot include.
func FromChain(rs []*receipt.Receipt, items []int) (Case, error) {
	if len(rs) == 0 || rs[0].Genesis == nil {
		return Case{}, fmt.Errorf("chargeback: a chain starts with its genesis")
	}
	g := rs[0].Genesis
	c := Case{ID: rs[0].CaseID, Tenant: rs[0].Tenant, Namespace: g.Namespace, Workflow: g.Workflow, Version: g.Version,
		DescriptorHash: g.DescriptorHash, Receipts: len(rs)}
	types := make([]history.Type, 0, len(rs))
	for _, r := range rs {
		if r.Usage != nil {
			c.Usage.Add(meter.Usage(*r.Usage))
		}
		types = append(types, r.Type)
		for _, t := range []time.Time{r.Started, r.Ended} {
			if !t.IsZero() && (c.Started.IsZero() || t.Before(c.Started)) {
				c.Started = t
			}
			if t.After(c.Ended) {
				c.Ended = t
			}
		}
	}
	for _, size := range items {
		c.Usage.Add(meter.ReceiptWrite(size))
	}
	c.Transitions = cost.Transitions(types)
	return c, nil
}

// Key names what a report groups by.
type Key string

// Groupings.
const (
	ByWorkflow   Key = "workflow"
	ByTenant     Key = "tenant"
	ByDepartment Key = "department"
)

func (k Key) of(c Case) (string, error) {
	switch k {
	case ByWorkflow, "":
		return c.Namespace + "/" + c.Workflow, nil
	case ByTenant:
		return c.Tenant, nil
	case ByDepartment:
		return c.Department, nil
	}
	return "", fmt.Errorf("chargeback: group by %q: want workflow, tenant or department", string(k))
}

// Line is one owner's charge for the period.
type Line struct {
	Key      string
	Cases    int64
	Usage    cost.Usage // summed (Lambda MB-ms of one architecture per owner in practice)
	Direct   *big.Rat
	Shared   *big.Rat
	Standard *big.Rat // the same cases on Step Functions Standard
	Express  *big.Rat // and on Express
}

// Total is direct plus shared cost.
func (l Line) Total() *big.Rat { return new(big.Rat).Add(l.Direct, l.Shared) }

// PerCase divides an amount by the line's cases.
func (l Line) PerCase(r *big.Rat) *big.Rat {
	if l.Cases == 0 {
		return new(big.Rat)
	}
	return new(big.Rat).Quo(r, big.NewRat(l.Cases, 1))
}

// Report is a period's chargeback.
type Report struct {
	Period string // YYYY-MM
	By     Key
	Prices string // the price table's version
	Lines  []Line
	Shared *big.Rat // shared cost charged to the lines
	Idle   *big.Rat // idle cost, charged to nobody
}

// Build prices the cases and groups them by key; shared and idle are the
// period's usage that belongs to no case (one entry per function and
// architecture, see store.Overheads).
func Build(t *cost.Table, period string, by Key, cases []Case, shared, idle []cost.Usage) (Report, error) {
	lines := map[string]*Line{}
	for _, c := range cases {
		k, err := by.of(c)
		if err != nil {
			return Report{}, err
		}
		l := lines[k]
		if l == nil {
			l = &Line{Key: k, Direct: new(big.Rat), Shared: new(big.Rat), Standard: new(big.Rat), Express: new(big.Rat)}
			lines[k] = l
		}
		l.Cases++
		l.Usage.Add(c.Usage)
		l.Direct.Add(l.Direct, t.Price(c.Usage).Total)
		sfn := cost.StepFunctionsCase{Transitions: c.Transitions, Duration: c.Ended.Sub(c.Started)}
		l.Standard.Add(l.Standard, t.StepFunctionsStandard(sfn))
		l.Express.Add(l.Express, t.StepFunctionsExpress(sfn))
	}
	direct := map[string]*big.Rat{}
	for k, l := range lines {
		direct[k] = l.Direct
	}
	sharedCost, idleCost := t.PriceAll(shared), t.PriceAll(idle)
	allocs, idleLeft := cost.Split(direct, sharedCost, idleCost)
	r := Report{Period: period, By: by, Prices: t.Version, Shared: sharedCost, Idle: idleLeft}
	for _, a := range allocs {
		l := lines[a.Key]
		l.Shared = a.Shared
		r.Lines = append(r.Lines, *l)
	}
	slices.SortFunc(r.Lines, func(a, b Line) int {
		if c := b.Total().Cmp(a.Total()); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return r, nil
}

// Total is everything the period cost: every line plus idle.
func (r Report) Total() *big.Rat {
	s := new(big.Rat).Set(r.Idle)
	for _, l := range r.Lines {
		s.Add(s, l.Total())
	}
	return s
}

// decimals of dollar amounts in exports: exact for every price in the table
// times whole units, to a millionth of a cent for derived shares.
const decimals = 12

var header = []string{"period", "by", "key", "cases", "direct", "shared", "total", "perCase", "perMillion",
	"stepFunctionsStandard", "stepFunctionsExpress", "lambdaMBms", "writeUnits", "readUnits", "sqsRequests", "httpCalls"}

// WriteCSV writes the report as CSV, one row per line and a last row with
// the idle cost.
func (r Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	rows := [][]string{header}
	for _, l := range r.Lines {
		rows = append(rows, []string{r.Period, string(r.By), l.Key, fmt.Sprint(l.Cases), l.Direct.FloatString(decimals),
			l.Shared.FloatString(decimals), l.Total().FloatString(decimals), l.PerCase(l.Total()).FloatString(decimals),
			cost.PerMillion(l.PerCase(l.Total())).FloatString(4), l.Standard.FloatString(decimals), l.Express.FloatString(decimals),
			fmt.Sprint(l.Usage.LambdaMBms), fmt.Sprint(l.Usage.WriteUnits), fmt.Sprint(l.Usage.ReadUnits),
			fmt.Sprint(l.Usage.SQSRequests), fmt.Sprint(l.Usage.HTTPCalls)})
	}
	rows = append(rows, []string{r.Period, string(r.By), "(idle)", "0", "0", "0", r.Idle.FloatString(decimals)})
	for i := range rows {
		for len(rows[i]) < len(header) {
			rows[i] = append(rows[i], "")
		}
	}
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("write chargeback CSV: %w", err)
	}
	return nil
}

// jsonLine is a line's exported form; amounts are decimal strings.
type jsonLine struct {
	Key                   string     `json:"key"`
	Cases                 int64      `json:"cases"`
	Direct                string     `json:"direct"`
	Shared                string     `json:"shared"`
	Total                 string     `json:"total"`
	PerCase               string     `json:"perCase"`
	StepFunctionsStandard string     `json:"stepFunctionsStandard"`
	StepFunctionsExpress  string     `json:"stepFunctionsExpress"`
	Usage                 cost.Usage `json:"usage"`
}

// MarshalJSON renders the report with amounts as exact decimal strings.
func (r Report) MarshalJSON() ([]byte, error) {
	out := struct {
		Period string     `json:"period"`
		By     Key        `json:"by"`
		Prices string     `json:"prices"`
		Total  string     `json:"total"`
		Shared string     `json:"shared"`
		Idle   string     `json:"idle"`
		Lines  []jsonLine `json:"lines"`
	}{Period: r.Period, By: r.By, Prices: r.Prices, Total: r.Total().FloatString(decimals),
		Shared: r.Shared.FloatString(decimals), Idle: r.Idle.FloatString(decimals), Lines: []jsonLine{}}
	for _, l := range r.Lines {
		out.Lines = append(out.Lines, jsonLine{Key: l.Key, Cases: l.Cases, Direct: l.Direct.FloatString(decimals),
			Shared: l.Shared.FloatString(decimals), Total: l.Total().FloatString(decimals), PerCase: l.PerCase(l.Total()).FloatString(decimals),
			StepFunctionsStandard: l.Standard.FloatString(decimals), StepFunctionsExpress: l.Express.FloatString(decimals), Usage: l.Usage})
	}
	return json.Marshal(out)
}

// PerCase is each workflow's (namespace/name) mean usage per case, every
// count divided by the cases and rounded down.
func PerCase(cases []Case) map[string]cost.Usage {
	sum := map[string]cost.Usage{}
	n := map[string]int64{}
	for _, c := range cases {
		k := c.Namespace + "/" + c.Workflow
		u := sum[k]
		u.Add(c.Usage)
		sum[k] = u
		n[k]++
	}
	out := map[string]cost.Usage{}
	for k, u := range sum {
		d := n[k]
		out[k] = cost.Usage{Arch: u.Arch, InvocationMicros: u.InvocationMicros / d, LambdaMBms: u.LambdaMBms / d,
			WriteUnits: u.WriteUnits / float64(d), ReadUnits: u.ReadUnits / float64(d), StreamReads: u.StreamReads / d,
			SQSRequests: u.SQSRequests / d, SNSPublishes: u.SNSPublishes / d, KMSRequests: u.KMSRequests / d,
			KMSAsymRequests: u.KMSAsymRequests / d, SecretsRequests: u.SecretsRequests / d, S3Puts: u.S3Puts / d,
			S3Gets: u.S3Gets / d, HTTPCalls: u.HTTPCalls / d, HTTPBytes: u.HTTPBytes / d, DynamoRequests: u.DynamoRequests / d}
	}
	return out
}

// UnmarshalJSON reads a report as MarshalJSON wrote it (amounts as exported,
// to 12 decimals).
func (r *Report) UnmarshalJSON(b []byte) error {
	var in struct {
		Period string     `json:"period"`
		By     Key        `json:"by"`
		Prices string     `json:"prices"`
		Shared string     `json:"shared"`
		Idle   string     `json:"idle"`
		Lines  []jsonLine `json:"lines"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("chargeback report: %w", err)
	}
	rat := func(what, s string) (*big.Rat, error) {
		v, ok := new(big.Rat).SetString(s)
		if !ok {
			return nil, fmt.Errorf("chargeback report: %s %q is not a decimal amount", what, s)
		}
		return v, nil
	}
	out := Report{Period: in.Period, By: in.By, Prices: in.Prices}
	var err error
	if out.Shared, err = rat("shared", in.Shared); err != nil {
		return err
	}
	if out.Idle, err = rat("idle", in.Idle); err != nil {
		return err
	}
	for _, jl := range in.Lines {
		l := Line{Key: jl.Key, Cases: jl.Cases, Usage: jl.Usage}
		for _, f := range []struct {
			dst  **big.Rat
			name string
			v    string
		}{{&l.Direct, "direct", jl.Direct}, {&l.Shared, "shared", jl.Shared}, {&l.Standard, "stepFunctionsStandard", jl.StepFunctionsStandard}, {&l.Express, "stepFunctionsExpress", jl.StepFunctionsExpress}} {
			if *f.dst, err = rat(jl.Key+" "+f.name, f.v); err != nil {
				return err
			}
		}
		out.Lines = append(out.Lines, l)
	}
	*r = out
	return nil
}
