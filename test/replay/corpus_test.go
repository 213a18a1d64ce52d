package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/engine"
)

// entry is one recorded case of the corpus.
type entry struct {
	Scenario string         `json:"scenario"`
	Covers   string         `json:"covers"`
	Document string         `json:"document"`          // the workflow, as pinned at the case's start
	Secrets  map[string]any `json:"secrets,omitempty"` // what the engine resolved for $secrets
	Steps    []step         `json:"steps"`
}

// step is one decision: a stimulus and what the engine decided on it.
type step struct {
	Stimulus stimulus        `json:"stimulus"`
	Events   []history.Event `json:"events"`
	Effects  []string        `json:"effects,omitempty"` // kind, id, task and due time of each effect
}

// stimulus is an engine.Stimulus in a JSON form: exactly one field is set.
type stimulus struct {
	Start  *engine.Start        `json:"start,omitempty"`
	Result *engine.EffectResult `json:"result,omitempty"`
	Timer  *engine.TimerFired   `json:"timer,omitempty"`
	Event  *engine.EventArrived `json:"event,omitempty"`
	Cancel *engine.Cancel       `json:"cancel,omitempty"`
	Resume *engine.Resume       `json:"resume,omitempty"`
}

func wrap(s engine.Stimulus) stimulus {
	switch s := s.(type) {
	case engine.Start:
		return stimulus{Start: &s}
	case engine.EffectResult:
		return stimulus{Result: &s}
	case engine.TimerFired:
		return stimulus{Timer: &s}
	case engine.EventArrived:
		return stimulus{Event: &s}
	case engine.Cancel:
		return stimulus{Cancel: &s}
	case engine.Resume:
		return stimulus{Resume: &s}
	}
	panic(fmt.Sprintf("unknown stimulus %T", s))
}

func (s stimulus) unwrap() (engine.Stimulus, error) {
	var out []engine.Stimulus
	if s.Start != nil {
		out = append(out, *s.Start)
	}
	if s.Result != nil {
		out = append(out, *s.Result)
	}
	if s.Timer != nil {
		out = append(out, *s.Timer)
	}
	if s.Event != nil {
		out = append(out, *s.Event)
	}
	if s.Cancel != nil {
		out = append(out, *s.Cancel)
	}
	if s.Resume != nil {
		out = append(out, *s.Resume)
	}
	if len(out) != 1 {
		return nil, fmt.Errorf("a recorded stimulus sets %d kinds, want one", len(out))
	}
	return out[0], nil
}

func effects(d engine.Decision) []string {
	var out []string
	for _, e := range d.Effects {
		s := string(e.Kind) + " " + e.ID + " " + e.Task
		if !e.Due.IsZero() {
			s += " due " + e.Due.UTC().Format(time.RFC3339Nano)
		}
		out = append(out, s)
	}
	return out
}

// replay decides every recorded stimulus of e again with the current
// engine and reports the first decision that differs from the recorded one.
func replay(e entry) error {
	wf, err := dsl.Load([]byte(e.Document))
	if err != nil {
		return fmt.Errorf("load the recorded document: %w", err)
	}
	p, err := engine.Compile(wf)
	if err != nil {
		return fmt.Errorf("compile the recorded document: %w", err)
	}
	st := engine.NewState()
	opts := engine.Options{Secrets: e.Secrets}
	for i, s := range e.Steps {
		stim, err := s.Stimulus.unwrap()
		if err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
		dec, err := p.Decide(context.Background(), st, stim, opts)
		if err != nil {
			return fmt.Errorf("step %d (%T): the engine refuses the recorded history: %w", i, stim, err)
		}
		if err := sameEvents(s.Events, dec.Events); err != nil {
			return fmt.Errorf("step %d (%T): %w", i, stim, err)
		}
		if got := effects(dec); !slices.Equal(got, s.Effects) {
			return fmt.Errorf("step %d (%T): effects changed:\nrecorded %q\n     now %q", i, stim, s.Effects, got)
		}
	}
	return nil
}

// sameEvents compares two event lists in their JSON form.
func sameEvents(recorded, now []history.Event) error {
	for i := range max(len(recorded), len(now)) {
		var a, b []byte
		if i < len(recorded) {
			a, _ = json.Marshal(recorded[i])
		}
		if i < len(now) {
			b, _ = json.Marshal(now[i])
		}
		if string(a) != string(b) {
			return fmt.Errorf("event %d changed:\nrecorded %s\n     now %s", i, orNone(a), orNone(b))
		}
	}
	return nil
}

func orNone(b []byte) string {
	if len(b) == 0 {
		return "(none)"
	}
	return string(b)
}

const corpusDir = "corpus"

func readEntry(name string) (entry, error) {
	var e entry
	raw, err := os.ReadFile(filepath.Join(corpusDir, name+".json"))
	if err != nil {
		return e, err
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("decode %s: %w", name, err)
	}
	return e, nil
}

func writeEntry(e entry) error {
	raw, err := json.MarshalIndent(e, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(corpusDir, e.Scenario+".json"), append(raw, '\n'), 0o644)
}
