package engine

import (
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/engine/grpccall"
	"github.com/knhk/knhk/shared/workflow/engine/httpcall"
	"github.com/knhk/knhk/shared/workflow/engine/script"
)

// Stimulus is what advances a case: a start, the result of an effect, a
// timer, an external event, a cancellation or a plain resume.
type Stimulus interface{ stimulus() }

// Start begins a case.
type Start struct {
	CaseID  string
	Input   any
	Genesis history.Genesis
	// Subflows are the sub-workflow versions the case pins; the genesis
	// receipt records them (Pinned serves them to Decide).
	Subflows []history.Subflow
	Time     time.Time
}

// EffectResult carries the outcome of a performed effect back: Output on
// success, Error otherwise. ID is the effect's ID.
type EffectResult struct {
	ID     string
	Output any
	Error  *history.Error
	Time   time.Time
}

// TimerFired says a timer came due. One whose Time is before the due time
// the history recorded for the timer does not fire: the decision holds no
// event and asks for the timer again at its recorded due time.
type TimerFired struct {
	ID   string
	Time time.Time
}

// EventArrived delivers an external CloudEvent (in its JSON form: id,
// source, type, data, ...) to the case's listen tasks.
type EventArrived struct {
	Event map[string]any
	Time  time.Time
}

// Cancel ends a running case.
type Cancel struct {
	Reason string
	Time   time.Time
}

// Resume re-evaluates a case without new input (e.g. to continue after a
// step budget was spent). With Redrive the decision also repeats the
// effects the case still waits for (calls whose result never came back,
// timers not yet fired), for a shell that lost them in a crash; their
// results are accepted once.
type Resume struct {
	Time    time.Time
	Redrive bool
}

func (Start) stimulus()        {}
func (EffectResult) stimulus() {}
func (TimerFired) stimulus()   {}
func (EventArrived) stimulus() {}
func (Cancel) stimulus()       {}
func (Resume) stimulus()       {}

// EffectKind names a side effect the shell performs.
type EffectKind string

// Effect kinds.
const (
	EffectHTTP    EffectKind = "http"    // perform HTTP; result comes back as EffectResult
	EffectOpenAPI EffectKind = "openapi" // perform an OpenAPI operation; result as EffectResult
	EffectGRPC    EffectKind = "grpc"    // perform a unary gRPC call; result as EffectResult
	EffectScript  EffectKind = "script"  // run a script in the sandbox; result as EffectResult
	EffectEmit    EffectKind = "emit"    // publish a CloudEvent; no result expected
	EffectTimer   EffectKind = "timer"   // deliver TimerFired{ID} at Due
)

// Effect is a side effect requested by the core. The shell performs it and,
// for calls and timers, feeds the outcome back as a stimulus with the same
// ID.
type Effect struct {
	Kind    EffectKind
	ID      string
	Task    string // JSON pointer of the requesting task
	HTTP    *httpcall.Request
	OpenAPI *httpcall.OpenAPIRequest
	GRPC    *grpccall.Request
	Script  *script.Request
	Event   *cloudevents.Event
	Due     time.Time
}

// Decision is what one stimulus produced: the events to append (already
// folded into the state) and the effects to perform.
type Decision struct {
	Events  []history.Event
	Effects []Effect
}
