package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/history"
)

// waitingCase is a workflow that sets a value and then waits for a timer,
// with the history of a case that reached the wait.
func waitingCase(t *testing.T) (*Program, []history.Event) {
	t.Helper()
	src := header + `do:
  - first:
      set:
        a: 1
  - pause:
      wait: PT1M
  - last:
      set:
        b: 2
`
	p, err := Compile(load(t, src))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := p.Decide(context.Background(), NewState(), Start{CaseID: "c-nd", Time: t0}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if last := dec.Events[len(dec.Events)-1]; last.Type != history.TimerScheduled {
		t.Fatalf("the case did not reach the wait: %v", dec.Events)
	}
	return p, dec.Events
}

func TestGenesisRecordsTheHistoryFormat(t *testing.T) {
	_, evs := waitingCase(t)
	if g := evs[0].Genesis; g == nil || g.Format != HistoryFormat {
		t.Fatalf("genesis %+v, want format %d", evs[0].Genesis, HistoryFormat)
	}
}

// TestNondeterministicHistoryIsRefused alters recorded histories the way an
// engine change could and checks that the engine refuses to continue them
// with ErrNondeterministic, naming where they part.
func TestNondeterministicHistoryIsRefused(t *testing.T) {
	p, evs := waitingCase(t)
	alter := func(f func(e *history.Event)) []history.Event {
		out := make([]history.Event, len(evs))
		for i, e := range evs {
			if e.Genesis != nil {
				g := *e.Genesis
				e.Genesis = &g
			}
			f(&e)
			out[i] = e
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		events []history.Event
		where  string // Replay or Decide
		detail string
	}{
		{"an occurrence recorded under another task", alter(func(e *history.Event) {
			if e.Task == "/do/0/first" {
				e.Task = "/do/0/renamed"
			}
		}), "Decide", "the history recorded task /do/0/renamed here, the workflow walks /do/0/first"},
		{"one occurrence naming two tasks", append(alter(func(*history.Event) {}),
			history.Event{Type: history.TaskRetried, Key: evs[1].Key, Task: "/do/2/last", Attempt: 1}),
			"Replay", "task.retried names task /do/2/last, earlier events of this occurrence name /do/0/first"},
		{"a history format newer than the engine's", alter(func(e *history.Event) {
			if e.Genesis != nil {
				e.Genesis.Format = HistoryFormat + 1
			}
		}), "Replay", "this engine replays formats up to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Replay(p.wf, tc.events)
			if err == nil {
				_, err = p.Decide(context.Background(), st, Resume{Time: t0.Add(time.Second)}, Options{})
				if tc.where == "Replay" {
					t.Fatalf("replay accepted the history (decide: %v)", err)
				}
			} else if tc.where != "Replay" {
				t.Fatalf("replay refused the history: %v", err)
			}
			if !errors.Is(err, ErrNondeterministic) || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("error %v, want ErrNondeterministic mentioning %q", err, tc.detail)
			}
		})
	}
	// The unaltered history continues.
	st, err := Replay(p.wf, evs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Decide(context.Background(), st, Resume{Time: t0.Add(time.Second)}, Options{}); err != nil {
		t.Fatalf("the recorded history does not continue: %v", err)
	}
}
