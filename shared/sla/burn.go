package sla

import (
	"fmt"
	"slices"
	"time"
)

// Severity says who an alert goes to.
type Severity string

// Severities: a page wakes someone; a ticket waits for working hours.
const (
	Page   Severity = "page"
	Ticket Severity = "ticket"
)

// Rule is one multi-window burn-rate alert: it fires when the burn rate over
// both the long and the short window reaches Factor. The long window makes it
// significant; the short one makes it stop soon after the problem does.
type Rule struct {
	Name     string        `json:"name"`
	Severity Severity      `json:"severity"`
	Long     time.Duration `json:"long"`
	Short    time.Duration `json:"short"`
	Factor   float64       `json:"factor"`
}

// WorkbookRules are the SRE Workbook's recommended alerts for a 30-day
// objective: page at 14.4x over 1 h and 5 min (2 % of the budget in an hour)
// or 6x over 6 h and 30 min (5 % in six hours); ticket at 3x over 1 d and 2 h
// (10 % in a day) or 1x over 3 d and 6 h.
func WorkbookRules() []Rule {
	return []Rule{
		{Name: "page-1h", Severity: Page, Long: time.Hour, Short: 5 * time.Minute, Factor: 14.4},
		{Name: "page-6h", Severity: Page, Long: 6 * time.Hour, Short: 30 * time.Minute, Factor: 6},
		{Name: "ticket-1d", Severity: Ticket, Long: 24 * time.Hour, Short: 2 * time.Hour, Factor: 3},
		{Name: "ticket-3d", Severity: Ticket, Long: 72 * time.Hour, Short: 6 * time.Hour, Factor: 1},
	}
}

// Scaled divides every window by div (at least a minute each), keeping the
// factors: the same rules over a shorter timeline, for tests and
// demonstrations.
func Scaled(rules []Rule, div float64) []Rule {
	out := slices.Clone(rules)
	for i := range out {
		out[i].Long = max(time.Duration(float64(out[i].Long)/div).Truncate(time.Minute), time.Minute)
		out[i].Short = max(time.Duration(float64(out[i].Short)/div).Truncate(time.Minute), time.Minute)
	}
	return out
}

// Series holds outcome counts per minute (keys are UTC minutes).
type Series map[time.Time]Counts

// Add counts c in the minute that holds t.
func (s Series) Add(t time.Time, c Counts) {
	m := t.UTC().Truncate(time.Minute)
	cur := s[m]
	cur.Add(c)
	s[m] = cur
}

// Window sums the minutes of the d before end: [end-d, end), in whole
// minutes.
func (s Series) Window(end time.Time, d time.Duration) Counts {
	end = end.UTC().Truncate(time.Minute)
	from := end.Add(-d)
	var sum Counts
	if d/time.Minute < time.Duration(len(s)) {
		for m := from; m.Before(end); m = m.Add(time.Minute) {
			sum.Add(s[m])
		}
		return sum
	}
	for m, c := range s {
		if !m.Before(from) && m.Before(end) {
			sum.Add(c)
		}
	}
	return sum
}

// Guard keeps quiet periods from paging: a rule fires only when its long
// window holds at least MinEvents ended cases.
type Guard struct {
	MinEvents int64 `json:"minEvents"`
}

// Alert is a rule that fires, with the figures that made it fire.
type Alert struct {
	Rule       Rule    `json:"rule"`
	LongBurn   float64 `json:"longBurn"`
	ShortBurn  float64 `json:"shortBurn"`
	LongEvents int64   `json:"longEvents"`
}

// DedupKey identifies an alert across evaluations: the same objective and
// severity give the same key, so a paging service keeps one incident.
func (a Alert) DedupKey(objective string) string {
	return fmt.Sprintf("knhk/%s/%s", objective, a.Rule.Severity)
}

// Burn is the burn rate of one rule's two windows.
type Burn struct {
	Rule       Rule    `json:"rule"`
	Long       float64 `json:"long"`
	Short      float64 `json:"short"`
	LongEvents int64   `json:"longEvents"`
	Firing     bool    `json:"firing"`
	Guarded    bool    `json:"guarded,omitempty"` // would fire, but too few events
}

// Burns evaluates every rule at end; the ones that fire are marked.
func Burns(s Series, end time.Time, availability float64, rules []Rule, g Guard) []Burn {
	out := make([]Burn, 0, len(rules))
	for _, r := range rules {
		long, short := s.Window(end, r.Long), s.Window(end, r.Short)
		b := Burn{Rule: r, Long: BurnRate(long, availability), Short: BurnRate(short, availability), LongEvents: long.Valid()}
		over := b.Long >= r.Factor && b.Short >= r.Factor
		b.Guarded = over && long.Valid() < g.MinEvents
		b.Firing = over && !b.Guarded
		out = append(out, b)
	}
	return out
}

// Evaluate returns the alerts that fire at end.
func Evaluate(s Series, end time.Time, availability float64, rules []Rule, g Guard) []Alert {
	var out []Alert
	for _, b := range Burns(s, end, availability, rules, g) {
		if b.Firing {
			out = append(out, Alert{Rule: b.Rule, LongBurn: b.Long, ShortBurn: b.Short, LongEvents: b.LongEvents})
		}
	}
	return out
}
