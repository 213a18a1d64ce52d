// Package receipt is the model of a case's hash-chained receipts: one receipt
// per history event, encoded canonically (RFC 8785), hashed with SHA-256
// under a domain prefix, linked by prevHash, and verified link by link.
package receipt

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/limits"
	"github.com/knhk/knhk/shared/receipt/jcs"
)

// Version is the schema version every receipt carries in its "v" field.
const Version = 1

// Domain is the prefix hashed before a receipt's canonical bytes. Merkle
// leaves (0x00), nodes (0x01), event keys and tree heads use other prefixes,
// so a receipt hash can never be confused with any of them.
const Domain = "knhk.receipt.v1\x00"

// eventDomain prefixes the event identity hash (see EventKey).
const eventDomain = "knhk.event.v1\x00"

// ZeroHash is the prevHash of every genesis receipt.
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// InlineLimit is the largest canonical payload (input, output or data) kept
// inside a receipt. Larger payloads are detached: the receipt keeps only
// their hash and the bytes go to a content-addressed blob store.
const InlineLimit = 32 << 10

// Usage is what the recorded step consumed, measured by the executor. The
// first four members are always present; the others are written only when
// non-zero, so receipts made before they existed keep their canonical form.
type Usage struct {
	BilledMs   int64   `json:"billedMs"`   // the step's share of the invocation's billed duration
	ReadUnits  float64 `json:"readUnits"`  // DynamoDB read request units consumed
	WriteUnits float64 `json:"writeUnits"` // DynamoDB write request units consumed
	Requests   int64   `json:"requests"`   // AWS API requests made

	Arch             string `json:"arch,omitempty"`             // the function's architecture (arm64, x86_64)
	MemoryMB         int64  `json:"memoryMB,omitempty"`         // the function's configured memory
	InvocationMicros int64  `json:"invocationMicros,omitempty"` // millionths of the invocation charged to the step
	SQSRequests      int64  `json:"sqsRequests,omitempty"`      // SQS requests, each 64 KB chunk counted
	SNSPublishes     int64  `json:"snsPublishes,omitempty"`     // SNS publishes, each 64 KB chunk counted
	KMSRequests      int64  `json:"kmsRequests,omitempty"`      // symmetric KMS requests
	KMSAsymRequests  int64  `json:"kmsAsymRequests,omitempty"`  // asymmetric KMS requests
	SecretsRequests  int64  `json:"secretsRequests,omitempty"`  // Secrets Manager calls
	S3Puts           int64  `json:"s3Puts,omitempty"`           // S3 PUT, COPY, POST and LIST requests
	S3Gets           int64  `json:"s3Gets,omitempty"`           // other S3 requests
	HTTPCalls        int64  `json:"httpCalls,omitempty"`        // the workflow's HTTP calls
	HTTPBytes        int64  `json:"httpBytes,omitempty"`        // their request and response bytes
}

// usageCount is one optional integer member of Usage.
type usageCount struct {
	k string
	v *int64
}

// counts are the optional integer members of u in canonical (sorted) order,
// after billedMs.
func (u *Usage) counts() []usageCount {
	return []usageCount{{"httpBytes", &u.HTTPBytes}, {"httpCalls", &u.HTTPCalls}, {"invocationMicros", &u.InvocationMicros},
		{"kmsAsymRequests", &u.KMSAsymRequests}, {"kmsRequests", &u.KMSRequests}, {"memoryMB", &u.MemoryMB}}
}

// laterCounts are the optional integer members sorted after "requests".
func (u *Usage) laterCounts() []usageCount {
	return []usageCount{{"s3Gets", &u.S3Gets}, {"s3Puts", &u.S3Puts}, {"secretsRequests", &u.SecretsRequests},
		{"snsPublishes", &u.SNSPublishes}, {"sqsRequests", &u.SQSRequests}}
}

// Genesis is what receipt 0 binds: the workflow version pinned for the case.
type Genesis struct {
	Tenant         string `json:"tenant"`
	Namespace      string `json:"namespace"`
	Workflow       string `json:"workflow"`
	Version        string `json:"version"`
	DescriptorHash string `json:"descriptorHash"`
	TraceParent    string `json:"traceparent,omitempty"` // optional: the case's W3C trace context
}

// Blob is a detached payload: canonical JSON addressed by its SHA-256.
type Blob struct {
	Hash  string // hex SHA-256 of Bytes
	Bytes []byte // canonical JSON
}

// Receipt is one link of a case's chain. Its JSON form is the canonical
// encoding of the exported fields; Hash is SHA-256(Domain || canonical form
// without "hash"). A Receipt obtained from New or Decode is a value: do not
// modify it, build or decode a new one instead.
type Receipt struct {
	V          int            `json:"v"`
	Tenant     string         `json:"tenant"`
	CaseID     string         `json:"caseId"`
	Seq        int64          `json:"seq"`
	Type       history.Type   `json:"type"`
	Task       string         `json:"task,omitempty"`
	Key        string         `json:"key,omitempty"` // occurrence of the task in the case (history.Event.Key)
	Branch     string         `json:"branch,omitempty"`
	Attempt    int            `json:"attempt"`
	Input      []byte         `json:"input,omitempty"` // canonical JSON, inline when small
	InputHash  string         `json:"inputHash,omitempty"`
	Output     []byte         `json:"output,omitempty"` // canonical JSON, inline when small
	OutputHash string         `json:"outputHash,omitempty"`
	Data       []byte         `json:"data,omitempty"` // canonical JSON, inline when small
	DataHash   string         `json:"dataHash,omitempty"`
	Error      *history.Error `json:"error,omitempty"`
	Genesis    *Genesis       `json:"genesis,omitempty"`
	Started    time.Time      `json:"started,omitzero"`
	Ended      time.Time      `json:"ended,omitzero"`
	DurationMs int64          `json:"durationMs,omitempty"`
	Usage      *Usage         `json:"usage,omitempty"`
	PrevHash   string         `json:"prevHash"`
	Hash       string         `json:"hash"`

	// Detached holds payloads too large to inline; a store persists them
	// before the receipt. Empty on decoded receipts.
	Detached []Blob `json:"-"`

	body       []byte   // canonical bytes without "hash", as hashed
	sum        [32]byte // Hash decoded
	payloadBad []string // names of inline payloads whose hash differs
}

// Option adjusts a receipt that New builds.
type Option func(*Receipt)

// WithUsage records measured usage in the receipt.
func WithUsage(u Usage) Option { return func(r *Receipt) { uu := u; r.Usage = &uu } }

// Errors returned by New.
var (
	ErrInvalidEvent = errors.New("invalid event")
	ErrWrongChain   = errors.New("previous receipt belongs to another chain")
)

// New builds the receipt that records ev after prev (nil for the genesis
// receipt, which must record a case.started event carrying its Genesis).
func New(prev *Receipt, tenant, caseID string, ev history.Event, opts ...Option) (*Receipt, error) {
	if tenant == "" || caseID == "" || !utf8.ValidString(tenant) || !utf8.ValidString(caseID) {
		return nil, fmt.Errorf("%w: tenant and case id must be non-empty UTF-8", ErrInvalidEvent)
	}
	if !KnownType(ev.Type) {
		return nil, fmt.Errorf("%w: unknown type %q", ErrInvalidEvent, ev.Type)
	}
	if ev.Attempt < 0 || ev.Attempt > jcs.MaxSafeInt {
		return nil, fmt.Errorf("%w: attempt out of range", ErrInvalidEvent)
	}
	for _, t := range []time.Time{ev.Started, ev.Ended} {
		if !t.IsZero() && (t.UTC().Year() < 1 || t.UTC().Year() > 9999) {
			return nil, fmt.Errorf("%w: time %v out of range", ErrInvalidEvent, t)
		}
	}
	for _, s := range []string{ev.Task, ev.Key, ev.Branch} {
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("%w: task, key and branch must be UTF-8", ErrInvalidEvent)
		}
	}
	r := &Receipt{V: Version, Tenant: tenant, CaseID: caseID, Type: ev.Type, Task: ev.Task, Key: ev.Key, Branch: ev.Branch, Attempt: ev.Attempt}
	if prev == nil {
		if ev.Type != history.CaseStarted || ev.Genesis == nil {
			return nil, fmt.Errorf("%w: the first receipt must record %s with its genesis", ErrInvalidEvent, history.CaseStarted)
		}
		g := ev.Genesis
		if g.Tenant != tenant {
			return nil, fmt.Errorf("%w: genesis tenant %q differs from %q", ErrInvalidEvent, g.Tenant, tenant)
		}
		for _, s := range []string{g.Namespace, g.Workflow, g.Version} {
			if !utf8.ValidString(s) {
				return nil, fmt.Errorf("%w: genesis fields must be UTF-8", ErrInvalidEvent)
			}
		}
		if g.Workflow == "" || g.Version == "" {
			return nil, fmt.Errorf("%w: genesis needs a workflow name and version", ErrInvalidEvent)
		}
		if !isHex64(g.DescriptorHash) {
			return nil, fmt.Errorf("%w: descriptor hash must be 64 lowercase hex digits", ErrInvalidEvent)
		}
		if !validTraceParent(g.TraceParent) {
			return nil, fmt.Errorf("%w: genesis traceparent %q is not a W3C traceparent", ErrInvalidEvent, g.TraceParent)
		}
		r.Genesis = &Genesis{Tenant: g.Tenant, Namespace: g.Namespace, Workflow: g.Workflow, Version: g.Version,
			DescriptorHash: g.DescriptorHash, TraceParent: g.TraceParent}
		r.PrevHash = ZeroHash
	} else {
		if prev.Tenant != tenant || prev.CaseID != caseID {
			return nil, fmt.Errorf("%w: %s/%s", ErrWrongChain, prev.Tenant, prev.CaseID)
		}
		if ev.Type == history.CaseStarted || ev.Genesis != nil {
			return nil, fmt.Errorf("%w: only the first receipt records %s", ErrInvalidEvent, history.CaseStarted)
		}
		if prev.Seq >= jcs.MaxSafeInt {
			return nil, fmt.Errorf("%w: chain is full", ErrInvalidEvent)
		}
		r.Seq = prev.Seq + 1
		r.PrevHash = prev.Hash
	}
	var err error
	if r.Input, r.InputHash, err = r.payload(ev.Input); err != nil {
		return nil, fmt.Errorf("%w: input: %w", ErrInvalidEvent, err)
	}
	if r.Output, r.OutputHash, err = r.payload(ev.Output); err != nil {
		return nil, fmt.Errorf("%w: output: %w", ErrInvalidEvent, err)
	}
	if r.Data, r.DataHash, err = r.payload(ev.Data); err != nil {
		return nil, fmt.Errorf("%w: data: %w", ErrInvalidEvent, err)
	}
	if ev.Error != nil {
		e := *ev.Error
		if e.Status < 0 || e.Status > jcs.MaxSafeInt {
			return nil, fmt.Errorf("%w: error status out of range", ErrInvalidEvent)
		}
		for _, s := range []string{e.Type, e.Title, e.Detail, e.Instance} {
			if !utf8.ValidString(s) {
				return nil, fmt.Errorf("%w: error fields must be UTF-8", ErrInvalidEvent)
			}
		}
		r.Error = &e
	}
	r.Started, r.Ended = ev.Started.UTC(), ev.Ended.UTC()
	if ev.Started.IsZero() {
		r.Started = time.Time{}
	}
	if ev.Ended.IsZero() {
		r.Ended = time.Time{}
	}
	if !r.Started.IsZero() && !r.Ended.IsZero() {
		if r.Ended.Before(r.Started) {
			return nil, fmt.Errorf("%w: ended before started", ErrInvalidEvent)
		}
		r.DurationMs = r.Ended.Sub(r.Started).Milliseconds()
	}
	for _, o := range opts {
		o(r)
	}
	if err := r.seal(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return r, nil
}

// payload canonicalizes raw JSON, hashes it, and inlines or detaches it.
func (r *Receipt) payload(raw []byte) (inline []byte, hash string, err error) {
	if len(raw) == 0 {
		return nil, "", nil
	}
	if d := limits.Depth(raw); d > limits.MaxDepth {
		return nil, "", &limits.Error{What: "payload", Reason: limits.TooDeep, Got: d, Limit: limits.MaxDepth}
	}
	c, hash, err := canonicalHash(raw)
	if err != nil {
		return nil, "", err
	}
	if len(c) > limits.MaxValueBytes {
		return nil, "", &limits.Error{What: "payload", Reason: limits.TooLarge, Got: len(c), Limit: limits.MaxValueBytes}
	}
	if len(c) > InlineLimit {
		r.Detached = append(r.Detached, Blob{Hash: hash, Bytes: c})
		return nil, hash, nil
	}
	return c, hash, nil
}

// PayloadHash is the hash a receipt records for a JSON payload (its
// inputHash, outputHash or dataHash): hex SHA-256 of the RFC 8785 form.
func PayloadHash(raw []byte) (string, error) {
	_, hash, err := canonicalHash(raw)
	return hash, err
}

func canonicalHash(raw []byte) ([]byte, string, error) {
	c, err := jcs.Canonicalize(raw)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(c)
	return c, hex.EncodeToString(sum[:]), nil
}

// seal computes the canonical body and the hash. The body is written right
// after the domain prefix so one SHA-256 call covers both without copying.
func (r *Receipt) seal() error {
	buf := make([]byte, 0, len(Domain)+sizeHint(r))
	buf = append(buf, Domain...)
	buf, err := r.appendBody(buf, false)
	if err != nil {
		return err
	}
	r.body = buf[len(Domain):]
	r.sum = sha256.Sum256(buf)
	var h [64]byte
	hex.Encode(h[:], r.sum[:])
	r.Hash = string(h[:])
	return nil
}

// sizeHint estimates a receipt's canonical size to allocate once.
func sizeHint(r *Receipt) int {
	return 640 + len(r.Input) + len(r.Output) + len(r.Data) + len(r.Task) + len(r.Branch) + len(r.Tenant) + len(r.CaseID)
}

var domain = []byte(Domain)

func hashBody(body []byte) [32]byte {
	h := sha256.New()
	h.Write(domain)
	h.Write(body)
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// Canonical returns the receipt's canonical JSON including "hash": the form
// stored and exported, one receipt per line in JSON-lines files.
func (r *Receipt) Canonical() ([]byte, error) { return r.appendBody(nil, true) }

// MarshalJSON encodes the receipt canonically.
func (r *Receipt) MarshalJSON() ([]byte, error) { return r.Canonical() }

// Body returns the canonical bytes that the hash covers (the receipt
// without its "hash" member). The caller must not modify them.
func (r *Receipt) Body() ([]byte, error) {
	if r.body != nil {
		return r.body, nil
	}
	return r.appendBody(nil, false)
}

// ComputeHash recomputes the receipt's hash from its content.
func (r *Receipt) ComputeHash() (string, error) {
	b, err := r.Body()
	if err != nil {
		return "", err
	}
	s := hashBody(b)
	return hex.EncodeToString(s[:]), nil
}

// EventKey identifies the event a receipt records, independent of its
// position: SHA-256 over "knhk.event.v1\0" and the canonical JSON of type,
// task, branch, attempt, the input/output/data hashes, error, genesis,
// started and ended. Two events with equal keys are the same event; a store
// uses it to make re-appending a retried event a no-op.
func (r *Receipt) EventKey() (string, error) {
	k := Receipt{Type: r.Type, Task: r.Task, Key: r.Key, Branch: r.Branch, Attempt: r.Attempt,
		InputHash: r.InputHash, OutputHash: r.OutputHash, DataHash: r.DataHash,
		Error: r.Error, Genesis: r.Genesis, Started: r.Started, Ended: r.Ended}
	b, err := k.appendFields(nil, false, fieldsEvent)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(eventDomain))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// KnownType reports whether t is one of the history event types.
func KnownType(t history.Type) bool {
	switch t {
	case history.CaseStarted, history.TaskStarted, history.TaskCompleted, history.TaskFaulted,
		history.TaskRetried, history.TaskSkipped, history.BranchForked, history.BranchCompleted,
		history.BranchJoined, history.TimerScheduled, history.TimerFired, history.EffectRequested,
		history.EffectCompleted, history.EventEmitted, history.EventAwaited, history.EventReceived,
		history.CaseCompleted, history.CaseFaulted, history.CaseCancelled:
		return true
	}
	return false
}

// validTraceParent accepts "" and the shape of a version-00 W3C
// traceparent: 2-32-16-2 lower-case hex digits.
func validTraceParent(s string) bool {
	if s == "" {
		return true
	}
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i != 2 && i != 35 && i != 52 && (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
