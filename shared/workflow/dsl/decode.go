package dsl

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Patterns of the official schema (RE2-compatible ones).
var (
	uriPattern    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+\-.]*://.*`)
	namePattern   = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	semverPattern = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
)

// IsExpression reports whether s is written as a runtime expression,
// ${ ... }, exactly as the schema's runtimeExpression pattern
// ^\s*\$\{.+\}\s*$ decides (the body is one line).
func IsExpression(s string) bool {
	t := strings.Trim(s, " \t\n\f\r")
	if len(t) < 4 || t[0] != '$' || t[1] != '{' || t[len(t)-1] != '}' {
		return false
	}
	return !strings.ContainsRune(t[2:len(t)-1], '\n')
}

// exprSite is a runtime expression found in the document, compiled by
// Validate.
type exprSite struct {
	ptr   string
	src   string
	extra []string // variables in scope besides the DSL's fixed ones
}

// decoder builds the typed model from a node tree, collecting issues.
type decoder struct {
	issues    []*Issue
	exprs     []exprSite
	taskDepth int
	scope     []string // variable names declared by enclosing for, catch and foreach
}

// addExpr records a runtime expression with the variables in scope.
func (d *decoder) addExpr(ptr, src string) {
	var extra []string
	if len(d.scope) > 0 {
		extra = append(extra, d.scope...)
	}
	d.exprs = append(d.exprs, exprSite{ptr: ptr, src: src, extra: extra})
}

// push declares variables for the decoding of nested content; the returned
// function restores the previous scope.
func (d *decoder) push(names ...string) func() {
	n := len(d.scope)
	d.scope = append(d.scope, names...)
	return func() { d.scope = d.scope[:n] }
}

func (d *decoder) fail(n *node, ptr, format string, args ...any) {
	p := Pos{}
	if n != nil {
		p = n.pos
	}
	d.issues = append(d.issues, &Issue{Pointer: ptr, Line: p.Line, Column: p.Column, Message: fmt.Sprintf(format, args...)})
}

// failKey reports an issue at the key of an entry of map m.
func (d *decoder) failKey(m *node, key, ptr, format string, args ...any) {
	for _, e := range m.keys {
		if e.key == key {
			d.issues = append(d.issues, &Issue{Pointer: ptr, Line: e.keyPos.Line, Column: e.keyPos.Column, Message: fmt.Sprintf(format, args...)})
			return
		}
	}
	d.fail(m, ptr, format, args...)
}

func join(ptr, tok string) string { return ptr + "/" + escapeKey(tok) }

func idx(ptr string, i int) string { return ptr + "/" + strconv.Itoa(i) }

// object checks that n is a mapping whose keys are among allowed (if any
// are given) and that required keys are present.
func (d *decoder) object(n *node, ptr, what string, allowed []string, required ...string) bool {
	if n == nil || n.kind != kindMap {
		d.fail(n, ptr, "%s must be an object, not %s", what, kindOf(n))
		return false
	}
	if allowed != nil {
	keys:
		for _, e := range n.keys {
			for _, a := range allowed {
				if e.key == a {
					continue keys
				}
			}
			d.failKey(n, e.key, join(ptr, e.key), "unknown property %q in %s", e.key, what)
		}
	}
	for _, r := range required {
		if !n.has(r) {
			d.fail(n, ptr, "%s: missing required property %q", what, r)
		}
	}
	return true
}

func kindOf(n *node) string {
	if n == nil {
		return "null"
	}
	return n.kind.String()
}

// str decodes a string field of m; absent gives "".
func (d *decoder) str(m *node, key, ptr string) string {
	v := m.get(key)
	if v == nil && !m.has(key) {
		return ""
	}
	if v.kind != kindString {
		d.fail(v, join(ptr, key), "%s must be a string, not %s", key, kindOf(v))
		return ""
	}
	return v.str
}

// exprStr decodes a string field that is always a runtime expression (the
// ${ } wrapper is optional) and records it for compilation.
func (d *decoder) exprStr(m *node, key, ptr string) string {
	s := d.str(m, key, ptr)
	if s != "" {
		d.addExpr(join(ptr, key), s)
	}
	return s
}

// maybeExpr records s for compilation when it is written as ${ ... }.
func (d *decoder) maybeExpr(s, ptr string) {
	if IsExpression(s) {
		d.addExpr(ptr, s)
	}
}

// scanExprs records every ${ ... } string inside a free-form value.
func (d *decoder) scanExprs(n *node, ptr string) {
	if n == nil {
		return
	}
	switch n.kind {
	case kindString:
		d.maybeExpr(n.str, ptr)
	case kindMap:
		for _, e := range n.keys {
			if v := e.val; v != nil && (v.kind == kindMap || v.kind == kindSeq || (v.kind == kindString && IsExpression(v.str))) {
				d.scanExprs(v, join(ptr, e.key))
			}
		}
	case kindSeq:
		for i, it := range n.items {
			if it != nil && (it.kind == kindMap || it.kind == kindSeq || (it.kind == kindString && IsExpression(it.str))) {
				d.scanExprs(it, idx(ptr, i))
			}
		}
	}
}

func (d *decoder) boolean(m *node, key, ptr string) bool {
	v := m.get(key)
	if v == nil && !m.has(key) {
		return false
	}
	if v.kind != kindBool {
		d.fail(v, join(ptr, key), "%s must be a boolean, not %s", key, kindOf(v))
		return false
	}
	return v.b
}

func (d *decoder) integer(m *node, key, ptr string) int64 {
	v := m.get(key)
	if v == nil && !m.has(key) {
		return 0
	}
	switch {
	case v != nil && v.kind == kindInt:
		return v.i
	case v != nil && v.kind == kindFloat && v.f == math.Trunc(v.f) && math.Abs(v.f) < 1<<53:
		// JSON Schema counts 400.0 as an integer.
		return int64(v.f)
	}
	d.fail(v, join(ptr, key), "%s must be an integer, not %s", key, kindOf(v))
	return 0
}

// freeObject decodes an object field of any content.
func (d *decoder) freeObject(m *node, key, ptr string) map[string]any {
	v := m.get(key)
	if v == nil && !m.has(key) {
		return nil
	}
	if !d.object(v, join(ptr, key), key, nil) {
		return nil
	}
	return v.value().(map[string]any)
}

func (d *decoder) enum(m *node, key, ptr string, values ...string) string {
	s := d.str(m, key, ptr)
	if s == "" && !m.has(key) {
		return ""
	}
	for _, v := range values {
		if s == v {
			return s
		}
	}
	d.fail(m.get(key), join(ptr, key), "%s must be one of %s, not %q", key, strings.Join(values, ", "), s)
	return s
}

func (d *decoder) pattern(m *node, key, ptr string, re *regexp.Regexp, what string) string {
	s := d.str(m, key, ptr)
	if m.get(key) != nil && m.get(key).kind == kindString && !re.MatchString(s) {
		d.fail(m.get(key), join(ptr, key), "%s %q is not a valid %s", key, s, what)
	}
	return s
}

// workflow decodes the root.
func (d *decoder) workflow(n *node) *Workflow {
	w := &Workflow{}
	if !d.object(n, "", "workflow", []string{"document", "input", "use", "do", "timeout", "output", "schedule", "evaluate"}, "document", "do") {
		return w
	}
	if v := n.get("document"); n.has("document") {
		w.Document = d.document(v, "/document")
	}
	if n.has("input") {
		w.Input = d.input(n.get("input"), "/input")
	}
	if n.has("output") {
		w.Output = d.output(n.get("output"), "/output")
	}
	if n.has("use") {
		w.Use = d.use(n.get("use"), "/use")
	}
	if n.has("do") {
		w.Do = d.taskList(n.get("do"), "/do")
	}
	if n.has("timeout") {
		w.Timeout = d.timeout(n.get("timeout"), "/timeout")
	}
	if n.has("schedule") {
		w.Schedule = d.schedule(n.get("schedule"), "/schedule")
	}
	if n.has("evaluate") {
		v := n.get("evaluate")
		if d.object(v, "/evaluate", "evaluate", []string{"language", "mode"}) {
			w.Evaluate = &Evaluate{
				Language: d.str(v, "language", "/evaluate"),
				Mode:     d.enum(v, "mode", "/evaluate", "strict", "loose"),
			}
		}
	}
	return w
}

func (d *decoder) document(n *node, ptr string) Document {
	var doc Document
	if !d.object(n, ptr, "document", []string{"dsl", "namespace", "name", "version", "title", "summary", "tags", "metadata"}, "dsl", "namespace", "name", "version") {
		return doc
	}
	doc.DSL = d.pattern(n, "dsl", ptr, semverPattern, "semantic version")
	doc.Namespace = d.pattern(n, "namespace", ptr, namePattern, "namespace (letters, digits and '-', at most 63)")
	doc.Name = d.pattern(n, "name", ptr, namePattern, "name (letters, digits and '-', at most 63)")
	doc.Version = d.pattern(n, "version", ptr, semverPattern, "semantic version")
	doc.Title = d.str(n, "title", ptr)
	doc.Summary = d.str(n, "summary", ptr)
	doc.Tags = d.freeObject(n, "tags", ptr)
	doc.Metadata = d.freeObject(n, "metadata", ptr)
	return doc
}

func (d *decoder) use(n *node, ptr string) Use {
	var u Use
	if !d.object(n, ptr, "use", []string{"authentications", "errors", "extensions", "functions", "retries", "secrets", "timeouts", "catalogs"}) {
		return u
	}
	if v := n.get("authentications"); n.has("authentications") && d.object(v, join(ptr, "authentications"), "authentications", nil) {
		u.Authentications = map[string]*AuthenticationPolicy{}
		for _, e := range v.keys {
			u.Authentications[e.key] = d.authPolicy(e.val, join(join(ptr, "authentications"), e.key))
		}
	}
	if v := n.get("errors"); n.has("errors") && d.object(v, join(ptr, "errors"), "errors", nil) {
		u.Errors = map[string]*ErrorDef{}
		for _, e := range v.keys {
			u.Errors[e.key] = d.errorDef(e.val, join(join(ptr, "errors"), e.key))
		}
	}
	if v := n.get("extensions"); n.has("extensions") {
		p := join(ptr, "extensions")
		if v == nil || v.kind != kindSeq {
			d.fail(v, p, "extensions must be an array, not %s", kindOf(v))
		} else {
			for i, it := range v.items {
				ip := idx(p, i)
				if !d.object(it, ip, "extension item", nil) {
					continue
				}
				if len(it.keys) != 1 {
					d.fail(it, ip, "an extension item must have exactly one named extension")
					continue
				}
				e := it.keys[0]
				ep := join(ip, e.key)
				if !d.object(e.val, ep, "extension", []string{"extend", "when", "before", "after"}, "extend") {
					continue
				}
				x := Extension{Name: e.key, Extend: d.enum(e.val, "extend", ep, "call", "composite", "emit", "for", "listen", "raise", "run", "set", "switch", "try", "wait", "all"), When: d.exprStr(e.val, "when", ep)}
				if e.val.has("before") {
					x.Before = d.taskList(e.val.get("before"), join(ep, "before"))
				}
				if e.val.has("after") {
					x.After = d.taskList(e.val.get("after"), join(ep, "after"))
				}
				u.Extensions = append(u.Extensions, x)
			}
		}
	}
	if v := n.get("functions"); n.has("functions") && d.object(v, join(ptr, "functions"), "functions", nil) {
		u.Functions = map[string]*Task{}
		for _, e := range v.keys {
			u.Functions[e.key] = d.task(e.val, join(join(ptr, "functions"), e.key), e.keyPos)
		}
	}
	if v := n.get("retries"); n.has("retries") && d.object(v, join(ptr, "retries"), "retries", nil) {
		u.Retries = map[string]*RetryPolicy{}
		for _, e := range v.keys {
			u.Retries[e.key] = d.retryPolicy(e.val, join(join(ptr, "retries"), e.key))
		}
	}
	if v := n.get("secrets"); n.has("secrets") {
		p := join(ptr, "secrets")
		if v == nil || v.kind != kindSeq {
			d.fail(v, p, "secrets must be an array, not %s", kindOf(v))
		} else {
			for i, it := range v.items {
				if it.kind != kindString {
					d.fail(it, idx(p, i), "a secret name must be a string, not %s", kindOf(it))
					continue
				}
				u.Secrets = append(u.Secrets, it.str)
			}
		}
	}
	if v := n.get("timeouts"); n.has("timeouts") && d.object(v, join(ptr, "timeouts"), "timeouts", nil) {
		u.Timeouts = map[string]*TimeoutDef{}
		for _, e := range v.keys {
			p := join(join(ptr, "timeouts"), e.key)
			td := &TimeoutDef{}
			if d.object(e.val, p, "timeout", []string{"after"}, "after") && e.val.has("after") {
				if dd := d.duration(e.val.get("after"), join(p, "after")); dd != nil {
					td.After = *dd
				}
			}
			u.Timeouts[e.key] = td
		}
	}
	if v := n.get("catalogs"); n.has("catalogs") && d.object(v, join(ptr, "catalogs"), "catalogs", nil) {
		u.Catalogs = map[string]*Catalog{}
		for _, e := range v.keys {
			p := join(join(ptr, "catalogs"), e.key)
			c := &Catalog{}
			if d.object(e.val, p, "catalog", []string{"endpoint"}, "endpoint") && e.val.has("endpoint") {
				c.Endpoint = d.endpoint(e.val.get("endpoint"), join(p, "endpoint"))
			}
			u.Catalogs[e.key] = c
		}
	}
	return u
}

func (d *decoder) schedule(n *node, ptr string) *Schedule {
	if !d.object(n, ptr, "schedule", []string{"every", "cron", "after", "on"}) {
		return nil
	}
	s := &Schedule{Cron: d.str(n, "cron", ptr)}
	if n.has("every") {
		s.Every = d.duration(n.get("every"), join(ptr, "every"))
	}
	if n.has("after") {
		s.After = d.duration(n.get("after"), join(ptr, "after"))
	}
	if n.has("on") {
		s.On = d.consumption(n.get("on"), join(ptr, "on"), true)
	}
	return s
}

func (d *decoder) schema(n *node, ptr string) *Schema {
	if !d.object(n, ptr, "schema", []string{"format", "document", "resource"}) {
		return nil
	}
	s := &Schema{Format: d.str(n, "format", ptr)}
	switch hd, hr := n.has("document"), n.has("resource"); {
	case hd && hr:
		d.fail(n, ptr, "schema must have either document or resource, not both")
	case hd:
		s.Document = n.get("document").value()
	case hr:
		s.Resource = d.externalResource(n.get("resource"), join(ptr, "resource"))
	default:
		d.fail(n, ptr, "schema must have a document or a resource")
	}
	return s
}

// dataFilter decodes input.from, output.as or export.as: a runtime
// expression string or an object with embedded expressions.
func (d *decoder) dataFilter(m *node, key, ptr string) any {
	v := m.get(key)
	if v == nil && !m.has(key) {
		return nil
	}
	p := join(ptr, key)
	switch kindOf(v) {
	case "string":
		d.addExpr(p, v.str)
		return v.str
	case "object":
		d.scanExprs(v, p)
		return v.value()
	}
	d.fail(v, p, "%s must be a string or an object, not %s", key, kindOf(v))
	return nil
}

func (d *decoder) input(n *node, ptr string) *Input {
	if !d.object(n, ptr, "input", []string{"schema", "from"}) {
		return nil
	}
	in := &Input{From: d.dataFilter(n, "from", ptr)}
	if n.has("schema") {
		in.Schema = d.schema(n.get("schema"), join(ptr, "schema"))
	}
	return in
}

func (d *decoder) output(n *node, ptr string) *Output {
	if !d.object(n, ptr, "output", []string{"schema", "as"}) {
		return nil
	}
	out := &Output{As: d.dataFilter(n, "as", ptr)}
	if n.has("schema") {
		out.Schema = d.schema(n.get("schema"), join(ptr, "schema"))
	}
	return out
}

func (d *decoder) export(n *node, ptr string) *Export {
	if !d.object(n, ptr, "export", []string{"schema", "as"}) {
		return nil
	}
	ex := &Export{As: d.dataFilter(n, "as", ptr)}
	if n.has("schema") {
		ex.Schema = d.schema(n.get("schema"), join(ptr, "schema"))
	}
	return ex
}

// duration decodes an inline duration object, an ISO 8601 literal or a
// runtime expression.
func (d *decoder) duration(n *node, ptr string) *Duration {
	switch kindOf(n) {
	case "string":
		if IsExpression(n.str) {
			d.addExpr(ptr, n.str)
			return &Duration{Expr: n.str}
		}
		v, err := ParseISODuration(n.str)
		if err != nil {
			d.fail(n, ptr, "%v", err)
			return nil
		}
		return &Duration{Value: v}
	case "object":
		if !d.object(n, ptr, "duration", []string{"days", "hours", "minutes", "seconds", "milliseconds"}) {
			return nil
		}
		if len(n.keys) == 0 {
			d.fail(n, ptr, "an inline duration needs at least one of days, hours, minutes, seconds, milliseconds")
			return nil
		}
		before := len(d.issues)
		v, err := inlineDuration(d.integer(n, "days", ptr), d.integer(n, "hours", ptr), d.integer(n, "minutes", ptr), d.integer(n, "seconds", ptr), d.integer(n, "milliseconds", ptr))
		if len(d.issues) > before {
			return nil
		}
		if err != nil {
			d.fail(n, ptr, "%v", err)
			return nil
		}
		return &Duration{Value: v}
	}
	d.fail(n, ptr, "a duration must be an ISO 8601 string, a runtime expression or an object, not %s", kindOf(n))
	return nil
}

// timeout decodes an inline timeout or a reference to a declared one.
func (d *decoder) timeout(n *node, ptr string) *Timeout {
	if kindOf(n) == "string" {
		return &Timeout{Ref: n.str}
	}
	if kindOf(n) != "object" {
		d.fail(n, ptr, "timeout must be an object or the name of a declared timeout, not %s", kindOf(n))
		return nil
	}
	if !d.object(n, ptr, "timeout", []string{"after"}, "after") || !n.has("after") {
		return nil
	}
	return &Timeout{After: d.duration(n.get("after"), join(ptr, "after"))}
}

func (d *decoder) errorDef(n *node, ptr string) *ErrorDef {
	if !d.object(n, ptr, "error", []string{"type", "status", "instance", "title", "detail"}, "type", "status") {
		return nil
	}
	e := &ErrorDef{
		Type:     d.str(n, "type", ptr),
		Status:   int(d.integer(n, "status", ptr)),
		Instance: d.str(n, "instance", ptr),
		Title:    d.str(n, "title", ptr),
		Detail:   d.str(n, "detail", ptr),
	}
	if v := n.get("type"); v != nil && v.kind == kindString && !IsExpression(e.Type) && !uriPattern.MatchString(e.Type) {
		d.fail(v, join(ptr, "type"), "error type %q must be an absolute URI (scheme://...) or a runtime expression", e.Type)
	}
	for _, f := range []struct{ key, val string }{{"type", e.Type}, {"instance", e.Instance}, {"title", e.Title}, {"detail", e.Detail}} {
		d.maybeExpr(f.val, join(ptr, f.key))
	}
	return e
}

// uriOrExpr checks a string that must be an absolute URI template or a
// runtime expression.
func (d *decoder) uriOrExpr(n *node, ptr, what string) string {
	if kindOf(n) != "string" {
		d.fail(n, ptr, "%s must be a string, not %s", what, kindOf(n))
		return ""
	}
	if IsExpression(n.str) {
		d.maybeExpr(n.str, ptr)
	} else if !uriPattern.MatchString(n.str) {
		d.fail(n, ptr, "%s %q must be an absolute URI (scheme://...) or a runtime expression", what, n.str)
	}
	return n.str
}

func (d *decoder) endpoint(n *node, ptr string) Endpoint {
	if kindOf(n) == "string" {
		return Endpoint{URI: d.uriOrExpr(n, ptr, "endpoint")}
	}
	if !d.object(n, ptr, "endpoint", []string{"uri", "authentication"}, "uri") {
		return Endpoint{}
	}
	var e Endpoint
	if n.has("uri") {
		e.URI = d.uriOrExpr(n.get("uri"), join(ptr, "uri"), "endpoint uri")
	}
	if n.has("authentication") {
		e.Authentication = d.authRef(n.get("authentication"), join(ptr, "authentication"))
	}
	return e
}

func (d *decoder) externalResource(n *node, ptr string) *ExternalResource {
	if !d.object(n, ptr, "external resource", []string{"name", "endpoint"}, "endpoint") {
		return nil
	}
	r := &ExternalResource{Name: d.str(n, "name", ptr)}
	if n.has("endpoint") {
		r.Endpoint = d.endpoint(n.get("endpoint"), join(ptr, "endpoint"))
	}
	return r
}

// authRef decodes {use: name} or an inline policy.
func (d *decoder) authRef(n *node, ptr string) *AuthRef {
	if kindOf(n) == "object" && n.has("use") {
		if !d.object(n, ptr, "authentication reference", []string{"use"}) {
			return nil
		}
		name := d.str(n, "use", ptr)
		if name == "" {
			d.fail(n.get("use"), join(ptr, "use"), "authentication reference must name a policy")
		}
		return &AuthRef{Use: name}
	}
	return &AuthRef{Policy: d.authPolicy(n, ptr)}
}

var authSchemes = []string{AuthBasic, AuthBearer, AuthDigest, AuthOAuth2, AuthOIDC}

func (d *decoder) authPolicy(n *node, ptr string) *AuthenticationPolicy {
	if !d.object(n, ptr, "authentication policy", authSchemes) {
		return nil
	}
	if len(n.keys) != 1 {
		d.fail(n, ptr, "an authentication policy must have exactly one of %s", strings.Join(authSchemes, ", "))
		return nil
	}
	scheme := n.keys[0].key
	v := n.keys[0].val
	p := join(ptr, scheme)
	a := &AuthenticationPolicy{Scheme: scheme}
	if !d.object(v, p, scheme+" authentication", nil) {
		return a
	}
	if v.has("use") {
		if d.object(v, p, scheme+" authentication", []string{"use"}) {
			a.Secret = d.str(v, "use", p)
			if v.get("use").kind == kindString && a.Secret == "" {
				d.fail(v.get("use"), join(p, "use"), "secret name must not be empty")
			}
		}
		return a
	}
	switch scheme {
	case AuthBasic, AuthDigest:
		if d.object(v, p, scheme+" authentication", []string{"username", "password"}, "username", "password") {
			b := &BasicAuth{Username: d.str(v, "username", p), Password: d.str(v, "password", p)}
			d.maybeExpr(b.Username, join(p, "username"))
			d.maybeExpr(b.Password, join(p, "password"))
			if scheme == AuthBasic {
				a.Basic = b
			}
		}
	case AuthBearer:
		if d.object(v, p, "bearer authentication", []string{"token"}, "token") {
			a.Bearer = &BearerAuth{Token: d.str(v, "token", p)}
			d.maybeExpr(a.Bearer.Token, join(p, "token"))
		}
	case AuthOAuth2, AuthOIDC:
		a.OAuth2 = d.oauth2(v, p, scheme)
	}
	return a
}

func (d *decoder) retryPolicy(n *node, ptr string) *RetryPolicy {
	if !d.object(n, ptr, "retry policy", []string{"when", "exceptWhen", "delay", "backoff", "limit", "jitter"}) {
		return nil
	}
	// A retry condition sees the caught error as $error (and, inside a catch,
	// under the catch's own name too).
	pop := d.push("error")
	r := &RetryPolicy{When: d.exprStr(n, "when", ptr), ExceptWhen: d.exprStr(n, "exceptWhen", ptr)}
	pop()
	if n.has("delay") {
		r.Delay = d.duration(n.get("delay"), join(ptr, "delay"))
	}
	if v := n.get("backoff"); n.has("backoff") {
		p := join(ptr, "backoff")
		if d.object(v, p, "backoff", []string{BackoffConstant, BackoffExponential, BackoffLinear}) {
			if len(v.keys) != 1 {
				d.fail(v, p, "backoff must have exactly one of constant, exponential, linear")
			} else if k := v.keys[0]; d.object(k.val, join(p, k.key), k.key+" backoff", nil) {
				r.Backoff = &Backoff{Kind: k.key, Params: k.val.value().(map[string]any)}
			}
		}
	}
	if v := n.get("limit"); n.has("limit") {
		p := join(ptr, "limit")
		if d.object(v, p, "retry limit", []string{"attempt", "duration"}) {
			r.Limit = &RetryLimit{}
			if a := v.get("attempt"); v.has("attempt") {
				ap := join(p, "attempt")
				if d.object(a, ap, "attempt limit", []string{"count", "duration"}) {
					r.Limit.Attempt = &AttemptLimit{Count: int(d.integer(a, "count", ap))}
					if a.has("duration") {
						r.Limit.Attempt.Duration = d.duration(a.get("duration"), join(ap, "duration"))
					}
				}
			}
			if v.has("duration") {
				r.Limit.Duration = d.duration(v.get("duration"), join(p, "duration"))
			}
		}
	}
	if v := n.get("jitter"); n.has("jitter") {
		p := join(ptr, "jitter")
		if d.object(v, p, "jitter", []string{"from", "to"}, "from", "to") && v.has("from") && v.has("to") {
			from, to := d.duration(v.get("from"), join(p, "from")), d.duration(v.get("to"), join(p, "to"))
			if from != nil && to != nil {
				r.Jitter = &Jitter{From: *from, To: *to}
			}
		}
	}
	return r
}

// taskList decodes an ordered list of single-key maps.
func (d *decoder) taskList(n *node, ptr string) TaskList {
	if n == nil || n.kind != kindSeq {
		d.fail(n, ptr, "a task list must be an array of named tasks, not %s", kindOf(n))
		return nil
	}
	d.taskDepth++
	defer func() { d.taskDepth-- }()
	if d.taskDepth > MaxTaskDepth {
		d.fail(n, ptr, "tasks nested deeper than %d levels", MaxTaskDepth)
		return nil
	}
	list := make(TaskList, 0, len(n.items))
	for i, it := range n.items {
		ip := idx(ptr, i)
		if it.kind != kindMap {
			d.fail(it, ip, "a task list item must be an object with one named task, not %s", kindOf(it))
			continue
		}
		if len(it.keys) != 1 {
			d.fail(it, ip, "a task list item must have exactly one key (the task name), found %d", len(it.keys))
			continue
		}
		e := it.keys[0]
		list = append(list, NamedTask{Name: e.key, Task: d.task(e.val, join(ip, e.key), e.keyPos)})
	}
	return list
}

// taskKinds lists the keys that name a task's kind, in the order reported.
var taskKinds = taskKindList[:]

var taskKindList = [...]string{"call", "do", "fork", "emit", "for", "listen", "raise", "run", "set", "switch", "try", "wait"}

var taskBase = []string{"if", "input", "output", "export", "timeout", "then", "metadata"}

// kindKeys lists the keys each kind adds to the base.
var kindKeys = map[string][]string{
	"call": {"call", "with"}, "do": {"do"}, "fork": {"fork"}, "emit": {"emit"},
	"for": {"for", "while", "do"}, "listen": {"listen", "foreach"}, "raise": {"raise"},
	"run": {"run"}, "set": {"set"}, "switch": {"switch"}, "try": {"try", "catch"}, "wait": {"wait"},
}

// taskShape is what the decoding of a task of one kind checks its keys
// against, computed once.
type taskShape struct {
	allowed []string // taskBase then the kind's keys
	what    string   // "<kind> task", as issues name it
}

var taskShapes = func() map[string]taskShape {
	m := make(map[string]taskShape, len(kindKeys))
	for kind, keys := range kindKeys {
		m[kind] = taskShape{allowed: append(append([]string{}, taskBase...), keys...), what: kind + " task"}
	}
	return m
}()

func (d *decoder) task(n *node, ptr string, at Pos) *Task {
	t := &Task{Pointer: ptr, Pos: at}
	if n == nil || n.kind != kindMap {
		d.issues = append(d.issues, &Issue{Pointer: ptr, Line: at.Line, Column: at.Column, Message: fmt.Sprintf("a task must be an object, not %s", kindOf(n))})
		return t
	}
	var kindBuf [len(taskKindList)]string
	kinds := kindBuf[:0]
	for _, k := range taskKinds {
		if n.has(k) && !(k == "do" && n.has("for")) {
			kinds = append(kinds, k)
		}
	}
	switch len(kinds) {
	case 0:
		var unknown []string
		for _, e := range n.keys {
			if !contains(taskBase, e.key) {
				unknown = append(unknown, strconv.Quote(e.key))
			}
		}
		msg := "task has no kind: expected one of " + strings.Join(taskKinds, ", ")
		if len(unknown) > 0 {
			msg = "unknown task kind " + strings.Join(unknown, ", ") + ": expected one of " + strings.Join(taskKinds, ", ")
		}
		d.issues = append(d.issues, &Issue{Pointer: ptr, Line: at.Line, Column: at.Column, Message: msg})
		return t
	case 1:
	default:
		d.issues = append(d.issues, &Issue{Pointer: ptr, Line: at.Line, Column: at.Column, Message: "task has more than one kind: " + strings.Join(kinds, ", ")})
		return t
	}
	kind := kinds[0]
	shape := taskShapes[kind]
	var reqBuf [2]string
	required := append(reqBuf[:0], kind)
	switch kind {
	case "for":
		required = append(required, "do")
	case "try":
		required = append(required, "catch")
	case "call":
		if v := n.get("call"); v != nil && v.kind == kindString && (v.str == CallHTTP || v.str == CallOpenAPI) {
			required = append(required, "with")
		}
	}
	if !d.object(n, ptr, shape.what, shape.allowed, required...) {
		return t
	}
	t.If = d.exprStr(n, "if", ptr)
	if n.has("input") {
		t.Input = d.input(n.get("input"), join(ptr, "input"))
	}
	if n.has("output") {
		t.Output = d.output(n.get("output"), join(ptr, "output"))
	}
	if n.has("export") {
		t.Export = d.export(n.get("export"), join(ptr, "export"))
	}
	if n.has("timeout") {
		t.Timeout = d.timeout(n.get("timeout"), join(ptr, "timeout"))
	}
	t.Then = d.str(n, "then", ptr)
	t.Metadata = d.freeObject(n, "metadata", ptr)
	v := n.get(kind)
	kp := join(ptr, kind)
	switch kind {
	case "call":
		t.Call = d.call(n, ptr)
	case "do":
		t.Do = &DoTask{Tasks: d.taskList(v, kp)}
	case "fork":
		if d.object(v, kp, "fork", []string{"branches", "compete"}, "branches") {
			t.Fork = &ForkTask{Compete: d.boolean(v, "compete", kp)}
			if v.has("branches") {
				t.Fork.Branches = d.taskList(v.get("branches"), join(kp, "branches"))
			}
		}
	case "emit":
		t.Emit = d.emit(v, kp)
	case "for":
		t.For = d.forTask(n, ptr)
	case "listen":
		t.Listen = d.listen(n, ptr)
	case "raise":
		if d.object(v, kp, "raise", []string{"error"}, "error") && v.has("error") {
			t.Raise = &RaiseTask{Error: d.errorRef(v.get("error"), join(kp, "error"))}
		}
	case "run":
		t.Run = d.run(v, kp)
	case "set":
		switch kindOf(v) {
		case "string":
			t.Set = &SetTask{Expr: v.str}
			d.addExpr(kp, v.str)
		case "object":
			if len(v.keys) == 0 {
				d.fail(v, kp, "set must not be empty")
				break
			}
			d.scanExprs(v, kp)
			t.Set = &SetTask{Values: v.value().(map[string]any)}
		default:
			d.fail(v, kp, "set must be an object or a runtime expression, not %s", kindOf(v))
		}
	case "switch":
		t.Switch = d.switchTask(v, kp)
	case "try":
		t.Try = d.tryTask(n, ptr)
	case "wait":
		if dd := d.duration(v, kp); dd != nil {
			t.Wait = &WaitTask{Duration: *dd}
		}
	}
	return t
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (d *decoder) errorRef(n *node, ptr string) ErrorRef {
	if kindOf(n) == "string" {
		return ErrorRef{Ref: n.str}
	}
	if kindOf(n) != "object" {
		d.fail(n, ptr, "error must be an object or the name of a declared error, not %s", kindOf(n))
		return ErrorRef{}
	}
	return ErrorRef{Def: d.errorDef(n, ptr)}
}

func (d *decoder) call(n *node, ptr string) *CallTask {
	cv := n.get("call")
	if kindOf(cv) != "string" {
		d.fail(cv, join(ptr, "call"), "call must be a string, not %s", kindOf(cv))
		return nil
	}
	c := &CallTask{Call: cv.str}
	wp := join(ptr, "with")
	w := n.get("with")
	if n.has("with") {
		if !d.object(w, wp, "with", nil) {
			return c
		}
		c.With = w.value().(map[string]any)
	}
	switch c.Call {
	case CallHTTP:
		if w == nil {
			return c
		}
		if !d.object(w, wp, "http call arguments", []string{"method", "endpoint", "headers", "body", "query", "output", "redirect"}, "method", "endpoint") {
			return c
		}
		h := &HTTPArgs{Method: d.str(w, "method", wp), Output: d.enum(w, "output", wp, OutputRaw, OutputContent, OutputResponse), Redirect: d.boolean(w, "redirect", wp)}
		if w.has("endpoint") {
			h.Endpoint = d.endpoint(w.get("endpoint"), join(wp, "endpoint"))
		}
		h.Headers, h.HeadersExpr = d.stringMapOrExpr(w, "headers", wp)
		h.Query, h.QueryExpr = d.stringMapOrExpr(w, "query", wp)
		if w.has("body") {
			h.Body = w.get("body").value()
			d.scanExprs(w.get("body"), join(wp, "body"))
		}
		c.HTTP = h
	case CallOpenAPI:
		if w == nil {
			return c
		}
		if !d.object(w, wp, "openapi call arguments", []string{"document", "operationId", "parameters", "authentication", "output", "redirect"}, "document", "operationId") {
			return c
		}
		o := &OpenAPIArgs{OperationID: d.str(w, "operationId", wp), Parameters: d.freeObject(w, "parameters", wp), Output: d.enum(w, "output", wp, OutputRaw, OutputContent, OutputResponse), Redirect: d.boolean(w, "redirect", wp)}
		if w.has("document") {
			if r := d.externalResource(w.get("document"), join(wp, "document")); r != nil {
				o.Document = *r
			}
		}
		if w.has("parameters") {
			d.scanExprs(w.get("parameters"), join(wp, "parameters"))
		}
		if w.has("authentication") {
			o.Authentication = d.authRef(w.get("authentication"), join(wp, "authentication"))
		}
		c.OpenAPI = o
	case CallGRPC:
		if w != nil {
			c.GRPC = d.grpcArgs(w, wp)
		}
	case CallAsyncAPI, CallA2A, CallMCP:
		// Rejected as unsupported by Validate; arguments are kept raw.
	default:
		if w != nil {
			d.scanExprs(w, wp)
		}
	}
	return c
}

// stringMapOrExpr decodes headers or query: a map of strings or one runtime
// expression.
func (d *decoder) stringMapOrExpr(m *node, key, ptr string) (map[string]string, string) {
	v := m.get(key)
	if v == nil && !m.has(key) {
		return nil, ""
	}
	p := join(ptr, key)
	switch kindOf(v) {
	case "string":
		if !IsExpression(v.str) {
			d.fail(v, p, "%s must be an object or a runtime expression ${ ... }", key)
			return nil, ""
		}
		d.maybeExpr(v.str, p)
		return nil, v.str
	case "object":
		out := make(map[string]string, len(v.keys))
		for _, e := range v.keys {
			if e.val.kind != kindString {
				d.fail(e.val, join(p, e.key), "%s value %q must be a string, not %s", key, e.key, kindOf(e.val))
				continue
			}
			d.maybeExpr(e.val.str, join(p, e.key))
			out[e.key] = e.val.str
		}
		return out, ""
	}
	d.fail(v, p, "%s must be an object or a runtime expression, not %s", key, kindOf(v))
	return nil, ""
}

var eventAttrs = []string{"id", "source", "type", "time", "subject", "datacontenttype", "dataschema", "data"}

// eventProps decodes CloudEvent attributes (extension attributes allowed).
func (d *decoder) eventProps(n *node, ptr string) EventProperties {
	var e EventProperties
	if !d.object(n, ptr, "event properties", nil) {
		return e
	}
	e.ID = d.str(n, "id", ptr)
	if n.has("source") {
		e.Source = d.uriOrExpr(n.get("source"), join(ptr, "source"), "event source")
	}
	e.Type = d.str(n, "type", ptr)
	e.Time = d.str(n, "time", ptr)
	e.Subject = d.str(n, "subject", ptr)
	e.DataContentType = d.str(n, "datacontenttype", ptr)
	if n.has("dataschema") {
		e.DataSchema = d.uriOrExpr(n.get("dataschema"), join(ptr, "dataschema"), "event dataschema")
	}
	for _, f := range []struct{ key, val string }{{"id", e.ID}, {"type", e.Type}, {"time", e.Time}, {"subject", e.Subject}, {"datacontenttype", e.DataContentType}} {
		d.maybeExpr(f.val, join(ptr, f.key))
	}
	if n.has("data") {
		e.Data = n.get("data").value()
		d.scanExprs(n.get("data"), join(ptr, "data"))
	}
	for _, kv := range n.keys {
		if !contains(eventAttrs, kv.key) {
			if e.Extensions == nil {
				e.Extensions = map[string]any{}
			}
			e.Extensions[kv.key] = kv.val.value()
			d.scanExprs(kv.val, join(ptr, kv.key))
		}
	}
	return e
}

func (d *decoder) emit(n *node, ptr string) *EmitTask {
	if !d.object(n, ptr, "emit", []string{"event"}, "event") || !n.has("event") {
		return nil
	}
	ev := n.get("event")
	ep := join(ptr, "event")
	if !d.object(ev, ep, "emit event", nil) {
		return nil
	}
	em := &EmitTask{}
	if ev.has("with") {
		wp := join(ep, "with")
		w := ev.get("with")
		if d.object(w, wp, "event", nil, "source", "type") {
			em.Event = d.eventProps(w, wp)
		}
	}
	return em
}

func (d *decoder) forTask(n *node, ptr string) *ForTask {
	fv := n.get("for")
	fp := join(ptr, "for")
	f := &ForTask{}
	if d.object(fv, fp, "for", []string{"each", "in", "at"}, "in") {
		f.Each = d.str(fv, "each", fp)
		f.In = d.exprStr(fv, "in", fp)
		f.At = d.str(fv, "at", fp)
	}
	pop := d.push(orDefault(f.Each, "item"), orDefault(f.At, "index"))
	defer pop()
	f.While = d.exprStr(n, "while", ptr)
	if n.has("do") {
		f.Do = d.taskList(n.get("do"), join(ptr, "do"))
	}
	return f
}

func (d *decoder) listen(n *node, ptr string) *ListenTask {
	lv := n.get("listen")
	lp := join(ptr, "listen")
	if !d.object(lv, lp, "listen", []string{"to", "read"}, "to") {
		return nil
	}
	l := &ListenTask{Read: d.enum(lv, "read", lp, "data", "envelope", "raw")}
	if lv.has("to") {
		if s := d.consumption(lv.get("to"), join(lp, "to"), true); s != nil {
			l.To = *s
		}
	}
	if n.has("foreach") {
		l.Foreach = d.iterator(n.get("foreach"), join(ptr, "foreach"))
	}
	return l
}

func (d *decoder) iterator(n *node, ptr string) *SubscriptionIterator {
	if !d.object(n, ptr, "foreach", []string{"item", "at", "do", "output", "export"}) {
		return nil
	}
	it := &SubscriptionIterator{Item: d.str(n, "item", ptr), At: d.str(n, "at", ptr)}
	pop := d.push(orDefault(it.Item, "item"), orDefault(it.At, "index"))
	defer pop()
	if n.has("do") {
		it.Do = d.taskList(n.get("do"), join(ptr, "do"))
	}
	if n.has("output") {
		it.Output = d.output(n.get("output"), join(ptr, "output"))
	}
	if n.has("export") {
		it.Export = d.export(n.get("export"), join(ptr, "export"))
	}
	return it
}

// consumption decodes an event consumption strategy; until is allowed only
// at the outer level.
func (d *decoder) consumption(n *node, ptr string, allowUntil bool) *ConsumptionStrategy {
	allowed := []string{"all", "any", "one"}
	if allowUntil {
		allowed = append(allowed, "until")
	}
	if !d.object(n, ptr, "event consumption strategy", allowed) {
		return nil
	}
	var modes []string
	for _, k := range []string{"all", "any", "one"} {
		if n.has(k) {
			modes = append(modes, k)
		}
	}
	if len(modes) != 1 {
		d.fail(n, ptr, "an event consumption strategy must have exactly one of all, any, one")
		return nil
	}
	s := &ConsumptionStrategy{}
	mode := modes[0]
	mp := join(ptr, mode)
	switch mode {
	case "one":
		s.One = d.eventFilter(n.get("one"), mp)
	case "all", "any":
		v := n.get(mode)
		if kindOf(v) != "array" {
			d.fail(v, mp, "%s must be an array of event filters, not %s", mode, kindOf(v))
			return nil
		}
		fs := make([]EventFilter, 0, len(v.items))
		for i, it := range v.items {
			if f := d.eventFilter(it, idx(mp, i)); f != nil {
				fs = append(fs, *f)
			}
		}
		if mode == "all" {
			s.All = fs
		} else {
			s.Any = fs
		}
	}
	if n.has("until") {
		up := join(ptr, "until")
		if mode != "any" {
			d.failKey(n, "until", up, "until is allowed only with any")
			return s
		}
		u := n.get("until")
		switch kindOf(u) {
		case "string":
			s.Until = &Until{Expr: u.str}
			d.addExpr(up, u.str)
		case "object":
			s.Until = &Until{Strategy: d.consumption(u, up, false)}
		default:
			d.fail(u, up, "until must be a runtime expression or an event consumption strategy, not %s", kindOf(u))
		}
	}
	return s
}

func (d *decoder) eventFilter(n *node, ptr string) *EventFilter {
	if !d.object(n, ptr, "event filter", []string{"with", "correlate"}, "with") {
		return nil
	}
	f := &EventFilter{}
	if w := n.get("with"); n.has("with") {
		wp := join(ptr, "with")
		if d.object(w, wp, "event filter with", nil) {
			if len(w.keys) == 0 {
				d.fail(w, wp, "an event filter needs at least one attribute")
			}
			d.eventProps(w, wp)
			f.With = w.value().(map[string]any)
		}
	}
	if c := n.get("correlate"); n.has("correlate") {
		cp := join(ptr, "correlate")
		if d.object(c, cp, "correlate", nil) {
			f.Correlate = map[string]Correlation{}
			for _, e := range c.keys {
				ep := join(cp, e.key)
				if !d.object(e.val, ep, "correlation", nil, "from") {
					continue
				}
				corr := Correlation{From: d.exprStr(e.val, "from", ep), Expect: d.str(e.val, "expect", ep)}
				d.maybeExpr(corr.Expect, join(ep, "expect"))
				f.Correlate[e.key] = corr
			}
		}
	}
	return f
}

func (d *decoder) run(n *node, ptr string) *RunTask {
	if !d.object(n, ptr, "run", []string{"await", "return", "container", "script", "shell", "workflow"}) {
		return nil
	}
	r := &RunTask{Await: true, Return: "stdout"}
	if n.has("await") {
		r.Await = d.boolean(n, "await", ptr)
	}
	if n.has("return") {
		r.Return = d.enum(n, "return", ptr, "stdout", "stderr", "code", "all", "none")
	}
	var kinds []string
	for _, k := range []string{"container", "script", "shell", "workflow"} {
		if n.has(k) {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		d.fail(n, ptr, "run must have exactly one of container, script, shell, workflow")
		return r
	}
	switch k := kinds[0]; k {
	case "workflow":
		wp := join(ptr, "workflow")
		w := n.get("workflow")
		if d.object(w, wp, "run workflow", []string{"namespace", "name", "version", "input"}, "namespace", "name", "version") {
			r.Workflow = &SubflowRef{Namespace: d.str(w, "namespace", wp), Name: d.str(w, "name", wp), Version: d.str(w, "version", wp), Input: d.freeObject(w, "input", wp)}
			if w.has("input") {
				d.scanExprs(w.get("input"), join(wp, "input"))
			}
		}
	default:
		m := d.freeObject(n, k, ptr)
		if m == nil {
			m = map[string]any{}
		}
		switch k {
		case "container":
			r.Container = m
		case "script":
			r.Script = m
			if kindOf(n.get(k)) == "object" {
				r.ScriptProcess = d.script(n.get(k), join(ptr, k))
			}
		case "shell":
			r.Shell = m
		}
	}
	return r
}

func (d *decoder) switchTask(n *node, ptr string) *SwitchTask {
	if kindOf(n) != "array" {
		d.fail(n, ptr, "switch must be an array of named cases, not %s", kindOf(n))
		return nil
	}
	if len(n.items) == 0 {
		d.fail(n, ptr, "switch needs at least one case")
		return nil
	}
	s := &SwitchTask{}
	for i, it := range n.items {
		ip := idx(ptr, i)
		if kindOf(it) != "object" || len(it.keys) != 1 {
			d.fail(it, ip, "a switch item must be an object with exactly one named case")
			continue
		}
		e := it.keys[0]
		cp := join(ip, e.key)
		if !d.object(e.val, cp, "switch case", []string{"when", "then"}, "then") {
			continue
		}
		s.Cases = append(s.Cases, SwitchCase{Name: e.key, When: d.exprStr(e.val, "when", cp), Then: d.str(e.val, "then", cp)})
	}
	return s
}

func (d *decoder) tryTask(n *node, ptr string) *TryTask {
	t := &TryTask{}
	if n.has("try") {
		t.Try = d.taskList(n.get("try"), join(ptr, "try"))
	}
	cv := n.get("catch")
	cp := join(ptr, "catch")
	if !n.has("catch") || !d.object(cv, cp, "catch", []string{"errors", "as", "when", "exceptWhen", "retry", "do"}) {
		return t
	}
	c := &t.Catch
	c.As = d.str(cv, "as", cp)
	pop := d.push(orDefault(c.As, "error"))
	defer pop()
	c.When = d.exprStr(cv, "when", cp)
	c.ExceptWhen = d.exprStr(cv, "exceptWhen", cp)
	if ev := cv.get("errors"); cv.has("errors") {
		ep := join(cp, "errors")
		if d.object(ev, ep, "catch errors", nil) {
			c.Errors = &ErrorFilter{}
			if w := ev.get("with"); ev.has("with") {
				wp := join(ep, "with")
				if d.object(w, wp, "error filter", nil) {
					if len(w.keys) == 0 {
						d.fail(w, wp, "an error filter needs at least one property")
					}
					c.Errors = &ErrorFilter{Type: d.str(w, "type", wp), Status: int(d.integer(w, "status", wp)), Instance: d.str(w, "instance", wp), Title: d.str(w, "title", wp), Details: d.str(w, "details", wp)}
				}
			}
		}
	}
	if rv := cv.get("retry"); cv.has("retry") {
		rp := join(cp, "retry")
		switch kindOf(rv) {
		case "string":
			c.Retry = &RetryRef{Ref: rv.str}
		case "object":
			c.Retry = &RetryRef{Policy: d.retryPolicy(rv, rp)}
		default:
			d.fail(rv, rp, "retry must be a retry policy or the name of a declared one, not %s", kindOf(rv))
		}
	}
	if cv.has("do") {
		c.Do = d.taskList(cv.get("do"), join(cp, "do"))
	}
	return t
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
