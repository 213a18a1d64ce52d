package engine

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// Status is the life-cycle state of a case.
type Status string

// Case statuses.
const (
	StatusNew       Status = ""
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFaulted   Status = "faulted"
	StatusCancelled Status = "cancelled"
)

// RecordStatus is what the history says about one task occurrence.
type RecordStatus string

// Record statuses.
const (
	RecDone      RecordStatus = "done"      // completed (or skipped)
	RecFaulted   RecordStatus = "faulted"   // raised an error
	RecRequested RecordStatus = "requested" // its effect was requested, result pending
	RecAwaiting  RecordStatus = "awaiting"  // a listen task waits for events
)

// Record is the folded history of one task occurrence (identified by its
// key).
type Record struct {
	Status   RecordStatus      `json:"status,omitempty"`
	Task     string            `json:"task,omitempty"`
	Output   json.RawMessage   `json:"output,omitempty"`
	Error    *history.Error    `json:"error,omitempty"`
	Then     string            `json:"then,omitempty"`
	Retries  int               `json:"retries,omitempty"`
	Received []json.RawMessage `json:"received,omitempty"`

	val     any
	decoded bool
}

// Timer is a scheduled timer.
type Timer struct {
	Due   time.Time `json:"due"`
	Fired bool      `json:"fired,omitempty"`
}

// State is the fold of a case's history. The same history prefix always
// folds to the same State.
type State struct {
	Status    Status             `json:"status"`
	CaseID    string             `json:"caseId,omitempty"`
	Genesis   *history.Genesis   `json:"genesis,omitempty"`
	Subflows  []history.Subflow  `json:"subflows,omitempty"` // pinned at genesis
	StartedAt time.Time          `json:"startedAt,omitzero"`
	Input     json.RawMessage    `json:"input,omitempty"`
	Output    json.RawMessage    `json:"output,omitempty"`
	Error     *history.Error     `json:"error,omitempty"`
	Context   json.RawMessage    `json:"context,omitempty"`
	Records   map[string]*Record `json:"records"`
	Timers    map[string]*Timer  `json:"timers"`
	Applied   int                `json:"applied"` // number of events folded

	seen    map[string]struct{}
	ctxVal  any
	ctxDone bool
}

// NewState returns the state of a case with no history.
func NewState() *State {
	return &State{
		Records: map[string]*Record{},
		Timers:  map[string]*Timer{},
		seen:    map[string]struct{}{},
	}
}

// Replay folds events into a new State. It fails on an event applied twice
// (same type, key and attempt) or an event that cannot follow the ones
// before it.
func Replay(wf *dsl.Workflow, events []history.Event) (*State, error) {
	if _, err := programFor(wf); err != nil {
		return nil, err
	}
	st := NewState()
	for i := range events {
		if err := st.Apply(&events[i]); err != nil {
			return nil, fmt.Errorf("replay event %d: %w", i, err)
		}
	}
	return st, nil
}

// Terminal reports whether the case has ended.
func (s *State) Terminal() bool {
	return s.Status == StatusCompleted || s.Status == StatusFaulted || s.Status == StatusCancelled
}

// identity is the string that makes an event unique within its case.
func identity(t history.Type, key string, attempt int) string {
	return string(t) + " " + key + " " + strconv.Itoa(attempt)
}

// Has reports whether an event with this identity has been applied.
func (s *State) Has(t history.Type, key string, attempt int) bool {
	_, ok := s.seen[identity(t, key, attempt)]
	return ok
}

type eventData struct {
	Then    string          `json:"then,omitempty"`
	Context json.RawMessage `json:"context,omitempty"`
	Due     time.Time       `json:"due,omitzero"`
	Case    string          `json:"case,omitempty"`
	// Subflows, on case.started: the pinned sub-workflow versions.
	Subflows []history.Subflow `json:"subflows,omitempty"`
}

// Apply folds one event into the state.
func (s *State) Apply(e *history.Event) error {
	if s.seen == nil {
		s.seen = map[string]struct{}{}
	}
	id := identity(e.Type, e.Key, e.Attempt)
	if _, dup := s.seen[id]; dup {
		return fmt.Errorf("event %s already applied", id)
	}
	if s.Status == StatusNew && e.Type != history.CaseStarted {
		return fmt.Errorf("%s before %s", e.Type, history.CaseStarted)
	}
	if s.Terminal() {
		return fmt.Errorf("%s after the case ended (%s)", e.Type, s.Status)
	}
	var d eventData
	if len(e.Data) > 0 && e.Data[0] == '{' && needsData(e.Type) {
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("%s data: %w", e.Type, err)
		}
	}
	if r := s.Records[e.Key]; r != nil && e.Task != "" && r.Task != e.Task {
		return &NondeterminismError{Key: e.Key, Detail: fmt.Sprintf("%s names task %s, earlier events of this occurrence name %s", e.Type, e.Task, r.Task)}
	}
	switch e.Type {
	case history.CaseStarted:
		if e.Genesis != nil {
			if err := checkFormat(e.Genesis.Format); err != nil {
				return err
			}
		}
		s.Status = StatusRunning
		s.Genesis = e.Genesis
		s.Input = e.Input
		s.StartedAt = e.Started
		s.CaseID = d.Case
		s.Subflows = d.Subflows
	case history.TaskCompleted, history.TaskSkipped, history.BranchCompleted, history.BranchJoined, history.EventEmitted:
		r := s.record(e.Key, e.Task)
		r.Status, r.Output, r.Then = RecDone, e.Output, d.Then
		r.val, r.decoded = nil, false
		if d.Context != nil {
			s.Context, s.ctxVal, s.ctxDone = d.Context, nil, false
		}
	case history.TaskFaulted:
		r := s.record(e.Key, e.Task)
		r.Status, r.Error = RecFaulted, e.Error
	case history.TaskRetried:
		r := s.record(e.Key, e.Task)
		r.Retries = e.Attempt
	case history.TimerScheduled:
		s.Timers[e.Key] = &Timer{Due: d.Due}
	case history.TimerFired:
		t := s.Timers[e.Key]
		if t == nil {
			return fmt.Errorf("timer %s fired but was never scheduled", e.Key)
		}
		t.Fired = true
	case history.EffectRequested:
		s.record(e.Key, e.Task).Status = RecRequested
	case history.EffectCompleted:
		// results are recorded by the task's completion or fault
	case history.EventAwaited:
		s.record(e.Key, e.Task).Status = RecAwaiting
	case history.EventReceived:
		r := s.record(e.Key, e.Task)
		r.Received = append(r.Received, e.Data)
	case history.BranchForked:
	case history.CaseCompleted:
		s.Status, s.Output = StatusCompleted, e.Output
	case history.CaseFaulted:
		s.Status, s.Error = StatusFaulted, e.Error
	case history.CaseCancelled:
		s.Status, s.Error = StatusCancelled, e.Error
	default:
		return fmt.Errorf("unknown event type %q", e.Type)
	}
	s.seen[id] = struct{}{}
	s.Applied++
	return nil
}

func needsData(t history.Type) bool {
	switch t {
	case history.CaseStarted, history.TaskCompleted, history.BranchCompleted, history.BranchJoined, history.TimerScheduled:
		return true
	}
	return false
}

func (s *State) record(key, task string) *Record {
	r := s.Records[key]
	if r == nil {
		r = &Record{Task: task}
		s.Records[key] = r
	}
	return r
}

// value returns the record's output decoded (once).
func (r *Record) value() any {
	if !r.decoded {
		r.val = decodeJSON(r.Output)
		r.decoded = true
	}
	return r.val
}

// context returns the current $context value.
func (s *State) context() any {
	if !s.ctxDone {
		s.ctxVal = decodeJSON(s.Context)
		s.ctxDone = true
	}
	return s.ctxVal
}

// decodeJSON decodes raw into JSON-like values, keeping integers as int.
func decodeJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	v, err := expr.DecodeJSON(raw)
	if err != nil {
		return nil
	}
	return v
}
