// Package expr compiles and evaluates the runtime expressions of the
// Serverless Workflow DSL: jq programs, optionally wrapped in `${ }`,
// evaluated with gojq against a task's data and the DSL's variables.
//
// Evaluation is deterministic: functions that read the clock, the process
// environment, standard input or write to standard error are disabled.
package expr

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/itchyny/gojq"

	"github.com/knhk/knhk/shared/history"
)

// ErrorType is the DSL error type of a failed expression evaluation.
const ErrorType = "https://serverlessworkflow.io/spec/1.0.0/errors/expression"

// Names of the variables every expression may use, without the leading `$`.
var fixedNames = []string{"context", "input", "output", "secrets", "task", "workflow", "runtime", "authorization"}

// prelude shadows the jq builtins that would make an evaluation depend on
// something other than its inputs.
const prelude = `def now: error("now is not available: pass the time in through $runtime or the input");
def localtime: error("localtime is not available");
def strflocaltime(f): error("strflocaltime is not available");
def mktime: error("mktime is not available");
def input: error("input is not available");
def inputs: error("inputs is not available");
def env: {};
def debug: .;
def debug(m): .;
def stderr: .;
def input_filename: null;
def halt: error("halt is not available");
def halt_error: error("halt_error is not available");
def halt_error(c): error("halt_error is not available");
.`

var preludeDefs []*gojq.FuncDef

func init() {
	q, err := gojq.Parse(prelude)
	if err != nil {
		panic(fmt.Sprintf("expr prelude: %v", err))
	}
	preludeDefs = q.FuncDefs
}

// Vars are the values of the DSL's expression variables. Unset values are
// jq null. Extra holds the values of the names declared at compile time
// (loop item and index, caught error, ...), keyed without the `$`.
type Vars struct {
	Context       any
	Input         any
	Output        any
	Secrets       any
	Task          any
	Workflow      any
	Runtime       any
	Authorization any
	Extra         map[string]any
}

// Expr is a compiled runtime expression. It is safe for concurrent use.
type Expr struct {
	src   string
	extra []string
	code  *gojq.Code
}

// Error is a failed compilation or evaluation of an expression.
type Error struct {
	Src string // the expression source
	Err error  // the underlying jq error
}

func (e *Error) Error() string { return fmt.Sprintf("expression %q: %v", e.Src, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Problem renders e as a DSL `expression` error raised by the task at instance.
func (e *Error) Problem(instance string) *history.Error {
	return &history.Error{
		Type:     ErrorType,
		Status:   400,
		Title:    "Expression Error",
		Detail:   e.Error(),
		Instance: instance,
	}
}

// IsExpression reports whether s is a runtime expression in strict mode:
// a string wrapped in `${ }`.
func IsExpression(s string) bool {
	t := strings.TrimSpace(s)
	return len(t) >= 3 && strings.HasPrefix(t, "${") && strings.HasSuffix(t, "}")
}

// Unwrap returns the jq program of s: the content of its `${ }` wrapper, or
// s itself when it has none.
func Unwrap(s string) string {
	t := strings.TrimSpace(s)
	if IsExpression(t) {
		return strings.TrimSpace(t[2 : len(t)-1])
	}
	return t
}

// Compile compiles a runtime expression, with or without its `${ }`
// wrapper. extra declares further variable names (without `$`) the
// expression may use, such as a loop's item and index.
func Compile(src string, extra ...string) (*Expr, error) {
	prog := Unwrap(src)
	if prog == "" {
		prog = "."
	}
	q, err := gojq.Parse(prog)
	if err != nil {
		return nil, &Error{Src: src, Err: err}
	}
	defs := make([]*gojq.FuncDef, 0, len(preludeDefs)+len(q.FuncDefs))
	defs = append(defs, preludeDefs...)
	q.FuncDefs = append(defs, q.FuncDefs...)
	names := make([]string, 0, len(fixedNames)+len(extra))
	for _, n := range fixedNames {
		names = append(names, "$"+n)
	}
	for _, n := range extra {
		names = append(names, "$"+strings.TrimPrefix(n, "$"))
	}
	code, err := gojq.Compile(q,
		gojq.WithVariables(names),
		gojq.WithEnvironLoader(func() []string { return nil }),
	)
	if err != nil {
		return nil, &Error{Src: src, Err: err}
	}
	ex := make([]string, len(extra))
	for i, n := range extra {
		ex[i] = strings.TrimPrefix(n, "$")
	}
	return &Expr{src: src, extra: ex, code: code}, nil
}

// MustCompile is Compile for expressions known at build time; it panics on
// error and must not be used on user input.
func MustCompile(src string, extra ...string) *Expr {
	e, err := Compile(src, extra...)
	if err != nil {
		panic(err)
	}
	return e
}

// String returns the expression's source.
func (e *Expr) String() string { return e.src }

// Eval evaluates the expression on input with vars and returns its first
// result (null when it yields none). input and the variable values must be
// JSON-like values (see Normalize).
func (e *Expr) Eval(ctx context.Context, input any, vars Vars) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, &Error{Src: e.src, Err: fmt.Errorf("evaluation failed: %v", r)}
		}
	}()
	var buf [12]any
	vals := buf[:0]
	vals = append(vals, vars.Context, vars.Input, vars.Output, vars.Secrets, vars.Task, vars.Workflow, vars.Runtime, vars.Authorization)
	for _, n := range e.extra {
		vals = append(vals, vars.Extra[n])
	}
	iter := e.code.RunWithContext(ctx, input, vals...)
	v, ok := iter.Next()
	if !ok {
		return nil, nil
	}
	if err, isErr := v.(error); isErr {
		var he *gojq.HaltError
		if errors.As(err, &he) && he.Value() == nil {
			return nil, nil
		}
		return nil, &Error{Src: e.src, Err: err}
	}
	return v, nil
}

// EvalBool evaluates the expression and reports whether its result is
// true. A non-boolean result is an error.
func (e *Expr) EvalBool(ctx context.Context, input any, vars Vars) (bool, error) {
	v, err := e.Eval(ctx, input, vars)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, &Error{Src: e.src, Err: fmt.Errorf("want a boolean, got %s", gojq.Preview(v))}
	}
	return b, nil
}

// Uses reports whether the expression mentions the variable name (without
// `$`), so that callers can skip building values nobody reads.
func (e *Expr) Uses(name string) bool {
	return strings.Contains(e.src, "$"+name)
}
