package engine

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/engine/grpccall"
	"github.com/knhk/knhk/shared/workflow/engine/httpcall"
	"github.com/knhk/knhk/shared/workflow/engine/script"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// Performer performs the calls a decision asks for (HTTP, OpenAPI, gRPC
// and scripts) and returns each one's output or DSL error. It is shell:
// the in-process Run and the executor share it.
type Performer struct {
	HTTP    *httpcall.Client
	GRPC    *grpccall.Client
	Scripts *script.Runner
}

// NewPerformer fills in what is missing: gRPC calls fetch proto files with
// the HTTP client's transport and resolve tokens with its token cache.
func NewPerformer(h *httpcall.Client, g *grpccall.Client, s *script.Runner) *Performer {
	if h == nil {
		h = &httpcall.Client{}
	}
	if g == nil {
		g = &grpccall.Client{}
	}
	if g.HTTP == nil {
		g.HTTP = h.HTTP
	}
	if g.Auth == nil {
		g.Auth = h
	}
	if s == nil {
		s = &script.Runner{}
	}
	return &Performer{HTTP: h, GRPC: g, Scripts: s}
}

// IsCall reports whether the shell performs e and feeds a result back.
func (e Effect) IsCall() bool {
	switch e.Kind {
	case EffectHTTP, EffectOpenAPI, EffectGRPC, EffectScript:
		return true
	}
	return false
}

// Perform performs the call e with the idempotency key the shell derived
// for it ("" for none; scripts have no other party to tell).
func (p *Performer) Perform(ctx context.Context, e Effect, idempotencyKey string) (any, *history.Error) {
	switch {
	case e.Kind == EffectHTTP && e.HTTP != nil:
		r := *e.HTTP
		r.IdempotencyKey = idempotencyKey
		return p.HTTP.Do(ctx, r)
	case e.Kind == EffectOpenAPI && e.OpenAPI != nil:
		r := *e.OpenAPI
		r.IdempotencyKey = idempotencyKey
		return p.HTTP.DoOpenAPI(ctx, r)
	case e.Kind == EffectGRPC && e.GRPC != nil:
		r := *e.GRPC
		r.IdempotencyKey = idempotencyKey
		return p.GRPC.Do(ctx, r)
	case e.Kind == EffectScript && e.Script != nil:
		return p.Scripts.Run(ctx, *e.Script)
	}
	return nil, Problem(ErrConfiguration, e.Task, "no call to perform for effect %s (%s)", e.ID, e.Kind)
}

// recorded is the form of a call effect's request the history records:
// without credentials.
func (e Effect) recorded() any {
	switch e.Kind {
	case EffectHTTP:
		return e.HTTP.Redacted()
	case EffectOpenAPI:
		return e.OpenAPI.Redacted()
	case EffectGRPC:
		return e.GRPC.Redacted()
	case EffectScript:
		return e.Script
	}
	return nil
}

// grpcSpec is a compiled gRPC call.
type grpcSpec struct {
	proto   string
	service string
	host    string
	port    int
	method  string
	args    *expr.Template
}

func (c *compiler) grpc(n *node, a *dsl.GRPCArgs, extra []string) error {
	if a == nil {
		return fmt.Errorf("grpc call without arguments")
	}
	gs := &grpcSpec{proto: a.Proto.Endpoint.URI, service: a.Service.Name, host: a.Service.Host, port: a.Service.Port, method: a.Method}
	var err error
	if gs.args, err = expr.CompileTemplateCached(&c.p.cache, a.Arguments, extra...); err != nil {
		return err
	}
	cs := &callSpec{kind: callGRPC, grpc: gs}
	if cs.auth, err = c.auth(a.Service.Authentication, extra); err != nil {
		return err
	}
	n.call = cs
	return nil
}

func (w *walker) renderGRPC(n *node, in val, sc scope) (*grpccall.Request, *history.Error) {
	gs := n.call.grpc
	req := &grpccall.Request{Proto: gs.proto, Service: gs.service, Host: gs.host, Port: gs.port, Method: gs.method}
	if gs.args != nil {
		v, err := w.eval(gs.args, n, in, in, val{}, sc)
		if err != nil {
			return nil, err
		}
		m, ok := v.(map[string]any)
		if !ok && v != nil {
			return nil, Problem(ErrExpression, n.ptr, "grpc arguments must be an object, got %T", v)
		}
		req.Arguments = m
	}
	var err *history.Error
	if req.Auth, err = w.renderAuth(n.call.auth, n, in, sc); err != nil {
		return nil, err
	}
	return req, nil
}

// scriptSpec is a compiled `run: script` task.
type scriptSpec struct {
	language string
	code     string
	ret      string
	args     *expr.Template
	env      *expr.Template
	stdin    *expr.Template
}

func (c *compiler) script(n *node, r *dsl.RunTask, extra []string) error {
	s := r.ScriptProcess
	if s.Language != dsl.LanguageJS {
		return fmt.Errorf("unsupported: script language %q (KNHK runs js)", s.Language)
	}
	if s.Source != nil {
		return fmt.Errorf("unsupported: scripts from an external source")
	}
	if !r.Await {
		return fmt.Errorf("unsupported: await false for a script")
	}
	ss := &scriptSpec{language: s.Language, code: s.Code, ret: r.Return}
	var err error
	if ss.args, err = expr.CompileTemplateCached(&c.p.cache, s.Arguments, extra...); err != nil {
		return err
	}
	if ss.env, err = expr.CompileTemplateCached(&c.p.cache, s.Environment, extra...); err != nil {
		return err
	}
	if s.Stdin != "" {
		if ss.stdin, err = expr.CompileTemplateCached(&c.p.cache, s.Stdin, extra...); err != nil {
			return err
		}
	}
	n.call = &callSpec{kind: callScript, script: ss}
	return nil
}

func (w *walker) renderScript(key string, n *node, in val, sc scope) (*script.Request, *history.Error) {
	ss := n.call.script
	// The clock and the random source are the case's own: the case's start
	// time, and a seed derived from the case and the task occurrence, so
	// every run of this occurrence (a redrive too) gives the same result.
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%s", w.st.CaseID, key)
	req := &script.Request{Language: ss.language, Code: ss.code, Return: ss.ret, Time: w.st.StartedAt.UTC(), Seed: h.Sum64(),
		Timeout: w.timeLeft(key, n)}
	if ss.args != nil {
		v, err := w.eval(ss.args, n, in, in, val{}, sc)
		if err != nil {
			return nil, err
		}
		req.Arguments = v
	}
	if ss.env != nil {
		v, err := w.eval(ss.env, n, in, in, val{}, sc)
		if err != nil {
			return nil, err
		}
		req.Environment, _ = v.(map[string]any)
	}
	if ss.stdin != nil {
		v, err := w.eval(ss.stdin, n, in, in, val{}, sc)
		if err != nil {
			return nil, err
		}
		req.Stdin = scalarString(v)
	}
	return req, nil
}

// timeLeft is what is left of task n's own timeout at this decision: the
// deadline the shell gives the call (0: none).
func (w *walker) timeLeft(key string, n *node) time.Duration {
	if n.t.Timeout == nil {
		return 0
	}
	if tm := w.st.Timers[key+"~timeout"]; tm != nil {
		if left := tm.Due.Sub(w.now); left > 0 {
			return left
		}
		return time.Millisecond
	}
	d, err := w.timeoutDuration(n.t.Timeout)
	if err != nil {
		return 0
	}
	return d
}
