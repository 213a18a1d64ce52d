// Package history defines the events of a case's history: what the workflow
// engine emits and the receipt chain records, one receipt per event.
package history

import (
	"encoding/json"
	"time"
)

// Type names what happened.
type Type string

// Event types. The set is closed: the engine emits only these and the receipt
// layer rejects others.
const (
	CaseStarted     Type = "case.started"     // genesis: binds workflow, descriptor and input
	TaskStarted     Type = "task.started"     // a task began (its input is recorded)
	TaskCompleted   Type = "task.completed"   // a task produced its output
	TaskFaulted     Type = "task.faulted"     // a task raised or failed
	TaskRetried     Type = "task.retried"     // a fault was caught and a retry scheduled
	TaskSkipped     Type = "task.skipped"     // a task's `if` was false
	BranchForked    Type = "branch.forked"    // a fork started its branches
	BranchCompleted Type = "branch.completed" // one fork branch finished
	BranchJoined    Type = "branch.joined"    // the fork's join fired (exactly once)
	TimerScheduled  Type = "timer.scheduled"  // a wait or delayed retry was scheduled
	TimerFired      Type = "timer.fired"      // a timer came due
	EffectRequested Type = "effect.requested" // a side effect (HTTP call, emit) was requested
	EffectCompleted Type = "effect.completed" // its result came back
	EventEmitted    Type = "event.emitted"    // a CloudEvent left through the outbound port
	EventAwaited    Type = "event.awaited"    // a listen task started waiting
	EventReceived   Type = "event.received"   // an external event was consumed by a listen task
	CaseCompleted   Type = "case.completed"   // the workflow ended with an output
	CaseFaulted     Type = "case.faulted"     // the workflow ended with an error
	CaseCancelled   Type = "case.cancelled"   // the workflow was cancelled
)

// Terminal reports whether an event of type t ends its case: nothing may
// follow it in the chain.
func (t Type) Terminal() bool {
	return t == CaseCompleted || t == CaseFaulted || t == CaseCancelled
}

// Error is a Serverless Workflow DSL error (RFC 7807 problem details shape).
type Error struct {
	Type     string `json:"type"`               // e.g. https://serverlessworkflow.io/spec/1.0.0/errors/communication
	Status   int    `json:"status"`             // HTTP-like status
	Title    string `json:"title,omitempty"`    // short summary
	Detail   string `json:"detail,omitempty"`   // what happened
	Instance string `json:"instance,omitempty"` // JSON pointer of the task that raised it
}

// Genesis is what the first event of a case binds.
type Genesis struct {
	Tenant         string `json:"tenant"`
	Namespace      string `json:"namespace"`
	Workflow       string `json:"workflow"`
	Version        string `json:"version"`
	DescriptorHash string `json:"descriptorHash"` // hex SHA-256 of the descriptor's bytes
	// TraceParent is the W3C trace context the case started in, so that
	// later hops arriving with a trace of their own can link to the case's
	// trace. Optional: chains without it verify as before.
	TraceParent string `json:"traceparent,omitempty"`
	// Format is the version of the history format the engine that started
	// the case recorded (see engine.HistoryFormat); zero in chains recorded
	// before the field existed.
	Format int `json:"format,omitempty"`
}

// Subflow is a sub-workflow version a case pinned when it started: every
// `run: workflow` task of the case runs exactly this document. Requested is
// the version as the task names it when that differs (e.g. "latest").
type Subflow struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	Requested string `json:"requested,omitempty"`
	Hash      string `json:"hash"` // hex SHA-256 of the document's bytes
}

// Event is one entry of a case's history. Times come from the stimulus that
// caused the event, never from a clock read inside the engine, so replay is
// deterministic.
type Event struct {
	Type    Type            `json:"type"`
	Task    string          `json:"task,omitempty"`    // JSON pointer of the task, e.g. /do/2/charge
	Key     string          `json:"key,omitempty"`     // occurrence of the task within the case (loop iteration, retry, branch); with Type and Attempt it identifies the event
	Branch  string          `json:"branch,omitempty"`  // fork branch path, empty on the main line
	Attempt int             `json:"attempt,omitempty"` // 0 on the first try, then 1, 2, ...
	Input   json.RawMessage `json:"input,omitempty"`   // task or case input
	Output  json.RawMessage `json:"output,omitempty"`  // task or case output
	Error   *Error          `json:"error,omitempty"`
	Genesis *Genesis        `json:"genesis,omitempty"` // only on CaseStarted
	Data    json.RawMessage `json:"data,omitempty"`    // type-specific detail (timer due time, effect request, event)
	Started time.Time       `json:"started,omitzero"`
	Ended   time.Time       `json:"ended,omitzero"`
}
