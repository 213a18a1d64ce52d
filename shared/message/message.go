// Package message defines the messages on KNHK's work queue: start messages
// that open a case, continuation messages that resume one (a fork branch, a
// timer, a retry, an event) and external CloudEvents for listen tasks. It
// decodes and validates them strictly and derives case identities.
package message

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/knhk/knhk/shared/limits"
)

// MaxBodyBytes is the largest message body KNHK accepts inline: the work
// queue's MaximumMessageSize (limits.MaxMessageBytes). Larger inputs travel
// by reference (InputRef).
const MaxBodyBytes = limits.MaxMessageBytes

// DefaultTenant is used when a message names no tenant.
const DefaultTenant = "default"

// Kind tells the messages apart.
type Kind string

// Message kinds.
const (
	KindStart    Kind = "start"
	KindContinue Kind = "continue"
	KindEvent    Kind = "event" // a CloudEvent, recognised by its specversion
)

// Reason says why a case is continued.
type Reason string

// Continuation reasons.
const (
	ReasonBranch Reason = "branch" // run a fork branch
	ReasonTimer  Reason = "timer"  // a wait or timeout came due
	ReasonRetry  Reason = "retry"  // a retry's backoff elapsed
	ReasonEvent  Reason = "event"  // an event matched a waiting listen task
	ReasonResume Reason = "resume" // the previous invocation ran out of time
)

// WorkflowRef names a workflow in the descriptor registry. An empty Version
// means the version the registry marks as latest.
type WorkflowRef struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Version   string `json:"version,omitempty"`
}

// String renders the reference as namespace/name[:version].
func (r WorkflowRef) String() string {
	s := r.Namespace + "/" + r.Name
	if r.Version != "" {
		s += ":" + r.Version
	}
	return s
}

// Trace carries W3C trace context and a caller's correlation id.
type Trace struct {
	TraceParent   string `json:"traceparent,omitempty"`
	TraceState    string `json:"tracestate,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
}

// Start opens a case.
type Start struct {
	Kind           Kind            `json:"kind"`
	Tenant         string          `json:"tenant,omitempty"`
	Workflow       WorkflowRef     `json:"workflow"`
	Input          json.RawMessage `json:"input,omitempty"`
	InputRef       string          `json:"inputRef,omitempty"` // "sha256:<hex>" of a stored blob
	IdempotencyKey string          `json:"idempotencyKey"`
	Trace          *Trace          `json:"trace,omitempty"`
}

// CaseID is the case this start message opens: the same for every re-sent copy.
func (s *Start) CaseID() string {
	return CaseID(s.Tenant, s.Workflow.Namespace, s.Workflow.Name, s.IdempotencyKey)
}

// Continue resumes a case at a known point of its history.
type Continue struct {
	Kind        Kind            `json:"kind"`
	Tenant      string          `json:"tenant"`
	CaseID      string          `json:"caseId"`
	Reason      Reason          `json:"reason"`
	Ref         string          `json:"ref,omitempty"`   // branch path, timer id or subscription id
	ExpectedSeq int64           `json:"expectedSeq"`     // history length when the message was sent
	DueAt       time.Time       `json:"dueAt,omitzero"`  // when a timer or retry is due
	Event       json.RawMessage `json:"event,omitempty"` // the CloudEvent a listen task receives
	Trace       *Trace          `json:"trace,omitempty"`
}

// Message is one decoded queue message: exactly one of the fields is set.
type Message struct {
	Start    *Start
	Continue *Continue
	Event    *cloudevents.Event
}

// Kind reports which message this is.
func (m Message) Kind() Kind {
	switch {
	case m.Start != nil:
		return KindStart
	case m.Continue != nil:
		return KindContinue
	default:
		return KindEvent
	}
}

// Error is a validation failure of a message; it is permanent (re-delivery
// cannot fix it).
type Error struct {
	Field string // JSON path of the offending field, empty for the whole body
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return "invalid message: " + e.Msg
	}
	return fmt.Sprintf("invalid message: %s: %s", e.Field, e.Msg)
}

func invalid(field, format string, args ...any) error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var (
	namePattern = regexp.MustCompile(`^[a-z0-9](-?[a-z0-9])*$`)
	// tenantPattern keeps tenants safe inside keys and metric dimensions.
	tenantPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	casePattern   = regexp.MustCompile(`^[0-9a-f]{32}$`)
	refPattern    = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// ValidTenant reports whether s is a well-formed tenant name.
func ValidTenant(s string) bool { return tenantPattern.MatchString(s) }

// Decode parses and validates a queue message body.
func Decode(body []byte) (Message, error) {
	if len(body) > MaxBodyBytes {
		return Message{}, invalid("", "body is %d bytes, over the %d-byte limit; pass large inputs by reference (inputRef)", len(body), MaxBodyBytes)
	}
	var probe struct {
		Kind        Kind   `json:"kind"`
		SpecVersion string `json:"specversion"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return Message{}, invalid("", "not a JSON object: %v", err)
	}
	switch {
	case probe.SpecVersion != "":
		ev, err := decodeEvent(body)
		return Message{Event: ev}, err
	case probe.Kind == KindStart:
		var s Start
		if err := strict(body, &s); err != nil {
			return Message{}, err
		}
		if err := s.normalize(); err != nil {
			return Message{}, err
		}
		return Message{Start: &s}, nil
	case probe.Kind == KindContinue:
		var c Continue
		if err := strict(body, &c); err != nil {
			return Message{}, err
		}
		if err := c.validate(); err != nil {
			return Message{}, err
		}
		return Message{Continue: &c}, nil
	case probe.Kind == "":
		return Message{}, invalid("kind", `missing: want "start" or "continue", or a CloudEvent with "specversion"`)
	default:
		return Message{}, invalid("kind", "unknown kind %q", probe.Kind)
	}
}

// Admit is what a sender checks before sending: the body decodes as the
// executor decodes it, and a start message's inline input is within the
// limits the executor holds it to (a start over them would open a case only
// to fault it at once).
func Admit(body []byte) (Message, error) {
	m, err := Decode(body)
	if err != nil {
		return m, err
	}
	if m.Start != nil {
		if err := m.Start.CheckInput(); err != nil {
			return Message{}, err
		}
	}
	return m, nil
}

// CheckInput checks the inline input against the limits on recorded values
// (limits.CheckJSON); the error is a *limits.Error.
func (s *Start) CheckInput() error {
	if len(s.Input) == 0 {
		return nil
	}
	return limits.CheckJSON("input", s.Input)
}

func strict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return invalid(ute.Field, "wrong type: got JSON %s, want %s", ute.Value, ute.Type)
		}
		return invalid("", "%v", err)
	}
	if dec.More() {
		return invalid("", "trailing data after the JSON object")
	}
	return nil
}

func (s *Start) normalize() error {
	if s.Tenant == "" {
		s.Tenant = DefaultTenant
	}
	if !tenantPattern.MatchString(s.Tenant) {
		return invalid("tenant", "%q: want 1-64 letters, digits, '.', '_' or '-'", s.Tenant)
	}
	if s.Workflow.Namespace == "" {
		s.Workflow.Namespace = "default"
	}
	if !namePattern.MatchString(s.Workflow.Namespace) {
		return invalid("workflow.namespace", "%q is not a DSL name (lowercase letters, digits, single hyphens)", s.Workflow.Namespace)
	}
	if s.Workflow.Name == "" {
		return invalid("workflow.name", "required")
	}
	if !namePattern.MatchString(s.Workflow.Name) {
		return invalid("workflow.name", "%q is not a DSL name (lowercase letters, digits, single hyphens)", s.Workflow.Name)
	}
	if strings.TrimSpace(s.IdempotencyKey) == "" {
		return invalid("idempotencyKey", "required: the key that makes a re-sent start message open the same case")
	}
	if len(s.IdempotencyKey) > 256 {
		return invalid("idempotencyKey", "longer than 256 characters")
	}
	switch {
	case len(s.Input) > 0 && s.InputRef != "":
		return invalid("inputRef", "give either input or inputRef, not both")
	case s.InputRef != "" && !refPattern.MatchString(s.InputRef):
		return invalid("inputRef", "%q: want sha256:<64 hex digits>", s.InputRef)
	case len(s.Input) == 0 && s.InputRef == "":
		s.Input = json.RawMessage("{}")
	}
	return s.Trace.validate("trace")
}

func (c *Continue) validate() error {
	if !tenantPattern.MatchString(c.Tenant) {
		return invalid("tenant", "%q: want 1-64 letters, digits, '.', '_' or '-'", c.Tenant)
	}
	if !casePattern.MatchString(c.CaseID) {
		return invalid("caseId", "%q: want 32 lowercase hex digits", c.CaseID)
	}
	switch c.Reason {
	case ReasonBranch, ReasonTimer, ReasonRetry, ReasonResume:
	case ReasonEvent:
		if len(c.Event) == 0 {
			return invalid("event", "required when reason is event")
		}
		if _, err := decodeEvent(c.Event); err != nil {
			return invalid("event", "%v", err)
		}
	case "":
		return invalid("reason", "required: one of branch, timer, retry, event, resume")
	default:
		return invalid("reason", "unknown reason %q", c.Reason)
	}
	if c.ExpectedSeq < 0 {
		return invalid("expectedSeq", "negative")
	}
	return c.Trace.validate("trace")
}

var traceParentPattern = regexp.MustCompile(`^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

func (t *Trace) validate(field string) error {
	if t == nil || t.TraceParent == "" {
		return nil
	}
	if !traceParentPattern.MatchString(t.TraceParent) {
		return invalid(field+".traceparent", "%q is not a W3C traceparent", t.TraceParent)
	}
	return nil
}

func decodeEvent(body []byte) (*cloudevents.Event, error) {
	ev := cloudevents.New()
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, invalid("", "not a CloudEvent: %v", err)
	}
	if err := ev.Validate(); err != nil {
		return nil, invalid("", "invalid CloudEvent: %v", err)
	}
	return &ev, nil
}

// TenantExtension is the CloudEvents extension attribute naming the tenant
// an event is for.
const TenantExtension = "knhktenant"

// EventTenant is the tenant a CloudEvent names (DefaultTenant when none).
// It is a claim: the executor admits it only for a sender granted it.
func EventTenant(ev *cloudevents.Event) string {
	if t, ok := ev.Extensions()[TenantExtension].(string); ok && t != "" {
		return t
	}
	return DefaultTenant
}

// CaseID derives a case id from the tenant, the workflow's namespace and name,
// and the idempotency key: 32 hex digits of a domain-separated SHA-256. The
// version is left out so that a re-sent start message finds its case even
// after the registry's latest version moved.
func CaseID(tenant, namespace, name, idempotencyKey string) string {
	h := sha256.New()
	for _, part := range []string{"knhk.case.v1", tenant, namespace, name, idempotencyKey} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
