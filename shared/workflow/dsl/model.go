// Package dsl is the typed model of a CNCF Serverless Workflow DSL 1.0.x
// document, with its parser and validator.
//
// Parse turns YAML or JSON into a Workflow whose every task knows its JSON
// pointer (e.g. /do/0/tryIt/try/0/inner) and its source position. Validate
// applies the semantic rules the official schema cannot express. Load does
// both.
package dsl

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// Workflow is a parsed workflow document.
type Workflow struct {
	Document Document
	Input    *Input
	Output   *Output
	Use      Use
	Do       TaskList
	Timeout  *Timeout
	Schedule *Schedule
	Evaluate *Evaluate

	// root is the source tree, kept to answer Position.
	root *node
	// exprs are the runtime expressions found by Parse, compiled by Validate.
	exprs []exprSite
}

// Position returns the source position of the node at the JSON pointer ptr,
// and whether the pointer names a node of the source document.
func (w *Workflow) Position(ptr string) (Pos, bool) {
	if w == nil || w.root == nil {
		return Pos{}, false
	}
	return w.root.find(ptr)
}

// Pos is a 1-based line and column in the source document.
type Pos struct {
	Line   int
	Column int
}

// Document holds the workflow's identity and descriptive fields.
type Document struct {
	DSL       string
	Namespace string
	Name      string
	Version   string
	Title     string
	Summary   string
	Tags      map[string]any
	Metadata  map[string]any
}

// Evaluate configures runtime expression evaluation. Only the jq language is
// supported.
type Evaluate struct {
	Language string // "jq"
	Mode     string // "strict" (default) or "loose"
}

// Use holds the workflow's reusable, named components.
type Use struct {
	Authentications map[string]*AuthenticationPolicy
	Errors          map[string]*ErrorDef
	Extensions      []Extension
	Functions       map[string]*Task
	Retries         map[string]*RetryPolicy
	Secrets         []string
	Timeouts        map[string]*TimeoutDef
	Catalogs        map[string]*Catalog
}

// Extension is a named extension (parsed; KNHK rejects extensions as
// unsupported).
type Extension struct {
	Name   string
	Extend string
	When   string
	Before TaskList
	After  TaskList
}

// Catalog is a named resource catalog (parsed; not resolved by KNHK).
type Catalog struct {
	Endpoint Endpoint
}

// Schedule says when a workflow starts on its own.
type Schedule struct {
	Every *Duration
	Cron  string
	After *Duration
	On    *ConsumptionStrategy
}

// Input configures the input of a workflow or task.
type Input struct {
	From   any // runtime expression (string) or object with embedded expressions
	Schema *Schema
}

// Output configures the output of a workflow or task.
type Output struct {
	As     any // runtime expression (string) or object with embedded expressions
	Schema *Schema
}

// Export configures what a task writes into the workflow context.
type Export struct {
	As     any // runtime expression (string) or object with embedded expressions
	Schema *Schema
}

// Schema describes data: an inline document or an external resource.
type Schema struct {
	Format   string // defaults to "json"
	Document any
	Resource *ExternalResource
}

// ExternalResource is a resource found at an endpoint.
type ExternalResource struct {
	Name     string
	Endpoint Endpoint
}

// Endpoint is a URI (template or runtime expression) with an optional
// authentication policy.
type Endpoint struct {
	URI            string
	Authentication *AuthRef
}

// AuthRef is an inline authentication policy or a reference to one declared
// under use.authentications.
type AuthRef struct {
	Use    string // name of a declared policy, when a reference
	Policy *AuthenticationPolicy
}

// Authentication schemes.
const (
	AuthBasic  = "basic"
	AuthBearer = "bearer"
	AuthDigest = "digest"
	AuthOAuth2 = "oauth2"
	AuthOIDC   = "oidc"
)

// AuthenticationPolicy is one authentication scheme. KNHK supports basic,
// bearer, oauth2 and oidc; digest is parsed and rejected as unsupported.
type AuthenticationPolicy struct {
	Scheme string // one of the Auth* constants
	Basic  *BasicAuth
	Bearer *BearerAuth
	OAuth2 *OAuth2Auth // oauth2 and oidc
	// Secret names a secret holding the scheme's properties, when the policy
	// is written as {scheme: {use: secret}}.
	Secret string
}

// BasicAuth holds HTTP basic credentials (possibly runtime expressions).
type BasicAuth struct {
	Username string
	Password string
}

// BearerAuth holds a bearer token (possibly a runtime expression).
type BearerAuth struct {
	Token string
}

// ErrorDef is a DSL error definition (RFC 7807 problem details shape).
type ErrorDef struct {
	Type     string
	Status   int
	Instance string
	Title    string
	Detail   string
}

// ErrorRef is an inline error or a reference to one declared under
// use.errors.
type ErrorRef struct {
	Ref string
	Def *ErrorDef
}

// TimeoutDef is a timeout definition.
type TimeoutDef struct {
	After Duration
}

// Timeout is an inline timeout or a reference to one declared under
// use.timeouts.
type Timeout struct {
	Ref   string
	After *Duration
}

// Duration is a fixed length of time, or a runtime expression that yields
// one (an ISO 8601 duration string) at run time.
type Duration struct {
	Value time.Duration
	Expr  string // set when the duration is a runtime expression
}

// RetryPolicy says whether, how often and how fast a failed task is retried.
type RetryPolicy struct {
	When       string
	ExceptWhen string
	Delay      *Duration
	Backoff    *Backoff
	Limit      *RetryLimit
	Jitter     *Jitter
}

// Backoff kinds.
const (
	BackoffConstant    = "constant"
	BackoffLinear      = "linear"
	BackoffExponential = "exponential"
)

// Backoff is how the delay grows between attempts.
type Backoff struct {
	Kind   string // one of the Backoff* constants
	Params map[string]any
}

// RetryLimit bounds retries.
type RetryLimit struct {
	Attempt  *AttemptLimit
	Duration *Duration // total time for all attempts
}

// AttemptLimit bounds retry attempts.
type AttemptLimit struct {
	Count    int // 0 when unset
	Duration *Duration
}

// Jitter is a random delay range added to each retry delay.
type Jitter struct {
	From Duration
	To   Duration
}

// RetryRef is an inline retry policy or a reference to one declared under
// use.retries.
type RetryRef struct {
	Ref    string
	Policy *RetryPolicy
}

// TaskList is an ordered list of named tasks.
type TaskList []NamedTask

// NamedTask is one entry of a task list.
type NamedTask struct {
	Name string
	Task *Task
}

// Flow directives usable in `then`.
const (
	FlowContinue = "continue"
	FlowExit     = "exit"
	FlowEnd      = "end"
)

// Kind names what a task does.
type Kind string

// Task kinds.
const (
	KindCall   Kind = "call"
	KindDo     Kind = "do"
	KindFork   Kind = "fork"
	KindEmit   Kind = "emit"
	KindFor    Kind = "for"
	KindListen Kind = "listen"
	KindRaise  Kind = "raise"
	KindRun    Kind = "run"
	KindSet    Kind = "set"
	KindSwitch Kind = "switch"
	KindTry    Kind = "try"
	KindWait   Kind = "wait"
)

// Task is one unit of work. Exactly one of the kind pointers is set.
type Task struct {
	Pointer string // JSON pointer, e.g. /do/2/chargeCard
	Pos     Pos    // position of the task's name in the source

	If       string
	Input    *Input
	Output   *Output
	Export   *Export
	Timeout  *Timeout
	Then     string // continue, exit, end or the name of a sibling task; "" = continue
	Metadata map[string]any

	Call   *CallTask
	Do     *DoTask
	Fork   *ForkTask
	Emit   *EmitTask
	For    *ForTask
	Listen *ListenTask
	Raise  *RaiseTask
	Run    *RunTask
	Set    *SetTask
	Switch *SwitchTask
	Try    *TryTask
	Wait   *WaitTask
}

// Kind reports which kind of task t is, or "" if none is set.
func (t *Task) Kind() Kind {
	switch {
	case t == nil:
		return ""
	case t.Call != nil:
		return KindCall
	case t.Do != nil:
		return KindDo
	case t.Fork != nil:
		return KindFork
	case t.Emit != nil:
		return KindEmit
	case t.For != nil:
		return KindFor
	case t.Listen != nil:
		return KindListen
	case t.Raise != nil:
		return KindRaise
	case t.Run != nil:
		return KindRun
	case t.Set != nil:
		return KindSet
	case t.Switch != nil:
		return KindSwitch
	case t.Try != nil:
		return KindTry
	case t.Wait != nil:
		return KindWait
	}
	return ""
}

// Call protocols with typed arguments.
const (
	CallHTTP     = "http"
	CallOpenAPI  = "openapi"
	CallGRPC     = "grpc"
	CallAsyncAPI = "asyncapi"
	CallA2A      = "a2a"
	CallMCP      = "mcp"
)

// CallTask calls a service or a function declared under use.functions.
type CallTask struct {
	Call    string         // http, openapi, or a function name
	With    map[string]any // raw arguments as written
	HTTP    *HTTPArgs      // set when Call is "http"
	OpenAPI *OpenAPIArgs   // set when Call is "openapi"
	GRPC    *GRPCArgs      // set when Call is "grpc"
}

// HTTP call output formats.
const (
	OutputContent  = "content"
	OutputRaw      = "raw"
	OutputResponse = "response"
)

// HTTPArgs are the arguments of an HTTP call.
type HTTPArgs struct {
	Method      string
	Endpoint    Endpoint
	Headers     map[string]string
	HeadersExpr string // set when headers is a runtime expression
	Query       map[string]string
	QueryExpr   string // set when query is a runtime expression
	Body        any
	Output      string // content (default), raw or response
	Redirect    bool
}

// OpenAPIArgs are the arguments of an OpenAPI call.
type OpenAPIArgs struct {
	Document       ExternalResource
	OperationID    string
	Parameters     map[string]any
	Authentication *AuthRef
	Output         string
	Redirect       bool
}

// DoTask runs its tasks in order.
type DoTask struct {
	Tasks TaskList
}

// ForkTask runs branches concurrently.
type ForkTask struct {
	Branches TaskList
	Compete  bool
}

// EmitTask publishes a CloudEvent.
type EmitTask struct {
	Event EventProperties
}

// EventProperties are CloudEvent attributes, possibly runtime expressions.
type EventProperties struct {
	ID              string
	Source          string
	Type            string
	Time            string
	Subject         string
	DataContentType string
	DataSchema      string
	Data            any
	Extensions      map[string]any // any other attributes
}

// ForTask iterates over a collection.
type ForTask struct {
	Each  string // variable name for the item, default "item"
	In    string // runtime expression yielding the collection
	At    string // variable name for the index, default "index"
	While string
	Do    TaskList
}

// ListenTask waits for events.
type ListenTask struct {
	To      ConsumptionStrategy
	Read    string // data (default), envelope or raw
	Foreach *SubscriptionIterator
}

// ConsumptionStrategy says which events to consume: exactly one of All, Any
// and One is set.
type ConsumptionStrategy struct {
	All   []EventFilter
	Any   []EventFilter
	One   *EventFilter
	Until *Until // only with Any
}

// Until ends an `any` consumption: a runtime expression or another strategy.
type Until struct {
	Expr     string
	Strategy *ConsumptionStrategy
}

// EventFilter selects events by attributes and correlation.
type EventFilter struct {
	With      map[string]any
	Correlate map[string]Correlation
}

// Correlation extracts a value from an event and compares it.
type Correlation struct {
	From   string
	Expect string
}

// SubscriptionIterator processes each consumed event.
type SubscriptionIterator struct {
	Item   string
	At     string
	Do     TaskList
	Output *Output
	Export *Export
}

// RaiseTask raises an error.
type RaiseTask struct {
	Error ErrorRef
}

// RunTask runs a sub-workflow or a script. Container and Shell are parsed
// only so that they can be rejected as unsupported.
type RunTask struct {
	Workflow      *SubflowRef
	Container     map[string]any
	Shell         map[string]any
	Script        map[string]any // as written
	ScriptProcess *ScriptProcess // Script decoded
	Await         bool           // default true
	Return        string         // default "stdout"
}

// SubflowRef names the workflow a run task starts.
type SubflowRef struct {
	Namespace string
	Name      string
	Version   string
	Input     map[string]any
}

// SetTask sets data: a map (values may embed runtime expressions) or one
// runtime expression.
type SetTask struct {
	Values map[string]any
	Expr   string
}

// SwitchTask picks the first matching case.
type SwitchTask struct {
	Cases []SwitchCase
}

// SwitchCase is one case of a switch; When is empty for the default case.
type SwitchCase struct {
	Name string
	When string
	Then string
}

// TryTask runs tasks and handles their errors.
type TryTask struct {
	Try   TaskList
	Catch Catch
}

// Catch says which errors a try task handles and how.
type Catch struct {
	Errors     *ErrorFilter
	As         string
	When       string
	ExceptWhen string
	Retry      *RetryRef
	Do         TaskList
}

// ErrorFilter matches errors by their fields; empty fields match anything.
type ErrorFilter struct {
	Type     string
	Status   int
	Instance string
	Title    string
	Details  string
}

// WaitTask pauses the workflow.
type WaitTask struct {
	Duration Duration
}

// BuiltinValidateSchema is the KNHK built-in function that validates
// `with.data` (default: the task input) against the JSON Schema
// `with.schema`. Built-ins are called by name without a use.functions entry.
const BuiltinValidateSchema = "knhk:validate-schema"

// Task returns the task at a JSON pointer (as Task.Pointer spells it), or
// nil.
func (w *Workflow) Task(ptr string) *Task {
	var find func(TaskList) *Task
	find = func(tl TaskList) *Task {
		for _, nt := range tl {
			t := nt.Task
			if t == nil {
				continue
			}
			if t.Pointer == ptr {
				return t
			}
			if !strings.HasPrefix(ptr, t.Pointer+"/") {
				continue
			}
			var lists []TaskList
			switch {
			case t.Do != nil:
				lists = append(lists, t.Do.Tasks)
			case t.Fork != nil:
				lists = append(lists, t.Fork.Branches)
			case t.For != nil:
				lists = append(lists, t.For.Do)
			case t.Try != nil:
				lists = append(lists, t.Try.Try, t.Try.Catch.Do)
			}
			for _, l := range lists {
				if found := find(l); found != nil {
					return found
				}
			}
		}
		return nil
	}
	return find(w.Do)
}

// EventTypes returns the CloudEvent types a listen task can consume, or
// nil when one of its filters accepts any type.
func (l *ListenTask) EventTypes() []string {
	var filters []EventFilter
	filters = append(filters, l.To.All...)
	filters = append(filters, l.To.Any...)
	if l.To.One != nil {
		filters = append(filters, *l.To.One)
	}
	var types []string
	for _, f := range filters {
		t, ok := f.With["type"].(string)
		if !ok || t == "" || IsExpression(t) {
			return nil
		}
		types = append(types, t)
	}
	return types
}

// Subflows lists the workflows the document's `run: workflow` tasks start,
// in document order, each once.
func (w *Workflow) Subflows() []*SubflowRef {
	var out []*SubflowRef
	seen := map[string]bool{}
	var walk func(TaskList)
	visit := func(t *Task) {
		if t == nil {
			return
		}
		if t.Run != nil && t.Run.Workflow != nil {
			r := t.Run.Workflow
			k := r.Namespace + "/" + r.Name + "/" + r.Version
			if !seen[k] {
				seen[k] = true
				out = append(out, r)
			}
		}
		switch {
		case t.Do != nil:
			walk(t.Do.Tasks)
		case t.Fork != nil:
			walk(t.Fork.Branches)
		case t.For != nil:
			walk(t.For.Do)
		case t.Try != nil:
			walk(t.Try.Try)
			walk(t.Try.Catch.Do)
		}
	}
	walk = func(tl TaskList) {
		for _, nt := range tl {
			visit(nt.Task)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(w.Use.Functions)) {
		visit(w.Use.Functions[name])
	}
	walk(w.Do)
	return out
}
