package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// eventProps turns emit properties into a template source.
func eventProps(p dsl.EventProperties) map[string]any {
	m := map[string]any{}
	for k, v := range p.Extensions {
		m[k] = v
	}
	for k, v := range map[string]string{
		"id": p.ID, "source": p.Source, "type": p.Type, "time": p.Time, "subject": p.Subject,
		"datacontenttype": p.DataContentType, "dataschema": p.DataSchema,
	} {
		if v != "" {
			m[k] = v
		}
	}
	if p.Data != nil {
		m["data"] = p.Data
	}
	return m
}

// execEmit builds and validates the CloudEvent and hands it to the shell.
// The task's output is the event in its JSON form.
func (w *walker) execEmit(key string, n *node, in val, sc scope) result {
	v, perr := w.eval(n.emit, n, in, in, val{}, sc)
	if perr != nil {
		return fault(perr)
	}
	props, _ := v.(map[string]any)
	ev := cloudevents.New()
	id, _ := props["id"].(string)
	if id == "" {
		sum := sha256.Sum256([]byte(w.st.CaseID + "|" + key))
		id = hex.EncodeToString(sum[:16])
	}
	ev.SetID(id)
	src, _ := props["source"].(string)
	ev.SetSource(src)
	typ, _ := props["type"].(string)
	ev.SetType(typ)
	ts := w.now
	if s, ok := props["time"].(string); ok && s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fault(Problem(ErrValidation, n.ptr, "event time %q: %v", s, err))
		}
		ts = t
	}
	ev.SetTime(ts.UTC())
	if s, ok := props["subject"].(string); ok {
		ev.SetSubject(s)
	}
	if s, ok := props["dataschema"].(string); ok {
		ev.SetDataSchema(s)
	}
	ct, _ := props["datacontenttype"].(string)
	if ct == "" {
		ct = cloudevents.ApplicationJSON
	}
	for _, k := range sortedKeys(props) {
		switch k {
		case "id", "source", "type", "time", "subject", "dataschema", "datacontenttype", "data", "specversion":
			continue
		}
		ev.SetExtension(k, props[k])
	}
	if d, ok := props["data"]; ok && d != nil {
		if err := ev.SetData(ct, d); err != nil {
			return fault(Problem(ErrValidation, n.ptr, "event data: %v", err))
		}
	}
	if err := ev.Validate(); err != nil {
		return fault(Problem(ErrValidation, n.ptr, "invalid cloud event: %v", err))
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return fault(Problem(ErrRuntime, n.ptr, "encode event: %v", err))
	}
	w.dec.Effects = append(w.dec.Effects, Effect{Kind: EffectEmit, ID: key, Task: n.ptr, Event: &ev})
	return done(val{v: decodeJSON(raw), raw: raw})
}

// listenSpec is a compiled listen task.
type listenSpec struct {
	strategy
	until   *expr.Expr // ends an `any` consumption when true of the events consumed
	untilBy *strategy  // ends an `any` consumption once its events are consumed
	read    string
}

// strategy is a compiled event consumption strategy.
type strategy struct {
	mode    string // one, any, all
	filters []eventFilter
}

type eventFilter struct {
	with      *expr.Template
	correlate map[string]correlation
}

type correlation struct {
	from   *expr.Expr
	expect *expr.Template
}

// untilKey is the occurrence key under which a listen task records the
// events its `until` strategy consumed: they end the task and are not part
// of its output.
func untilKey(key string) string { return key + "/until" }

func (c *compiler) compileListen(n *node, extra []string) error {
	lt := n.t.Listen
	ls := &listenSpec{read: lt.Read}
	if lt.Foreach != nil {
		return fmt.Errorf("listen.foreach is not supported")
	}
	st, err := c.compileStrategy(lt.To, extra)
	if err != nil {
		return err
	}
	ls.strategy = *st
	if u := lt.To.Until; u != nil && ls.mode == "any" {
		if u.Strategy != nil {
			if ls.untilBy, err = c.compileStrategy(*u.Strategy, extra); err != nil {
				return err
			}
		} else if ls.until, err = c.expr(u.Expr, extra); err != nil {
			return err
		}
	}
	n.listen = ls
	return nil
}

func (c *compiler) compileStrategy(to dsl.ConsumptionStrategy, extra []string) (*strategy, error) {
	st := &strategy{}
	var filters []dsl.EventFilter
	switch {
	case to.One != nil:
		st.mode, filters = "one", []dsl.EventFilter{*to.One}
	case to.All != nil:
		st.mode, filters = "all", to.All
	default:
		st.mode, filters = "any", to.Any
	}
	for _, f := range filters {
		ef := eventFilter{correlate: map[string]correlation{}}
		var err error
		if ef.with, err = expr.CompileTemplateCached(&c.p.cache, f.With, extra...); err != nil {
			return nil, err
		}
		for name, cr := range f.Correlate {
			var co correlation
			if co.from, err = c.expr(cr.From, extra); err != nil {
				return nil, err
			}
			if cr.Expect != "" {
				if co.expect, err = expr.CompileTemplateCached(&c.p.cache, cr.Expect, extra...); err != nil {
					return nil, err
				}
			}
			ef.correlate[name] = co
		}
		st.filters = append(st.filters, ef)
	}
	return st, nil
}

// execListen waits for matching events: the walk records the first wait
// (EventAwaited), consumes an arriving event that matches, and completes
// once the consumption strategy is satisfied. Its output is the consumed
// event for `one`, else the array of consumed events (their data unless
// read is envelope). An event that the `until` strategy of an `any`
// consumption wants is taken by it first: it is recorded under untilKey and
// left out of the output.
func (w *walker) execListen(key string, n *node, in val, sc scope) result {
	ls := n.listen
	rec := w.st.Records[key]
	if rec == nil {
		if err := w.emit(history.Event{Type: history.EventAwaited, Task: n.ptr, Key: key}); err != nil {
			return fault(Problem(ErrRuntime, n.ptr, "%v", err))
		}
		rec = w.st.Records[key]
	}
	received := decodeReceived(rec)
	var ended []map[string]any
	if ls.untilBy != nil {
		ended = decodeReceived(w.st.Records[untilKey(key)])
		if w.arrived != nil {
			ok, err := w.wants(ls.untilBy, n, in, sc, ended, w.arrived)
			if err != nil {
				return fault(err)
			}
			if ok {
				raw, _ := json.Marshal(w.arrived)
				if err := w.emit(history.Event{Type: history.EventReceived, Task: n.ptr, Key: untilKey(key), Attempt: len(ended), Data: raw}); err != nil {
					return w.emitFailed(key, n, err)
				}
				ended = append(ended, w.arrived)
				w.arrived = nil
			}
		}
	}
	if w.arrived != nil {
		ok, err := w.wants(&ls.strategy, n, in, sc, received, w.arrived)
		if err != nil {
			return fault(err)
		}
		if ok {
			raw, _ := json.Marshal(w.arrived)
			if err := w.emit(history.Event{Type: history.EventReceived, Task: n.ptr, Key: key, Attempt: len(received), Data: raw}); err != nil {
				return w.emitFailed(key, n, err)
			}
			received = append(received, w.arrived)
			w.arrived = nil
		}
	}
	var complete bool
	switch {
	case ls.untilBy != nil:
		complete = w.satisfied(ls.untilBy, n, in, sc, ended)
	case ls.until != nil:
		if len(received) > 0 {
			out := w.listenOutput(ls, received)
			ok, err := w.evalBool(ls.until, n, val{v: out}, in, sc)
			if err != nil {
				return fault(err)
			}
			complete = ok
		}
	default:
		complete = w.satisfied(&ls.strategy, n, in, sc, received)
	}
	if !complete {
		if w.probe {
			w.noteWait(n, in, sc)
		}
		return blocked()
	}
	out := w.listenOutput(ls, received)
	if ls.mode == "one" {
		return done(val{v: out[0]})
	}
	return done(val{v: out})
}

// decodeReceived returns the events a record consumed.
func decodeReceived(rec *Record) []map[string]any {
	if rec == nil {
		return nil
	}
	out := make([]map[string]any, 0, len(rec.Received)+1)
	for _, raw := range rec.Received {
		m, _ := decodeJSON(raw).(map[string]any)
		out = append(out, m)
	}
	return out
}

// satisfied reports whether the events received satisfy the strategy: one
// or any event for `one` and `any`, an event for every filter for `all`.
func (w *walker) satisfied(st *strategy, n *node, in val, sc scope, received []map[string]any) bool {
	if st.mode != "all" {
		return len(received) > 0
	}
	for i := range st.filters {
		hit := false
		for _, ev := range received {
			if ok, _ := w.filterMatches(&st.filters[i], n, in, sc, ev); ok {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

func (w *walker) listenOutput(ls *listenSpec, received []map[string]any) []any {
	out := make([]any, len(received))
	for i, ev := range received {
		if ls.read == "envelope" {
			out[i] = ev
		} else {
			out[i] = ev["data"]
		}
	}
	return out
}

// wants reports whether the strategy takes ev: it matches a filter and,
// for `all`, one not yet satisfied by the events received.
func (w *walker) wants(st *strategy, n *node, in val, sc scope, received []map[string]any, ev map[string]any) (bool, *history.Error) {
	if len(st.filters) == 0 {
		return st.mode == "any", nil
	}
	for i := range st.filters {
		ok, err := w.filterMatches(&st.filters[i], n, in, sc, ev)
		if err != nil {
			return false, err
		}
		if !ok {
			continue
		}
		if st.mode != "all" {
			return true, nil
		}
		taken := false
		for _, r := range received {
			if o, _ := w.filterMatches(&st.filters[i], n, in, sc, r); o {
				taken = true
				break
			}
		}
		if !taken {
			return true, nil
		}
	}
	return false, nil
}

// filterMatches compares the event's attributes with the filter's `with`
// values (rendered on the task input) and checks its correlations.
func (w *walker) filterMatches(f *eventFilter, n *node, in val, sc scope, ev map[string]any) (bool, *history.Error) {
	want, err := w.eval(f.with, n, in, in, val{}, sc)
	if err != nil {
		return false, err
	}
	wm, _ := want.(map[string]any)
	for k, v := range wm {
		if !jsonEqual(ev[k], v) {
			return false, nil
		}
	}
	for _, c := range f.correlate {
		got, e := c.from.Eval(w.ctx, ev, w.vars(n, in, val{}, sc, c.from.Uses))
		if e != nil {
			return false, exprProblem(e, n.ptr)
		}
		if c.expect != nil {
			exp, err := w.eval(c.expect, n, in, in, val{}, sc)
			if err != nil {
				return false, err
			}
			if !jsonEqual(got, exp) {
				return false, nil
			}
		}
	}
	return true, nil
}

func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
