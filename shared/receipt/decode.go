package receipt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt/jcs"
)

// ErrMalformed is wrapped by every Decode error.
var ErrMalformed = errors.New("malformed receipt")

// Decode parses one receipt from its canonical JSON. It is strict: the
// input must be exactly the canonical form (RFC 8785, no other spacing or
// member order), member names are case-sensitive, unknown or duplicate
// members and wrong types are rejected. The canonical bytes are kept so
// verification hashes them directly.
func Decode(b []byte) (*Receipt, error) {
	r, err := decode(bytes.TrimSpace(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return r, nil
}

func decode(b []byte) (*Receipt, error) {
	v, err := jcs.Parse(b)
	if err != nil {
		return nil, err
	}
	r, err := FromValue(v)
	if err != nil {
		return nil, err
	}
	full, err := r.appendBody(make([]byte, 0, len(b)), true)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(full, b) {
		return nil, errors.New("not in canonical form")
	}
	return r, nil
}

// FromValue builds a receipt from a parsed JSON object with the same
// strictness as Decode except that the source need not be canonical; the
// hash then covers the canonical re-encoding.
func FromValue(v jcs.Value) (*Receipt, error) {
	if v.Kind != jcs.Object {
		return nil, errors.New("receipt is not an object")
	}
	r := &Receipt{}
	var d fieldDecoder
	var seen uint32
	for _, m := range v.Obj {
		bit, ok := fieldBits[m.Key]
		if !ok {
			return nil, fmt.Errorf("unknown member %q", m.Key)
		}
		seen |= bit
		d.name = m.Key
		switch m.Key {
		case "v":
			r.V = int(d.int(m.Val))
		case "tenant":
			r.Tenant = d.str(m.Val)
		case "caseId":
			r.CaseID = d.str(m.Val)
		case "seq":
			r.Seq = d.int(m.Val)
		case "type":
			r.Type = history.Type(d.str(m.Val))
		case "task":
			r.Task = d.str(m.Val)
		case "key":
			r.Key = d.str(m.Val)
		case "branch":
			r.Branch = d.str(m.Val)
		case "attempt":
			r.Attempt = int(d.int(m.Val))
		case "input":
			r.Input = d.payload(m.Val)
		case "inputHash":
			r.InputHash = d.hex(m.Val)
		case "output":
			r.Output = d.payload(m.Val)
		case "outputHash":
			r.OutputHash = d.hex(m.Val)
		case "data":
			r.Data = d.payload(m.Val)
		case "dataHash":
			r.DataHash = d.hex(m.Val)
		case "error":
			r.Error = d.error(m.Val)
		case "genesis":
			r.Genesis = d.genesis(m.Val)
		case "started":
			r.Started = d.time(m.Val)
		case "ended":
			r.Ended = d.time(m.Val)
		case "durationMs":
			r.DurationMs = d.int(m.Val)
		case "usage":
			r.Usage = d.usage(m.Val)
		case "prevHash":
			r.PrevHash = d.hex(m.Val)
		case "hash":
			r.Hash = d.hex(m.Val)
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	if missing := requiredBits &^ seen; missing != 0 {
		for k, bit := range fieldBits {
			if missing&bit != 0 {
				return nil, fmt.Errorf("missing member %q", k)
			}
		}
	}
	if r.V != Version {
		return nil, fmt.Errorf("unsupported version %d", r.V)
	}
	if !KnownType(r.Type) {
		return nil, fmt.Errorf("unknown type %q", r.Type)
	}
	if r.Tenant == "" || r.CaseID == "" {
		return nil, errors.New("empty tenant or case id")
	}
	if (r.Input != nil && r.InputHash == "") || (r.Output != nil && r.OutputHash == "") || (r.Data != nil && r.DataHash == "") {
		return nil, errors.New("inline payload without its hash")
	}
	r.checkPayload("input", r.Input, r.InputHash)
	r.checkPayload("output", r.Output, r.OutputHash)
	r.checkPayload("data", r.Data, r.DataHash)
	body, err := r.appendBody(nil, false)
	if err != nil {
		return nil, err
	}
	r.body = body
	if _, err := hex.Decode(r.sum[:], []byte(r.Hash)); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Receipt) checkPayload(name string, inline []byte, hash string) {
	if inline == nil {
		return
	}
	s := sha256.Sum256(inline)
	if hex.EncodeToString(s[:]) != hash {
		r.payloadBad = append(r.payloadBad, name)
	}
}

const (
	bitV uint32 = 1 << iota
	bitTenant
	bitCase
	bitSeq
	bitType
	bitAttempt
	bitPrev
	bitHash
	bitOptional
)

const requiredBits = bitV | bitTenant | bitCase | bitSeq | bitType | bitAttempt | bitPrev | bitHash

var fieldBits = map[string]uint32{
	"v": bitV, "tenant": bitTenant, "caseId": bitCase, "seq": bitSeq, "type": bitType,
	"attempt": bitAttempt, "prevHash": bitPrev, "hash": bitHash,
	"task": bitOptional, "key": bitOptional, "branch": bitOptional, "input": bitOptional, "inputHash": bitOptional,
	"output": bitOptional, "outputHash": bitOptional, "data": bitOptional, "dataHash": bitOptional,
	"error": bitOptional, "genesis": bitOptional, "started": bitOptional, "ended": bitOptional,
	"durationMs": bitOptional, "usage": bitOptional,
}

// fieldDecoder converts member values, keeping the first error.
type fieldDecoder struct {
	name string
	err  error
}

func (d *fieldDecoder) fail(want string) {
	if d.err == nil {
		d.err = fmt.Errorf("member %q: want %s", d.name, want)
	}
}

func (d *fieldDecoder) str(v jcs.Value) string {
	if v.Kind != jcs.String {
		d.fail("a string")
	}
	return v.Str
}

func (d *fieldDecoder) int(v jcs.Value) int64 {
	if v.Kind != jcs.Number || v.Num != math.Trunc(v.Num) || v.Num < 0 || v.Num > jcs.MaxSafeInt {
		d.fail("a non-negative integer")
		return 0
	}
	return int64(v.Num)
}

func (d *fieldDecoder) num(v jcs.Value) float64 {
	if v.Kind != jcs.Number {
		d.fail("a number")
	}
	return v.Num
}

func (d *fieldDecoder) hex(v jcs.Value) string {
	s := d.str(v)
	if d.err == nil && !isHex64(s) {
		d.fail("64 lowercase hex digits")
	}
	return s
}

func (d *fieldDecoder) time(v jcs.Value) time.Time {
	s := d.str(v)
	if d.err != nil {
		return time.Time{}
	}
	t, err := time.Parse(TimeLayout, s)
	if err != nil || t.IsZero() {
		d.fail("an RFC 3339 time")
	}
	return t.UTC()
}

func (d *fieldDecoder) payload(v jcs.Value) []byte {
	b, err := jcs.Append(nil, v)
	if err != nil {
		d.fail("JSON")
	}
	return b
}

func (d *fieldDecoder) object(v jcs.Value, allowed ...string) bool {
	if v.Kind != jcs.Object {
		d.fail("an object")
		return false
	}
	for _, m := range v.Obj {
		found := false
		for _, a := range allowed {
			found = found || a == m.Key
		}
		if !found {
			d.fail("no member " + m.Key)
			return false
		}
	}
	return true
}

func (d *fieldDecoder) member(v jcs.Value, key string, required bool) (jcs.Value, bool) {
	m, ok := v.Get(key)
	if !ok && required {
		d.fail("member " + key)
	}
	return m, ok
}

func (d *fieldDecoder) error(v jcs.Value) *history.Error {
	if !d.object(v, "type", "status", "title", "detail", "instance") {
		return nil
	}
	e := &history.Error{}
	if m, ok := d.member(v, "type", true); ok {
		e.Type = d.str(m)
	}
	if m, ok := d.member(v, "status", true); ok {
		e.Status = int(d.int(m))
	}
	if m, ok := d.member(v, "title", false); ok {
		e.Title = d.str(m)
	}
	if m, ok := d.member(v, "detail", false); ok {
		e.Detail = d.str(m)
	}
	if m, ok := d.member(v, "instance", false); ok {
		e.Instance = d.str(m)
	}
	return e
}

func (d *fieldDecoder) genesis(v jcs.Value) *Genesis {
	if !d.object(v, "tenant", "namespace", "workflow", "version", "descriptorHash", "traceparent") {
		return nil
	}
	g := &Genesis{}
	for _, f := range []struct {
		k string
		p *string
	}{{"tenant", &g.Tenant}, {"namespace", &g.Namespace}, {"workflow", &g.Workflow}, {"version", &g.Version}, {"descriptorHash", &g.DescriptorHash}} {
		if m, ok := d.member(v, f.k, true); ok {
			*f.p = d.str(m)
		}
	}
	if m, ok := d.member(v, "traceparent", false); ok {
		g.TraceParent = d.str(m)
	}
	return g
}

func (d *fieldDecoder) usage(v jcs.Value) *Usage {
	u := &Usage{}
	early, late := u.counts(), u.laterCounts()
	allowed := []string{"billedMs", "readUnits", "writeUnits", "requests", "arch"}
	for _, c := range append(early, late...) {
		allowed = append(allowed, c.k)
	}
	if !d.object(v, allowed...) {
		return nil
	}
	if m, ok := d.member(v, "arch", false); ok {
		u.Arch = d.str(m)
	}
	for _, c := range append(early, late...) {
		if m, ok := d.member(v, c.k, false); ok {
			*c.v = d.int(m)
		}
	}
	if m, ok := d.member(v, "billedMs", true); ok {
		u.BilledMs = d.int(m)
	}
	if m, ok := d.member(v, "readUnits", true); ok {
		u.ReadUnits = d.num(m)
	}
	if m, ok := d.member(v, "writeUnits", true); ok {
		u.WriteUnits = d.num(m)
	}
	if m, ok := d.member(v, "requests", true); ok {
		u.Requests = d.int(m)
	}
	return u
}

// UnmarshalJSON decodes a receipt strictly, as Decode does.
func (r *Receipt) UnmarshalJSON(b []byte) error {
	d, err := Decode(b)
	if err != nil {
		return err
	}
	*r = *d
	return nil
}
