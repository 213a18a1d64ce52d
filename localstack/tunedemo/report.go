package tunedemo

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/learn"
)

// Ended is one case of a run as the scenario measures it: when its start
// message was sent, when its chain began and ended, and how it ended.
type Ended struct {
	Sent, Started, Ended time.Time
	Status               history.Type // empty: the case did not end
}

// Objective is what the scenario's service level promises: the share of
// cases that complete and the p99 of what a caller waits, from sending the
// start message to the case's end.
type Objective struct {
	Availability float64
	P99          time.Duration
}

// Figures are one run's results.
type Figures struct {
	Loop          bool
	Cases         int
	Completed     int
	Faulted       int
	Open          int // not ended when the run stopped waiting
	DLQ           int64
	P99Wait       time.Duration // sent → ended: what a caller waits
	P99Case       time.Duration // chain start → end: what the platform's SLI measures
	MaxBacklog    int64         // most messages seen waiting in the work queue
	BreachMinutes int           // minutes whose ended cases missed the objective
	Minutes       int           // minutes in which cases ended
	CostPerCase   float64       // dollars, from the receipts
	Concurrency   []Sample      // the mapping's maximum concurrency over the run
	Changes       []Change      // what the loop recorded in the system chain
}

// Sample is a value seen at an offset from the scenario's start.
type Sample struct {
	At    time.Duration
	Value int64
}

// Change is one receipt of the system chain with its verdict.
type Change struct {
	At      time.Duration // from the scenario's start
	Change  learn.Change
	Verdict string // kept, rolled back (why), or empty while under trial
}

// Quantile is the q-quantile (nearest rank) of ds; 0 for none.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Measure folds the run's cases into figures: outcomes, the p99 of the
// caller's wait and of the chain, and the minutes (by end) whose cases
// missed the objective, in availability or in the caller's p99.
func Measure(cases []Ended, o Objective) Figures {
	var f Figures
	var waits, spans []time.Duration
	type minute struct {
		waits    []time.Duration
		ok, fail int
	}
	byMinute := map[time.Time]*minute{}
	for _, c := range cases {
		f.Cases++
		switch c.Status {
		case history.CaseCompleted:
			f.Completed++
		case history.CaseFaulted, history.CaseCancelled:
			f.Faulted++
		default:
			f.Open++
			continue
		}
		waits = append(waits, c.Ended.Sub(c.Sent))
		spans = append(spans, c.Ended.Sub(c.Started))
		k := c.Ended.UTC().Truncate(time.Minute)
		m := byMinute[k]
		if m == nil {
			m = &minute{}
			byMinute[k] = m
		}
		m.waits = append(m.waits, c.Ended.Sub(c.Sent))
		if c.Status == history.CaseCompleted {
			m.ok++
		} else {
			m.fail++
		}
	}
	f.P99Wait, f.P99Case = Quantile(waits, 0.99), Quantile(spans, 0.99)
	for _, m := range byMinute {
		f.Minutes++
		if float64(m.ok)/float64(m.ok+m.fail) < o.Availability || Quantile(m.waits, 0.99) > o.P99 {
			f.BreachMinutes++
		}
	}
	return f
}

// Print writes the two runs side by side, then each run's changes.
func Print(w io.Writer, o Objective, off, on Figures) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tLOOP OFF\tLOOP ON\t")
	row := func(name string, f func(Figures) string) { fmt.Fprintf(tw, "%s\t%s\t%s\t\n", name, f(off), f(on)) }
	row("cases", func(f Figures) string { return fmt.Sprint(f.Cases) })
	row("completed", func(f Figures) string { return fmt.Sprint(f.Completed) })
	row("faulted", func(f Figures) string { return fmt.Sprint(f.Faulted) })
	row("not ended", func(f Figures) string { return fmt.Sprint(f.Open) })
	row("DLQ messages", func(f Figures) string { return fmt.Sprint(f.DLQ) })
	row(fmt.Sprintf("SLA breach minutes (p99 wait > %s or availability < %.1f %%)", o.P99, o.Availability*100),
		func(f Figures) string { return fmt.Sprintf("%d of %d", f.BreachMinutes, f.Minutes) })
	row("p99 wait, start message sent → case end", func(f Figures) string { return f.P99Wait.Round(100 * time.Millisecond).String() })
	row("p99 case, first receipt → last (platform SLI)", func(f Figures) string { return f.P99Case.Round(100 * time.Millisecond).String() })
	row("most messages waiting", func(f Figures) string { return fmt.Sprint(f.MaxBacklog) })
	row("cost per case (receipts)", func(f Figures) string { return fmt.Sprintf("$%.9f", f.CostPerCase) })
	row("max concurrency over the run", func(f Figures) string { return concurrencyTrace(f.Concurrency) })
	row("changes by the loop", func(f Figures) string { return fmt.Sprint(len(f.Changes)) })
	_ = tw.Flush()
	for _, f := range []Figures{off, on} {
		label := "loop off"
		if f.Loop {
			label = "loop on"
		}
		fmt.Fprintf(w, "\nchanges recorded in the system chain, %s:\n", label)
		if len(f.Changes) == 0 {
			fmt.Fprintln(w, "  none")
		}
		for _, c := range f.Changes {
			fmt.Fprintf(w, "  %s  %s\n", fmtOffset(c.At), describe(c))
		}
	}
}

func describe(c Change) string {
	ch := c.Change
	s := fmt.Sprintf("%s %d → %d  %s", ch.Setting.Key(), ch.Previous, ch.Value, ch.Rule)
	var ev []string
	for _, e := range ch.Evidence {
		if e.Note != "" {
			ev = append(ev, e.Note)
			continue
		}
		ev = append(ev, fmt.Sprintf("%s %.4g (threshold %.4g)", e.Metric, e.Value, e.Threshold))
	}
	if len(ev) > 0 {
		s += " [" + strings.Join(ev, "; ") + "]"
	}
	if ch.RollbackOf != "" {
		s = "ROLLBACK of " + ch.RollbackOf + ": " + s
	}
	if c.Verdict != "" {
		s += " → " + c.Verdict
	}
	return s
}

// concurrencyTrace is the distinct values in order: "4 → 2 → 4 → 6".
func concurrencyTrace(ss []Sample) string {
	var out []string
	last := int64(-1)
	for _, s := range ss {
		if s.Value != last {
			out = append(out, fmt.Sprint(s.Value))
			last = s.Value
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, " → ")
}

func fmtOffset(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("+%02d:%02d", int(d/time.Minute), int(d%time.Minute/time.Second))
}
