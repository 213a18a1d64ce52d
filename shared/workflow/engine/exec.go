package engine

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/engine/httpcall"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// exec runs the body of task n (its kind) on its transformed input.
func (w *walker) exec(key string, n *node, in val, sc scope) result {
	switch n.kind {
	case dsl.KindSet:
		v, err := w.eval(n.set, n, in, in, val{}, sc)
		if err != nil {
			return fault(err)
		}
		return done(val{v: v})
	case dsl.KindDo:
		return exitIsDone(w.runList(key, n.body, in, sc))
	case dsl.KindSwitch:
		for _, c := range n.cases {
			if c.when != nil {
				ok, err := w.evalBool(c.when, n, in, in, sc)
				if err != nil {
					return fault(err)
				}
				if !ok {
					continue
				}
			}
			r := done(in)
			r.then = c.then
			if r.then == "" {
				r.then = "continue"
			}
			return r
		}
		return done(in)
	case dsl.KindFor:
		return w.execFor(key, n, in, sc)
	case dsl.KindFork:
		return w.execFork(key, n, in, sc)
	case dsl.KindTry:
		return w.execTry(key, n, in, sc)
	case dsl.KindRaise:
		v, err := w.eval(n.raise.tpl, n, in, in, val{}, sc)
		if err != nil {
			return fault(err)
		}
		return fault(toProblem(v, n.ptr))
	case dsl.KindWait:
		return w.execWait(key, n, in, sc)
	case dsl.KindCall:
		return w.execCall(key, n, in, sc)
	case dsl.KindEmit:
		return w.execEmit(key, n, in, sc)
	case dsl.KindListen:
		return w.execListen(key, n, in, sc)
	case dsl.KindRun:
		return w.execRun(key, n, in, sc)
	}
	return fault(Problem(ErrConfiguration, n.ptr, "unsupported task kind %q", n.kind))
}

// exitIsDone turns `then: exit` at the end of a composite into completion.
func exitIsDone(r result) result {
	if r.out == outExit {
		r.out = outDone
	}
	return r
}

// toProblem converts an evaluated error definition into a DSL error.
func toProblem(v any, instance string) *history.Error {
	m, _ := v.(map[string]any)
	e := &history.Error{Instance: instance}
	e.Type, _ = m["type"].(string)
	switch s := m["status"].(type) {
	case int:
		e.Status = s
	case float64:
		e.Status = int(s)
	case string:
		e.Status, _ = strconv.Atoi(s)
	}
	e.Title, _ = m["title"].(string)
	e.Detail, _ = m["detail"].(string)
	if i, ok := m["instance"].(string); ok && i != "" {
		e.Instance = i
	}
	return e
}

func (w *walker) execFor(key string, n *node, in val, sc scope) result {
	coll, err := n.forIn.Eval(w.ctx, in.v, w.vars(n, in, val{}, sc, n.forIn.Uses))
	if err != nil {
		return fault(exprProblem(err, n.ptr))
	}
	var items []any
	switch c := coll.(type) {
	case nil:
	case []any:
		items = c
	case map[string]any:
		items = make([]any, 0, len(c))
		for _, k := range sortedKeys(c) {
			items = append(items, c[k])
		}
	default:
		return fault(Problem(ErrExpression, n.ptr, "for.in must yield an array, got %T", coll))
	}
	cur := in
	for i, item := range items {
		isc := sc.with(n.each, item, n.at, i)
		if n.while != nil {
			ok, err := w.evalBool(n.while, n, cur, in, isc)
			if err != nil {
				return fault(err)
			}
			if !ok {
				break
			}
		}
		r := w.runList(key+"["+strconv.Itoa(i)+"]", n.body, cur, isc)
		switch r.out {
		case outBlocked, outFault, outEnd:
			return r
		}
		cur = r.v
	}
	return done(cur)
}

func (w *walker) execFork(key string, n *node, in val, sc scope) result {
	compete := n.t.Fork.Compete
	if !w.st.Has(history.BranchForked, key, 0) {
		data, _ := json.Marshal(map[string]any{"branches": len(n.body.nodes), "compete": compete})
		if err := w.emit(history.Event{Type: history.BranchForked, Task: n.ptr, Key: key, Data: data}); err != nil {
			return fault(Problem(ErrRuntime, n.ptr, "%v", err))
		}
	}
	outs := make([]any, len(n.body.nodes))
	pending := false
	for j, b := range n.body.nodes {
		r := w.runNode(key+"/"+strconv.Itoa(j), b, in, sc, true)
		switch r.out {
		case outFault:
			return r
		case outBlocked:
			pending = true
			continue
		}
		if compete {
			return done(r.v)
		}
		outs[j] = r.v.v
	}
	if pending {
		return blocked()
	}
	return done(val{v: outs})
}

func (w *walker) execTry(key string, n *node, in val, sc scope) result {
	attempt := 0
	if rec := w.st.Records[key]; rec != nil {
		attempt = rec.Retries
	}
	if attempt > 0 {
		if t := w.st.Timers[retryKey(key, attempt)]; t != nil && !t.Fired {
			w.redriveTimer(retryKey(key, attempt), n.ptr, t)
			return blocked()
		}
	}
	frame := key + "~try"
	if attempt > 0 {
		frame += strconv.Itoa(attempt)
	}
	r := exitIsDone(w.runList(frame, n.body, in, sc))
	if r.out != outFault {
		return r
	}
	cat := n.t.Try.Catch
	errVal := problemValue(r.err)
	csc := sc.with(n.catchAs, errVal)
	if f := cat.Errors; f != nil && !matchError(f, r.err) {
		return r
	}
	if n.when != nil {
		ok, err := w.evalBool(n.when, n, in, in, csc)
		if err != nil {
			return fault(err)
		}
		if !ok {
			return r
		}
	}
	if n.except != nil {
		ok, err := w.evalBool(n.except, n, in, in, csc)
		if err != nil {
			return fault(err)
		}
		if ok {
			return r
		}
	}
	if n.retry != nil {
		retry, err := w.shouldRetry(key, n, in, csc.with("error", errVal), attempt)
		if err != nil {
			return fault(err)
		}
		if retry {
			next := attempt + 1
			delay := retryDelay(n.retry, next, w.st.CaseID+key)
			if err := w.emit(history.Event{Type: history.TaskRetried, Task: n.ptr, Key: key, Attempt: next, Error: r.err}); err != nil {
				return fault(Problem(ErrRuntime, n.ptr, "%v", err))
			}
			w.schedule(retryKey(key, next), n.ptr, w.now.Add(delay))
			return blocked()
		}
		if n.catch == nil {
			return r // retries exhausted
		}
	}
	if n.catch == nil {
		return done(in)
	}
	return exitIsDone(w.runList(key+"~catch", n.catch, in, csc))
}

func retryKey(key string, attempt int) string { return key + "~retry" + strconv.Itoa(attempt) }

// shouldRetry applies the retry policy's conditions and limits.
func (w *walker) shouldRetry(key string, n *node, in val, sc scope, attempt int) (bool, *history.Error) {
	rp := n.retry
	if n.retryW != nil {
		ok, err := w.evalBool(n.retryW, n, in, in, sc)
		if err != nil || !ok {
			return false, err
		}
	}
	if n.retryX != nil {
		ok, err := w.evalBool(n.retryX, n, in, in, sc)
		if err != nil || ok {
			return false, err
		}
	}
	if rp.Limit != nil {
		// attempt.count bounds the retries after the first attempt, so a
		// count of N allows N+1 attempts in total.
		if a := rp.Limit.Attempt; a != nil && a.Count > 0 && attempt >= a.Count {
			return false, nil
		}
		if d := rp.Limit.Duration; d != nil && d.Value > 0 {
			if first := w.st.Timers[retryKey(key, 1)]; first != nil && w.now.Sub(first.Due) >= d.Value {
				return false, nil
			}
		}
	}
	return true, nil
}

// retryDelay is the delay before attempt (1-based retry number): the
// policy's delay grown by its backoff, plus a jitter derived from seed so
// that replays compute the same value.
func retryDelay(rp *dsl.RetryPolicy, attempt int, seed string) time.Duration {
	var base time.Duration
	if rp.Delay != nil {
		base = rp.Delay.Value
	}
	d := base
	if rp.Backoff != nil {
		switch rp.Backoff.Kind {
		case dsl.BackoffLinear:
			d = base * time.Duration(attempt)
		case dsl.BackoffExponential:
			d = time.Duration(float64(base) * math.Pow(2, float64(attempt-1)))
		}
	}
	if j := rp.Jitter; j != nil && j.To.Value > j.From.Value {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s|%d", seed, attempt)
		span := uint64(j.To.Value - j.From.Value)
		d += j.From.Value + time.Duration(h.Sum64()%span)
	}
	return d
}

// matchError applies a catch's `errors.with` filter.
func matchError(f *dsl.ErrorFilter, e *history.Error) bool {
	if e == nil {
		return false
	}
	if f.Type != "" && !sameErrorType(f.Type, e.Type) {
		return false
	}
	if f.Status != 0 && f.Status != e.Status {
		return false
	}
	if f.Instance != "" && f.Instance != e.Instance {
		return false
	}
	if f.Title != "" && f.Title != e.Title {
		return false
	}
	if f.Details != "" && f.Details != e.Detail {
		return false
	}
	return true
}

// problemValue is a DSL error as expressions see it.
func problemValue(e *history.Error) map[string]any {
	if e == nil {
		return nil
	}
	m := map[string]any{"type": e.Type, "status": e.Status, "instance": e.Instance}
	if e.Title != "" {
		m["title"] = e.Title
	}
	if e.Detail != "" {
		m["detail"] = e.Detail
	}
	return m
}

func (w *walker) execWait(key string, n *node, in val, sc scope) result {
	if t := w.st.Timers[key]; t != nil {
		if t.Fired {
			return done(in)
		}
		w.redriveTimer(key, n.ptr, t)
		return blocked()
	}
	d := n.t.Wait.Duration.Value
	if src := n.t.Wait.Duration.Expr; src != "" {
		e, err := w.p.cache.Compile(src, scopeNames(sc)...)
		if err != nil {
			return fault(exprProblem(err, n.ptr))
		}
		v, err := e.Eval(w.ctx, in.v, w.vars(n, in, val{}, sc, nil))
		if err != nil {
			return fault(exprProblem(err, n.ptr))
		}
		s, _ := v.(string)
		if d, err = dsl.ParseISODuration(s); err != nil {
			return fault(Problem(ErrExpression, n.ptr, "wait: %v", err))
		}
	}
	w.schedule(key, n.ptr, w.now.Add(d))
	return blocked()
}

func scopeNames(sc scope) []string {
	return sortedKeys(sc.extra)
}

func (w *walker) execCall(key string, n *node, in val, sc scope) result {
	cs := n.call
	switch cs.kind {
	case callFunction:
		arg := in
		if !n.with.IsConstant() || len(n.t.Call.With) > 0 {
			v, err := w.eval(n.with, n, in, in, val{}, sc)
			if err != nil {
				return fault(err)
			}
			arg = val{v: v}
		}
		return w.runNode(key+"~fn", n.fn, arg, scope{}, false)
	case callValidate:
		return w.execValidate(n, in, sc)
	}
	return w.execEffect(key, n, in, sc)
}

// execEffect runs a task whose work the shell performs (a call or a
// script): it asks for the effect once, records the request, and completes
// with the result when it comes back.
func (w *walker) execEffect(key string, n *node, in val, sc scope) result {
	if rec := w.st.Records[key]; rec != nil && rec.Status == RecRequested {
		res, ok := w.inbox[key]
		if !ok {
			if !w.redrive {
				return blocked()
			}
			eff, err := w.callEffect(key, n, in, sc)
			if err != nil {
				return fault(err)
			}
			w.dec.Effects = append(w.dec.Effects, eff)
			return blocked()
		}
		delete(w.inbox, key)
		if res.Error != nil {
			e := *res.Error
			e.Instance = n.ptr
			return fault(&e)
		}
		return done(val{v: expr.Normalize(res.Output)})
	}
	eff, perr := w.callEffect(key, n, in, sc)
	if perr != nil {
		return fault(perr)
	}
	data, merr := json.Marshal(eff.recorded())
	if merr != nil {
		return fault(Problem(ErrRuntime, n.ptr, "encode request: %v", merr))
	}
	if err := w.emit(history.Event{Type: history.EffectRequested, Task: n.ptr, Key: key, Data: data}); err != nil {
		return w.emitFailed(key, n, err)
	}
	w.dec.Effects = append(w.dec.Effects, eff)
	return blocked()
}

// callEffect renders the effect of an HTTP, OpenAPI or gRPC call or of a
// script.
func (w *walker) callEffect(key string, n *node, in val, sc scope) (Effect, *history.Error) {
	eff := Effect{ID: key, Task: n.ptr}
	switch n.call.kind {
	case callGRPC:
		req, err := w.renderGRPC(n, in, sc)
		if err != nil {
			return eff, err
		}
		req.Timeout = w.timeLeft(key, n)
		eff.Kind, eff.GRPC = EffectGRPC, req
	case callScript:
		req, err := w.renderScript(key, n, in, sc)
		if err != nil {
			return eff, err
		}
		eff.Kind, eff.Script = EffectScript, req
	case callHTTP:
		req, err := w.renderHTTP(n, in, sc)
		if err != nil {
			return eff, err
		}
		eff.Kind, eff.HTTP = EffectHTTP, req
	default:
		req, err := w.renderOpenAPI(n, in, sc)
		if err != nil {
			return eff, err
		}
		eff.Kind, eff.OpenAPI = EffectOpenAPI, req
	}
	return eff, nil
}

func (w *walker) renderHTTP(n *node, in val, sc scope) (*httpcall.Request, *history.Error) {
	cs := n.call
	req := &httpcall.Request{Method: cs.method, Output: cs.output, Redirect: cs.redirect}
	if cs.uri != nil {
		v, err := w.eval(cs.uri, n, in, in, val{}, sc)
		if err != nil {
			return nil, err
		}
		s, ok := v.(string)
		if !ok {
			return nil, Problem(ErrExpression, n.ptr, "endpoint must be a string, got %T", v)
		}
		req.URI = s
	} else {
		u, err := expandURI(cs.uriTpl, in.v)
		if err != nil {
			return nil, Problem(ErrExpression, n.ptr, "%v", err)
		}
		req.URI = u
	}
	var err *history.Error
	if req.Headers, err = w.stringMap(cs.headers, n, in, sc); err != nil {
		return nil, err
	}
	if req.Query, err = w.stringMap(cs.query, n, in, sc); err != nil {
		return nil, err
	}
	if cs.body != nil {
		if req.Body, err = w.eval(cs.body, n, in, in, val{}, sc); err != nil {
			return nil, err
		}
	}
	if req.Auth, err = w.renderAuth(cs.auth, n, in, sc); err != nil {
		return nil, err
	}
	return req, nil
}

func (w *walker) renderOpenAPI(n *node, in val, sc scope) (*httpcall.OpenAPIRequest, *history.Error) {
	cs := n.call
	req := &httpcall.OpenAPIRequest{Document: cs.document, OperationID: cs.opID, Output: cs.output, Redirect: cs.redirect}
	if cs.params != nil {
		v, err := w.eval(cs.params, n, in, in, val{}, sc)
		if err != nil {
			return nil, err
		}
		req.Parameters, _ = v.(map[string]any)
	}
	var err *history.Error
	if req.Auth, err = w.renderAuth(cs.auth, n, in, sc); err != nil {
		return nil, err
	}
	return req, nil
}

func (w *walker) stringMap(t *expr.Template, n *node, in val, sc scope) (map[string]string, *history.Error) {
	if t == nil {
		return nil, nil
	}
	v, err := w.eval(t, n, in, in, val{}, sc)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok && v != nil {
		return nil, Problem(ErrExpression, n.ptr, "want an object of strings, got %T", v)
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		out[k] = scalarString(x)
	}
	return out, nil
}

func (w *walker) renderAuth(a *authSpec, n *node, in val, sc scope) (*httpcall.Auth, *history.Error) {
	if a == nil {
		return nil, nil
	}
	var fields map[string]any
	if a.secret != "" {
		s, _ := w.secrets.(map[string]any)
		fields, _ = s[a.secret].(map[string]any)
		if fields == nil {
			return nil, Problem(ErrAuthentication, n.ptr, "secret %q is not available", a.secret)
		}
	} else {
		v, err := w.eval(a.fields, n, in, in, val{}, sc)
		if err != nil {
			return nil, err
		}
		fields, _ = v.(map[string]any)
	}
	out := &httpcall.Auth{Scheme: a.scheme}
	if a.scheme == dsl.AuthOAuth2 || a.scheme == dsl.AuthOIDC {
		o, err := httpcall.DecodeOAuth2(fields)
		if err != nil || fields == nil {
			return nil, Problem(ErrAuthentication, n.ptr, "%s authentication: the policy does not decode: %v", a.scheme, err)
		}
		out.OAuth2 = o
		return out, nil
	}
	out.Username = scalarString(fields["username"])
	out.Password = scalarString(fields["password"])
	out.Token = scalarString(fields["token"])
	// A credential that evaluates to null or empty would send an
	// anonymous or malformed Authorization header: fault instead.
	switch a.scheme {
	case dsl.AuthBearer:
		if out.Token == "" {
			return nil, Problem(ErrAuthentication, n.ptr, "bearer authentication: the token is null or empty; no request was sent")
		}
	case dsl.AuthBasic, dsl.AuthDigest:
		for _, f := range []struct{ name, v string }{{"username", out.Username}, {"password", out.Password}} {
			if f.v == "" {
				return nil, Problem(ErrAuthentication, n.ptr, "%s authentication: the %s is null or empty; no request was sent", a.scheme, f.name)
			}
		}
	}
	return out, nil
}

func (w *walker) execValidate(n *node, in val, sc scope) result {
	args := map[string]any{}
	if n.with != nil {
		v, err := w.eval(n.with, n, in, in, val{}, sc)
		if err != nil {
			return fault(err)
		}
		args, _ = v.(map[string]any)
	}
	data := in.v
	if d, ok := args["data"]; ok {
		data = d
	}
	schema := n.call.schema
	if schema == nil {
		s, err := compileSchemaDoc(args["schema"])
		if err != nil {
			return fault(Problem(ErrConfiguration, n.ptr, "%v", err))
		}
		schema = s
	}
	if err := schema.Validate(data); err != nil {
		return fault(Problem(ErrValidation, n.ptr, "%v", err))
	}
	return done(val{v: data})
}

func (w *walker) execRun(key string, n *node, in val, sc scope) result {
	if n.call != nil && n.call.kind == callScript {
		return w.execEffect(key, n, in, sc)
	}
	if w.opts.Registry == nil {
		return fault(Problem(ErrConfiguration, n.ptr, "no workflow registry to resolve %s/%s", n.run.Namespace, n.run.Name))
	}
	sub, err := w.p.subprogram(w.ctx, w.opts.Registry, n.run)
	if err != nil {
		return fault(Problem(ErrConfiguration, n.ptr, "%v", err))
	}
	arg := in
	if len(n.run.Input) > 0 {
		v, err := w.eval(n.runWith, n, in, in, val{}, sc)
		if err != nil {
			return fault(err)
		}
		arg = val{v: v}
	}
	if sub.input != nil {
		v, perr := w.transform(sub.input, arg, n.ptr, scope{}, arg, nil)
		if perr != nil {
			return fault(perr)
		}
		arg = v
	}
	r := w.runList(key+"~run", sub.root, arg, scope{})
	if r.out == outEnd || r.out == outExit {
		r.out = outDone
	}
	if r.out != outDone {
		return r
	}
	out, perr := w.transform(sub.output, r.v, n.ptr, scope{}, arg, nil)
	if perr != nil {
		return fault(perr)
	}
	return done(out)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}

func scalarString(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case int:
		return strconv.Itoa(t)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(t)
	default:
		b, _ := json.Marshal(t)
		return string(b)
	}
}
