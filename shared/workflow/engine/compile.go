package engine

import (
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// Program is a workflow descriptor compiled for execution: every
// expression and schema is compiled once. It is immutable and safe for
// concurrent use.
type Program struct {
	wf      *dsl.Workflow
	root    *list
	input   *dataFlow
	output  *dataFlow
	timeout *dsl.Timeout
	cache   expr.Cache
	defJSON map[string]any // the document section, for $workflow.definition
	mu      sync.Mutex
	subs    map[*dsl.Workflow]*Program // compiled sub-workflows
}

// list is a compiled task list.
type list struct {
	nodes []*node
	index map[string]int
}

// dataFlow holds a compiled input/output/export transformation.
type dataFlow struct {
	tpl    *expr.Template // nil: identity
	schema *jsonschema.Schema
}

// node is a compiled task.
type node struct {
	name string
	ptr  string
	t    *dsl.Task
	kind dsl.Kind

	cfgErr *history.Error // set when the task cannot run (unsupported, bad expression)

	ifx    *expr.Expr
	input  *dataFlow
	output *dataFlow
	export *dataFlow

	set     *expr.Template
	body    *list // do, for, try, function body
	catch   *list
	cases   []switchCase
	forIn   *expr.Expr
	while   *expr.Expr
	each    string
	at      string
	catchAs string
	when    *expr.Expr // catch.when
	except  *expr.Expr // catch.exceptWhen
	retry   *dsl.RetryPolicy
	retryW  *expr.Expr
	retryX  *expr.Expr
	with    *expr.Template // call arguments
	call    *callSpec
	emit    *expr.Template
	raise   *raiseSpec
	listen  *listenSpec
	fn      *node // the function a call invokes
	uri     *expr.Template
	run     *dsl.SubflowRef
	runWith *expr.Template
}

type switchCase struct {
	name string
	when *expr.Expr // nil: default
	then string
}

// Compile compiles wf. Problems that only matter when a task runs (an
// unsupported feature, a malformed expression, an unknown function) do not
// fail compilation: the task faults with a configuration or expression
// error when reached.
func Compile(wf *dsl.Workflow) (*Program, error) {
	if wf == nil {
		return nil, fmt.Errorf("compile: nil workflow")
	}
	p := &Program{wf: wf, timeout: wf.Timeout}
	c := &compiler{p: p, fns: map[string]*node{}}
	p.root = c.list(wf.Do, "", nil)
	var err error
	if wf.Input != nil {
		if p.input, err = c.flow(wf.Input.From, wf.Input.Schema, nil); err != nil {
			return nil, fmt.Errorf("compile workflow input: %w", err)
		}
	}
	if wf.Output != nil {
		if p.output, err = c.flow(wf.Output.As, wf.Output.Schema, nil); err != nil {
			return nil, fmt.Errorf("compile workflow output: %w", err)
		}
	}
	p.defJSON = map[string]any{
		"document": map[string]any{
			"dsl":       wf.Document.DSL,
			"namespace": wf.Document.Namespace,
			"name":      wf.Document.Name,
			"version":   wf.Document.Version,
		},
	}
	return p, nil
}

// Workflow returns the descriptor p was compiled from.
func (p *Program) Workflow() *dsl.Workflow { return p.wf }

var programs sync.Map // *dsl.Workflow -> *Program

// programFor returns the cached compiled form of wf.
func programFor(wf *dsl.Workflow) (*Program, error) {
	if p, ok := programs.Load(wf); ok {
		return p.(*Program), nil
	}
	p, err := Compile(wf)
	if err != nil {
		return nil, err
	}
	actual, _ := programs.LoadOrStore(wf, p)
	return actual.(*Program), nil
}

type compiler struct {
	p   *Program
	fns map[string]*node // compiled use.functions, by name
}

// list compiles a task list; extra are the variable names in scope.
func (c *compiler) list(tl dsl.TaskList, base string, extra []string) *list {
	l := &list{nodes: make([]*node, len(tl)), index: make(map[string]int, len(tl))}
	for i, nt := range tl {
		l.nodes[i] = c.node(nt, fmt.Sprintf("%s/%d/%s", base, i, escapePtr(nt.Name)), extra)
		l.index[nt.Name] = i
	}
	return l
}

func escapePtr(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func (c *compiler) flow(v any, schema *dsl.Schema, extra []string) (*dataFlow, error) {
	f := &dataFlow{}
	if v != nil {
		if s, ok := v.(string); ok {
			v = "${ " + expr.Unwrap(s) + " }"
		}
		tpl, err := expr.CompileTemplateCached(&c.p.cache, v, extra...)
		if err != nil {
			return nil, err
		}
		f.tpl = tpl
	}
	if schema != nil {
		s, err := compileSchema(schema)
		if err != nil {
			return nil, err
		}
		f.schema = s
	}
	return f, nil
}

func compileSchema(s *dsl.Schema) (*jsonschema.Schema, error) {
	if s.Format != "" && !strings.HasPrefix(s.Format, "json") {
		return nil, fmt.Errorf("unsupported schema format %q", s.Format)
	}
	if s.Document == nil {
		return nil, fmt.Errorf("external schema resources are not supported")
	}
	return compileSchemaDoc(s.Document)
}

func compileSchemaDoc(doc any) (*jsonschema.Schema, error) {
	jc := jsonschema.NewCompiler()
	if err := jc.AddResource("mem:///schema.json", expr.Normalize(doc)); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	s, err := jc.Compile("mem:///schema.json")
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	return s, nil
}

func (c *compiler) expr(src string, extra []string) (*expr.Expr, error) {
	if src == "" {
		return nil, nil
	}
	return c.p.cache.Compile(src, extra...)
}

// node compiles one task at pointer ptr.
func (c *compiler) node(nt dsl.NamedTask, ptr string, extra []string) *node {
	t := nt.Task
	n := &node{name: nt.Name, ptr: ptr, t: t}
	if t == nil {
		n.cfgErr = Problem(ErrConfiguration, ptr, "task %q has no definition", nt.Name)
		return n
	}
	if t.Pointer != "" {
		n.ptr = t.Pointer
		ptr = t.Pointer
	}
	n.kind = t.Kind()
	fail := func(typ string, err error) *node {
		if n.cfgErr == nil {
			n.cfgErr = Problem(typ, ptr, "%v", err)
		}
		return n
	}
	var err error
	if n.ifx, err = c.expr(t.If, extra); err != nil {
		return fail(ErrExpression, err)
	}
	if t.Input != nil {
		if n.input, err = c.flow(t.Input.From, t.Input.Schema, extra); err != nil {
			return fail(ErrConfiguration, err)
		}
	}
	if t.Output != nil {
		if n.output, err = c.flow(t.Output.As, t.Output.Schema, extra); err != nil {
			return fail(ErrConfiguration, err)
		}
	}
	if t.Export != nil {
		if n.export, err = c.flow(t.Export.As, t.Export.Schema, extra); err != nil {
			return fail(ErrConfiguration, err)
		}
	}
	switch n.kind {
	case dsl.KindSet:
		if t.Set.Expr != "" {
			n.set, err = expr.CompileTemplateCached(&c.p.cache, "${ "+expr.Unwrap(t.Set.Expr)+" }", extra...)
		} else {
			n.set, err = expr.CompileTemplateCached(&c.p.cache, t.Set.Values, extra...)
		}
		if err != nil {
			return fail(ErrExpression, err)
		}
	case dsl.KindDo:
		n.body = c.list(t.Do.Tasks, ptr+"/do", extra)
	case dsl.KindFork:
		n.body = c.list(t.Fork.Branches, ptr+"/fork/branches", extra)
	case dsl.KindSwitch:
		for _, sc := range t.Switch.Cases {
			cs := switchCase{name: sc.Name, then: sc.Then}
			if cs.when, err = c.expr(sc.When, extra); err != nil {
				return fail(ErrExpression, err)
			}
			n.cases = append(n.cases, cs)
		}
	case dsl.KindFor:
		n.each, n.at = t.For.Each, t.For.At
		if n.each == "" {
			n.each = "item"
		}
		if n.at == "" {
			n.at = "index"
		}
		inner := append(append([]string{}, extra...), n.each, n.at)
		if n.forIn, err = c.expr(t.For.In, extra); err != nil {
			return fail(ErrExpression, err)
		}
		if n.while, err = c.expr(t.For.While, inner); err != nil {
			return fail(ErrExpression, err)
		}
		n.body = c.list(t.For.Do, ptr+"/do", inner)
	case dsl.KindTry:
		n.body = c.list(t.Try.Try, ptr+"/try", extra)
		cat := t.Try.Catch
		n.catchAs = cat.As
		if n.catchAs == "" {
			n.catchAs = "error"
		}
		inner := append(append([]string{}, extra...), n.catchAs)
		if n.when, err = c.expr(cat.When, inner); err != nil {
			return fail(ErrExpression, err)
		}
		if n.except, err = c.expr(cat.ExceptWhen, inner); err != nil {
			return fail(ErrExpression, err)
		}
		if cat.Retry != nil {
			rp := cat.Retry.Policy
			if cat.Retry.Ref != "" {
				rp = c.p.wf.Use.Retries[cat.Retry.Ref]
				if rp == nil {
					return fail(ErrConfiguration, fmt.Errorf("unknown retry policy %q", cat.Retry.Ref))
				}
			}
			n.retry = rp
			if rp != nil {
				// A retry policy may be shared by catches with different
				// `as` names, so $error is always in its scope as well.
				retryScope := inner
				if n.catchAs != "error" {
					retryScope = append(append([]string{}, inner...), "error")
				}
				if n.retryW, err = c.expr(rp.When, retryScope); err != nil {
					return fail(ErrExpression, err)
				}
				if n.retryX, err = c.expr(rp.ExceptWhen, retryScope); err != nil {
					return fail(ErrExpression, err)
				}
			}
		}
		if len(cat.Do) > 0 {
			n.catch = c.list(cat.Do, ptr+"/catch/do", inner)
		}
	case dsl.KindRaise:
		if err := c.raise(n, extra); err != nil {
			return fail(ErrConfiguration, err)
		}
	case dsl.KindWait:
		// durations are resolved when the task runs
	case dsl.KindCall:
		if err := c.call(n, extra); err != nil {
			return fail(ErrConfiguration, err)
		}
	case dsl.KindEmit:
		if n.emit, err = expr.CompileTemplateCached(&c.p.cache, eventProps(t.Emit.Event), extra...); err != nil {
			return fail(ErrExpression, err)
		}
	case dsl.KindListen:
		if err := c.compileListen(n, extra); err != nil {
			return fail(ErrConfiguration, err)
		}
	case dsl.KindRun:
		if t.Run.ScriptProcess != nil {
			if err := c.script(n, t.Run, extra); err != nil {
				return fail(ErrConfiguration, err)
			}
			break
		}
		if t.Run.Workflow == nil {
			return fail(ErrConfiguration, fmt.Errorf("only `run: workflow` and `run: script` are supported"))
		}
		n.run = t.Run.Workflow
		if n.runWith, err = expr.CompileTemplateCached(&c.p.cache, t.Run.Workflow.Input, extra...); err != nil {
			return fail(ErrExpression, err)
		}
	default:
		return fail(ErrConfiguration, fmt.Errorf("task %q has no known kind", nt.Name))
	}
	return n
}

type raiseSpec struct {
	tpl *expr.Template // the error fields, possibly with expressions
}

func (c *compiler) raise(n *node, extra []string) error {
	ref := n.t.Raise.Error
	def := ref.Def
	if ref.Ref != "" {
		def = c.p.wf.Use.Errors[ref.Ref]
		if def == nil {
			return fmt.Errorf("unknown error %q", ref.Ref)
		}
	}
	if def == nil {
		return fmt.Errorf("raise names no error")
	}
	fields := map[string]any{"type": def.Type, "status": def.Status}
	for k, v := range map[string]string{"title": def.Title, "detail": def.Detail, "instance": def.Instance} {
		if v != "" {
			fields[k] = v
		}
	}
	tpl, err := expr.CompileTemplateCached(&c.p.cache, fields, extra...)
	if err != nil {
		return err
	}
	n.raise = &raiseSpec{tpl: tpl}
	return nil
}
