package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"testing"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// rest starts a case of src with input and returns its program and state
// once the first decision is recorded.
func rest(t *testing.T, src string, input any) (*Program, *State, []history.Event) {
	t.Helper()
	p, err := Compile(load(t, src))
	if err != nil {
		t.Fatal(err)
	}
	st := NewState()
	dec, err := p.Decide(context.Background(), st, Start{CaseID: "c-1", Input: input, Time: t0}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p, st, dec.Events
}

const waitsSrc = header + `do:
  - pick:
      fork:
        compete: false
        branches:
          - decided:
              listen:
                to:
                  one:
                    with:
                      type: claim.decided
                    correlate:
                      claim:
                        from: ${ .subject }
                        expect: ${ .claimId }
                      region:
                        from: ${ .data.region }
                        expect: ${ .region }
                      seen:
                        from: ${ .id }
                      bySecret:
                        from: ${ .data.token }
                        expect: ${ $secrets.token }
                      byContext:
                        from: ${ .data.x == $context.x }
                        expect: ${ true }
          - both:
              listen:
                to:
                  all:
                    - with:
                        type: paid
                      correlate:
                        order:
                          from: ${ .subject }
                          expect: ${ .order }
                    - with:
                        type: shipped
          - anything:
              listen:
                to:
                  any: []
`

func TestWaitsReportsCorrelationValues(t *testing.T) {
	p, st, _ := rest(t, waitsSrc, map[string]any{"claimId": "clm-7", "region": "eu", "order": 42})
	got, err := p.Waits(context.Background(), st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Wait{
		{Task: "/do/0/pick/fork/branches/0/decided", Filters: []WaitFilter{{Type: "claim.decided", Correlations: []Correlation{
			{Name: "claim", From: "${ .subject }", Expect: "clm-7"},
			{Name: "region", From: "${ .data.region }", Expect: "eu"},
		}}}},
		{Task: "/do/0/pick/fork/branches/1/both", Filters: []WaitFilter{
			{Type: "paid", Correlations: []Correlation{{Name: "order", From: "${ .subject }", Expect: 42}}},
			{Type: "shipped"},
		}},
		{Task: "/do/0/pick/fork/branches/2/anything"},
	}
	if js(got) != js(want) {
		t.Fatalf("Waits =\n%s\nwant\n%s", js(got), js(want))
	}
	// Pure: asking twice records nothing and answers the same.
	applied := st.Applied
	again, err := p.Waits(context.Background(), st, Options{})
	if err != nil || js(again) != js(got) || st.Applied != applied {
		t.Fatalf("second Waits = %s, %v; applied %d -> %d", js(again), err, applied, st.Applied)
	}
}

func TestWaitsNothingWhenNotListening(t *testing.T) {
	p, st, _ := rest(t, header+"do:\n  - a:\n      set:\n        x: 1\n", map[string]any{})
	if st.Status != StatusCompleted {
		t.Fatalf("status %s", st.Status)
	}
	got, err := p.Waits(context.Background(), st, Options{})
	if err != nil || len(got) != 0 {
		t.Fatalf("Waits of an ended case = %v, %v", got, err)
	}
	got, err = p.Waits(context.Background(), NewState(), Options{})
	if err != nil || len(got) != 0 {
		t.Fatalf("Waits of a case not started = %v, %v", got, err)
	}
}

func TestWaitsRefusesACaseWithWorkToDo(t *testing.T) {
	p, _, evs := rest(t, waitsSrc, map[string]any{"claimId": "clm-7"})
	// The history without its last event (an EventAwaited): a decision
	// would record it again.
	prefix, err := Replay(p.wf, evs[:len(evs)-1])
	if err != nil {
		t.Fatal(err)
	}
	before := prefix.Applied
	if _, err := p.Waits(context.Background(), prefix, Options{}); !errors.Is(err, ErrNotAtRest) {
		t.Fatalf("Waits on a case with work to do: %v, want ErrNotAtRest", err)
	}
	if prefix.Applied != before {
		t.Fatalf("Waits recorded events: applied %d -> %d", before, prefix.Applied)
	}
}

// admits reports whether an event passes a wait's filter on type and
// correlation values alone, the way the listen index selects cases.
func admits(ws []Wait, ev map[string]any) bool {
	for _, w := range ws {
		if len(w.Filters) == 0 {
			return true
		}
		for _, f := range w.Filters {
			if f.Type != "" && f.Type != ev["type"] {
				continue
			}
			ok := true
			for _, c := range f.Correlations {
				v, _ := expr.MustCompile(c.From).Eval(context.Background(), ev, expr.Vars{})
				ok = ok && jsonEqual(v, c.Expect)
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// TestWaitsNeverExcludeAnAcceptedEvent is the index's safety property: an
// event the engine consumes always passes the filters Waits reports, so a
// lookup by type and correlation values never loses it.
func TestWaitsNeverExcludeAnAcceptedEvent(t *testing.T) {
	src := header + `do:
  - l:
      listen:
        to:
          any:
            - with:
                type: a
              correlate:
                k:
                  from: ${ .subject }
                  expect: ${ .want }
                n:
                  from: ${ .data.n }
                  expect: ${ .n }
            - with:
                type: b
                source: https://s1.example
`
	rnd := rand.New(rand.NewSource(1))
	consumed, excluded := 0, 0
	pick := func(xs ...any) any { return xs[rnd.Intn(len(xs))] }
	untils := []string{"          until: length >= 4\n",
		// until as a consumption strategy: its filters are waited for too
		"          until:\n            one:\n              with:\n                type: c\n                subject: ${ .want }\n"}
	for trial := range 50 {
		p, st, _ := rest(t, src+untils[trial%2], map[string]any{"want": "x", "n": 3})
		for i := range 30 {
			ws, err := p.Waits(context.Background(), st, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Status != StatusRunning {
				break
			}
			ev := map[string]any{"specversion": "1.0", "id": fmt.Sprint(trial, "-", i), "type": pick("a", "b", "c"),
				"source": pick("https://s1.example", "https://s2.example"), "subject": pick("x", "y"), "data": map[string]any{"n": pick(3, 3.0, 4, "3")}}
			before := countEvents(st)
			if _, err := p.Decide(context.Background(), st, EventArrived{Event: ev, Time: t0}, Options{}); err != nil {
				t.Fatal(err)
			}
			took := countEvents(st) > before
			if took && !admits(ws, ev) {
				t.Fatalf("the engine consumed %v, which the waits %s exclude", ev, js(ws))
			}
			if took {
				consumed++
			} else if !admits(ws, ev) {
				excluded++
			}
		}
	}
	if consumed == 0 || excluded == 0 {
		t.Fatalf("the trials consumed %d events and excluded %d: both must happen", consumed, excluded)
	}
}

func countEvents(st *State) int {
	n := 0
	for _, r := range st.Records {
		n += len(r.Received)
	}
	return n
}
