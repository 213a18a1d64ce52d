package dsl

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/knhk/knhk/shared/workflow/expr"
)

// Validate applies the rules the official schema cannot express to a
// workflow returned by Parse: document.dsl is 1.0.x; every reference to a
// function, error, retry policy, timeout, authentication policy or secret is
// declared under `use`; every `then` names a sibling task or a flow
// directive; task names are unique within their list; every runtime
// expression compiles, using only variables in scope; unsupported features
// are rejected with a message starting "unsupported:". It returns the issues
// in document order; none means the workflow can run. The expressions
// checked are those Parse found, so Validate is meant for parsed workflows.
func Validate(w *Workflow) []*Issue {
	if w == nil {
		return []*Issue{{Message: "no workflow"}}
	}
	v := &validator{w: w}
	v.document()
	v.use()
	if w.Timeout != nil {
		v.timeoutRef(w.Timeout, "/timeout")
	}
	if w.Schedule != nil {
		v.add("/schedule", "unsupported: schedule (cases are started by sending a start message)")
	}
	if w.Evaluate != nil {
		if w.Evaluate.Language != "" && w.Evaluate.Language != "jq" {
			v.add("/evaluate/language", fmt.Sprintf("unsupported: expression language %q (only jq)", w.Evaluate.Language))
		}
		if w.Evaluate.Mode == "loose" {
			v.add("/evaluate/mode", "unsupported: loose evaluation mode (expressions must be written ${ ... })")
		}
	}
	if len(w.Do) == 0 {
		v.add("/do", "the workflow has no tasks")
	}
	v.list(w.Do, "/do")
	for _, e := range w.exprs {
		if err := compileExpr(e.src, e.extra); err != nil {
			v.add(e.ptr, fmt.Sprintf("invalid runtime expression: %v", err))
		}
	}
	return sortIssues(v.issues)
}

// compileExpr checks that a runtime expression compiles with the given
// extra variables in scope. Outcomes are remembered: executors and the
// registry validate the same descriptors again and again.
func compileExpr(src string, extra []string) error {
	key := src
	if len(extra) > 0 {
		key = src + "\x00" + strings.Join(extra, "\x00")
	}
	if err, ok := checked.get(key); ok {
		return err
	}
	_, err := expr.Compile(src, extra...)
	checked.put(key, err)
	return err
}

// outcomeCache is a bounded map of expression check outcomes; it is cleared
// when full, which keeps memory bounded under hostile input.
type outcomeCache struct {
	mu sync.RWMutex
	m  map[string]error
}

// maxCachedExprs bounds the outcome cache.
const maxCachedExprs = 8192

var checked outcomeCache

func (c *outcomeCache) get(key string) (error, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	err, ok := c.m[key]
	return err, ok
}

func (c *outcomeCache) put(key string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedExprs {
		c.m = make(map[string]error, 256)
	}
	c.m[key] = err
}

type validator struct {
	w      *Workflow
	issues []*Issue
}

// add records an issue at ptr, positioned at the nearest node of the source.
func (v *validator) add(ptr, msg string) {
	p := ptr
	pos, ok := v.w.Position(p)
	for !ok && p != "" {
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
		pos, ok = v.w.Position(p)
	}
	v.issues = append(v.issues, &Issue{Pointer: ptr, Line: pos.Line, Column: pos.Column, Message: msg})
}

// releasedDSL matches the DSL versions the runtime implements: the 1.0.x
// releases, without pre-release or build suffixes (1.0.0-alpha5 and
// 1.0.0-rc1 describe drafts whose schemas differ).
var releasedDSL = regexp.MustCompile(`^1\.0\.(0|[1-9][0-9]*)$`)

func (v *validator) document() {
	dsl := v.w.Document.DSL
	if !releasedDSL.MatchString(dsl) {
		v.add("/document/dsl", fmt.Sprintf("unsupported: DSL version %q (KNHK runs the 1.0.x releases, not pre-releases)", dsl))
	}
}

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (v *validator) use() {
	u := v.w.Use
	for _, name := range sortedKeys(u.Authentications) {
		v.policy(u.Authentications[name], join("/use/authentications", name))
	}
	for i, e := range u.Extensions {
		v.add(join(idx("/use/extensions", i), e.Name), "unsupported: extensions")
	}
	for _, name := range sortedKeys(u.Catalogs) {
		v.add(join("/use/catalogs", name), "unsupported: catalogs")
	}
	for _, name := range sortedKeys(u.Functions) {
		p := join("/use/functions", name)
		t := u.Functions[name]
		if t == nil {
			continue
		}
		if t.Call != nil && t.Call.HTTP == nil && t.Call.OpenAPI == nil && t.Call.GRPC == nil {
			v.add(join(p, "call"), "unsupported: a function that calls another function")
		}
		v.task(t, p, nil)
	}
	for _, name := range sortedKeys(u.Retries) {
		v.retry(u.Retries[name], join("/use/retries", name))
	}
}

// policy checks an authentication policy is supported and its secret
// declared.
func (v *validator) policy(a *AuthenticationPolicy, ptr string) {
	if a == nil {
		return
	}
	switch a.Scheme {
	case AuthBasic, AuthBearer:
	case AuthOAuth2, AuthOIDC:
		v.oauth2Policy(a, ptr)
	default:
		v.add(join(ptr, a.Scheme), fmt.Sprintf("unsupported: %s authentication (KNHK supports basic, bearer, oauth2 and oidc)", a.Scheme))
		return
	}
	if a.Secret != "" && !contains(v.w.Use.Secrets, a.Secret) {
		v.add(join(join(ptr, a.Scheme), "use"), fmt.Sprintf("secret %q is not declared under use.secrets", a.Secret))
	}
}

func (v *validator) authRef(a *AuthRef, ptr string) {
	if a == nil {
		return
	}
	if a.Use != "" {
		if _, ok := v.w.Use.Authentications[a.Use]; !ok {
			v.add(join(ptr, "use"), fmt.Sprintf("authentication %q is not declared under use.authentications", a.Use))
		}
		return
	}
	v.policy(a.Policy, ptr)
}

func (v *validator) timeoutRef(t *Timeout, ptr string) {
	if t.Ref == "" {
		return
	}
	if _, ok := v.w.Use.Timeouts[t.Ref]; !ok {
		v.add(ptr, fmt.Sprintf("timeout %q is not declared under use.timeouts", t.Ref))
	}
}

func (v *validator) retry(r *RetryPolicy, ptr string) {
	if r == nil || r.Jitter == nil {
		return
	}
	if r.Jitter.From.Expr == "" && r.Jitter.To.Expr == "" && r.Jitter.From.Value > r.Jitter.To.Value {
		v.add(join(ptr, "jitter"), "jitter.from must not be greater than jitter.to")
	}
}

// list checks a task list: unique names, then each task.
func (v *validator) list(l TaskList, ptr string) {
	names := make(map[string]bool, len(l))
	for i, nt := range l {
		p := join(idx(ptr, i), nt.Name)
		if names[nt.Name] {
			v.add(p, fmt.Sprintf("duplicate task name %q in this list", nt.Name))
		}
		names[nt.Name] = true
	}
	for i, nt := range l {
		v.task(nt.Task, join(idx(ptr, i), nt.Name), names)
	}
}

// flow checks a flow directive: a directive keyword or a sibling task.
func (v *validator) flow(then, ptr string, siblings map[string]bool) {
	switch then {
	case "", FlowContinue, FlowExit, FlowEnd:
		return
	}
	if siblings == nil {
		v.add(ptr, fmt.Sprintf("then %q: only continue, exit or end are allowed here", then))
		return
	}
	if !siblings[then] {
		v.add(ptr, fmt.Sprintf("then %q: no task of that name in the same task list (or use continue, exit, end)", then))
	}
}

// task checks one task; siblings are the names of its list (nil for a
// function definition).
func (v *validator) task(t *Task, ptr string, siblings map[string]bool) {
	if t == nil {
		return
	}
	v.flow(t.Then, join(ptr, "then"), siblings)
	if t.Timeout != nil {
		v.timeoutRef(t.Timeout, join(ptr, "timeout"))
	}
	switch {
	case t.Call != nil:
		v.call(t.Call, ptr)
	case t.Do != nil:
		v.list(t.Do.Tasks, join(ptr, "do"))
	case t.Fork != nil:
		v.list(t.Fork.Branches, join(join(ptr, "fork"), "branches"))
	case t.For != nil:
		v.list(t.For.Do, join(ptr, "do"))
	case t.Listen != nil:
		if t.Listen.Foreach != nil {
			v.add(join(ptr, "foreach"), "unsupported: listen.foreach (process the listen task's output with a for task)")
			v.list(t.Listen.Foreach.Do, join(join(ptr, "foreach"), "do"))
		}
	case t.Emit != nil:
		if t.Emit.Event.Type == "" || t.Emit.Event.Source == "" {
			v.add(join(join(ptr, "emit"), "event"), "an emitted event needs with.source and with.type")
		}
	case t.Raise != nil:
		if ref := t.Raise.Error.Ref; ref != "" {
			if _, ok := v.w.Use.Errors[ref]; !ok {
				v.add(join(join(ptr, "raise"), "error"), fmt.Sprintf("error %q is not declared under use.errors", ref))
			}
		}
	case t.Run != nil:
		rp := join(ptr, "run")
		switch {
		case t.Run.Container != nil:
			v.add(join(rp, "container"), "unsupported: run container (no container runtime on Lambda)")
		case t.Run.Shell != nil:
			v.add(join(rp, "shell"), "unsupported: run shell")
		case t.Run.Script != nil:
			v.script(t.Run, join(rp, "script"))
		case t.Run.Workflow != nil && !t.Run.Await:
			v.add(join(rp, "await"), "unsupported: await false for a workflow (KNHK runs a sub-workflow inline, in the case's chain, and its output is the task's output)")
		}
	case t.Switch != nil:
		for i, c := range t.Switch.Cases {
			v.flow(c.Then, join(join(idx(join(ptr, "switch"), i), c.Name), "then"), siblings)
		}
	case t.Try != nil:
		v.list(t.Try.Try, join(ptr, "try"))
		cp := join(ptr, "catch")
		if r := t.Try.Catch.Retry; r != nil {
			if r.Ref != "" {
				if _, ok := v.w.Use.Retries[r.Ref]; !ok {
					v.add(join(cp, "retry"), fmt.Sprintf("retry policy %q is not declared under use.retries", r.Ref))
				}
			} else {
				v.retry(r.Policy, join(cp, "retry"))
			}
		}
		v.list(t.Try.Catch.Do, join(cp, "do"))
	}
}

func (v *validator) call(c *CallTask, ptr string) {
	cp := join(ptr, "call")
	wp := join(ptr, "with")
	switch c.Call {
	case CallHTTP:
		if c.HTTP != nil {
			v.authRef(c.HTTP.Endpoint.Authentication, join(join(wp, "endpoint"), "authentication"))
		}
	case CallOpenAPI:
		if c.OpenAPI != nil {
			v.authRef(c.OpenAPI.Document.Endpoint.Authentication, join(join(join(wp, "document"), "endpoint"), "authentication"))
			v.authRef(c.OpenAPI.Authentication, join(wp, "authentication"))
		}
	case CallGRPC:
		if c.GRPC != nil {
			v.authRef(c.GRPC.Proto.Endpoint.Authentication, join(join(join(wp, "proto"), "endpoint"), "authentication"))
			v.authRef(c.GRPC.Service.Authentication, join(join(wp, "service"), "authentication"))
		}
	case CallAsyncAPI, CallA2A, CallMCP:
		v.add(cp, fmt.Sprintf("unsupported: call %s (KNHK calls http, openapi, grpc and declared functions)", c.Call))
	case BuiltinValidateSchema:
	default:
		if name, catalog, ok := strings.Cut(c.Call, "@"); ok {
			v.add(cp, fmt.Sprintf("unsupported: function %q from catalog %q (catalogs are not supported)", name, catalog))
			return
		}
		if _, ok := v.w.Use.Functions[c.Call]; !ok {
			v.add(cp, fmt.Sprintf("function %q is not declared under use.functions", c.Call))
		}
	}
}
