package replay

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/knhk/knhk/shared/history"
)

var update = flag.Bool("update", false, "record the scenarios the corpus does not hold yet (never overwrites a recorded case: see docs/ARCHITECTURE.md)")

// TestReplayCorpus replays every recorded case with the current engine:
// each stimulus must produce exactly the recorded events and effects.
func TestReplayCorpus(t *testing.T) {
	scs := scenarios(t)
	if *update {
		for _, sc := range scs {
			if _, err := os.Stat(filepath.Join(corpusDir, sc.name+".json")); err == nil {
				continue
			}
			if err := writeEntry(record(t, sc)); err != nil {
				t.Fatal(err)
			}
		}
	}
	names := make([]string, 0, len(scs))
	for _, sc := range scs {
		names = append(names, sc.name)
	}
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var recorded []string
	for _, f := range files {
		recorded = append(recorded, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	slices.Sort(names)
	if !slices.Equal(recorded, names) {
		t.Fatalf("the corpus holds %v, the scenarios are %v: record the missing ones (-update) or remove the stale ones", recorded, names)
	}
	for _, name := range recorded {
		t.Run(name, func(t *testing.T) {
			e, err := readEntry(name)
			if err != nil {
				t.Fatal(err)
			}
			if len(e.Steps) == 0 {
				t.Fatal("a recorded case without steps")
			}
			if err := replay(e); err != nil {
				t.Fatalf("the engine no longer decides the recorded case %s (%s):\n%v", name, e.Covers, err)
			}
		})
	}
}

// TestCorpusCoversTheEngine checks that the corpus holds what it must: every
// sample workflow, and faults, retries, timers, listens, emits and scripts.
func TestCorpusCoversTheEngine(t *testing.T) {
	seen := map[history.Type]int{}
	samples := 0
	for _, sc := range scenarios(t) {
		if strings.HasPrefix(sc.name, "sample-") {
			samples++
		}
		e, err := readEntry(sc.name)
		if err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		for _, s := range e.Steps {
			for _, ev := range s.Events {
				seen[ev.Type]++
			}
		}
		// What the engine resolved as secrets never reaches a recorded event.
		steps, _ := json.Marshal(e.Steps)
		for _, v := range secretValues(e.Secrets) {
			if strings.Contains(string(steps), v) {
				t.Errorf("%s: a secret value is recorded in the history", sc.name)
			}
		}
	}
	for _, want := range []history.Type{history.CaseStarted, history.TaskCompleted, history.TaskFaulted, history.TaskRetried, history.TaskSkipped,
		history.BranchForked, history.BranchCompleted, history.BranchJoined, history.TimerScheduled, history.TimerFired, history.EffectRequested,
		history.EventEmitted, history.EventAwaited, history.EventReceived, history.CaseCompleted, history.CaseFaulted} {
		if seen[want] == 0 {
			t.Errorf("no recorded case holds a %s event", want)
		}
	}
	if samples < 6 {
		t.Errorf("%d sample workflows recorded, want every one of events/workflows", samples)
	}
}

// TestReplayFindsAChangedDecision alters recorded cases the ways an engine
// change would show, and checks that the replay fails loudly for each.
func TestReplayFindsAChangedDecision(t *testing.T) {
	base, err := readEntry("retry-then-success")
	if err != nil {
		t.Fatal(err)
	}
	clone := func() entry {
		var e entry
		raw, _ := json.Marshal(base)
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	last := func(e *entry) *step { return &e.Steps[len(e.Steps)-1] }
	for _, tc := range []struct {
		name  string
		alter func(e *entry)
		want  string
	}{
		{"an output differs", func(e *entry) {
			s := last(e)
			for i := range s.Events {
				if s.Events[i].Type == history.CaseCompleted {
					s.Events[i].Output = json.RawMessage(`{"attempts":99}`)
				}
			}
		}, "changed"},
		{"an event is missing", func(e *entry) { s := last(e); s.Events = s.Events[:len(s.Events)-1] }, "changed"},
		{"an effect differs", func(e *entry) {
			for i := range e.Steps {
				if len(e.Steps[i].Effects) > 0 {
					e.Steps[i].Effects[0] += "x"
					return
				}
			}
		}, "effects changed"},
		{"a retry delay differs", func(e *entry) {
			for i := range e.Steps {
				for j := range e.Steps[i].Effects {
					e.Steps[i].Effects[j] = strings.Replace(e.Steps[i].Effects[j], ":02Z", ":03Z", 1)
				}
			}
		}, "effects changed"},
		{"an occurrence under another task", func(e *entry) {
			for i := range e.Steps {
				for j := range e.Steps[i].Events {
					if e.Steps[i].Events[j].Type == history.EffectRequested {
						e.Steps[i].Events[j].Task += "Renamed"
						return
					}
				}
			}
		}, "changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := clone()
			tc.alter(&e)
			err := replay(e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("replay of an altered case: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	if err := replay(clone()); err != nil {
		t.Fatalf("the unaltered case: %v", err)
	}
}

// secretValues lists the string leaves of a secrets map.
func secretValues(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case map[string]any:
		var out []string
		for _, x := range v {
			out = append(out, secretValues(x)...)
		}
		return out
	}
	return nil
}
