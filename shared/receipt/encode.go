package receipt

import (
	"errors"
	"time"

	"github.com/knhk/knhk/shared/receipt/jcs"
)

// TimeLayout is how times appear in receipts: RFC 3339 in UTC with
// trailing zeros of the fraction removed.
const TimeLayout = time.RFC3339Nano

// object writes the members of one JSON object; callers add them in RFC 8785
// order (all names here are ASCII, so byte order is UTF-16 order).
type object struct {
	b []byte
	n int
}

func (o *object) key(k string) {
	if o.n > 0 {
		o.b = append(o.b, ',')
	}
	o.n++
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

func (o *object) str(k, v string) {
	o.key(k)
	o.b = jcs.AppendString(o.b, v)
}

func (o *object) optStr(k, v string) {
	if v != "" {
		o.str(k, v)
	}
}

func (o *object) int(k string, v int64) {
	o.key(k)
	o.b = jcs.AppendInt(o.b, v)
}

func (o *object) raw(k string, v []byte) {
	if len(v) > 0 {
		o.key(k)
		o.b = append(o.b, v...)
	}
}

func (o *object) time(k string, t time.Time) {
	if !t.IsZero() {
		o.key(k)
		o.b = append(o.b, '"')
		o.b = t.UTC().AppendFormat(o.b, TimeLayout)
		o.b = append(o.b, '"')
	}
}

var errRange = errors.New("integer out of the I-JSON range")

func (r *Receipt) appendBody(dst []byte, withHash bool) ([]byte, error) {
	return r.appendFields(dst, withHash, fieldsAll)
}

// fields selects the members appendFields writes.
type fields uint8

const (
	fieldsAll    fields = iota // the canonical receipt
	fieldsEvent                // the members that identify the event (see EventKey)
	fieldsStored               // all but the position members a segment item carries (see Compact)
)

// appendFields writes the receipt canonically, with the members of sel.
func (r *Receipt) appendFields(dst []byte, withHash bool, sel fields) ([]byte, error) {
	if r.Seq < 0 || r.Seq > jcs.MaxSafeInt || r.Attempt < 0 || r.DurationMs < 0 || r.DurationMs > jcs.MaxSafeInt {
		return nil, errRange
	}
	full := sel != fieldsEvent
	placed := sel == fieldsAll // tenant, caseId, seq, prevHash
	o := object{b: dst}
	o.b = append(o.b, '{')
	o.int("attempt", int64(r.Attempt))
	o.optStr("branch", r.Branch)
	if placed {
		o.str("caseId", r.CaseID)
	}
	if full {
		o.raw("data", r.Data)
	}
	o.optStr("dataHash", r.DataHash)
	if full && r.DurationMs > 0 {
		o.int("durationMs", r.DurationMs)
	}
	o.time("ended", r.Ended)
	if e := r.Error; e != nil {
		o.key("error")
		eo := object{b: append(o.b, '{')}
		eo.optStr("detail", e.Detail)
		eo.optStr("instance", e.Instance)
		eo.int("status", int64(e.Status))
		eo.optStr("title", e.Title)
		eo.str("type", e.Type)
		o.b = append(eo.b, '}')
	}
	if g := r.Genesis; g != nil {
		o.key("genesis")
		gobj := object{b: append(o.b, '{')}
		gobj.str("descriptorHash", g.DescriptorHash)
		gobj.str("namespace", g.Namespace)
		gobj.str("tenant", g.Tenant)
		gobj.optStr("traceparent", g.TraceParent)
		gobj.str("version", g.Version)
		gobj.str("workflow", g.Workflow)
		o.b = append(gobj.b, '}')
	}
	if full && withHash {
		o.str("hash", r.Hash)
	}
	if full {
		o.raw("input", r.Input)
	}
	o.optStr("inputHash", r.InputHash)
	o.optStr("key", r.Key)
	if full {
		o.raw("output", r.Output)
	}
	o.optStr("outputHash", r.OutputHash)
	if placed {
		o.str("prevHash", r.PrevHash)
		o.int("seq", r.Seq)
	}
	o.time("started", r.Started)
	o.optStr("task", r.Task)
	if placed {
		o.str("tenant", r.Tenant)
	}
	o.str("type", string(r.Type))
	if u := r.Usage; full && u != nil {
		early, late := u.counts(), u.laterCounts()
		if u.BilledMs < 0 || u.BilledMs > jcs.MaxSafeInt || u.Requests < 0 || u.Requests > jcs.MaxSafeInt {
			return nil, errRange
		}
		for _, c := range append(early, late...) {
			if *c.v < 0 || *c.v > jcs.MaxSafeInt {
				return nil, errRange
			}
		}
		o.key("usage")
		uo := object{b: append(o.b, '{')}
		uo.optStr("arch", u.Arch)
		uo.int("billedMs", u.BilledMs)
		for _, c := range early {
			if *c.v != 0 {
				uo.int(c.k, *c.v)
			}
		}
		var err error
		uo.key("readUnits")
		if uo.b, err = jcs.AppendNumber(uo.b, u.ReadUnits); err != nil {
			return nil, err
		}
		uo.int("requests", u.Requests)
		for _, c := range late {
			if *c.v != 0 {
				uo.int(c.k, *c.v)
			}
		}
		uo.key("writeUnits")
		if uo.b, err = jcs.AppendNumber(uo.b, u.WriteUnits); err != nil {
			return nil, err
		}
		o.b = append(uo.b, '}')
	}
	if full {
		o.int("v", int64(r.V))
	}
	return append(o.b, '}'), nil
}
