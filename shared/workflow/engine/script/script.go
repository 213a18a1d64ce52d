// Package script runs the JavaScript of `run: script` tasks in a sandbox:
// an ECMAScript interpreter (goja) with no I/O (no file, network, process or
// timer API), a clock fixed at the task's start and a random source seeded
// from the case and the task, so the same request always gives the same
// result. A run is bounded in time (interrupted at its limit), in call
// depth, in output and, as well as a shared heap allows, in memory.
package script

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/metrics"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/limits"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// Languages the runner knows.
const LanguageJS = "js"

// What a script returns, as the DSL's `run.return`.
const (
	ReturnStdout = "stdout"
	ReturnStderr = "stderr"
	ReturnCode   = "code"
	ReturnAll    = "all"
	ReturnNone   = "none"
)

const (
	errConfiguration = "https://serverlessworkflow.io/spec/1.0.0/errors/configuration"
	errTimeout       = "https://serverlessworkflow.io/spec/1.0.0/errors/timeout"
	errRuntime       = "https://serverlessworkflow.io/spec/1.0.0/errors/runtime"
)

// Defaults of a Runner's bounds.
const (
	DefaultMaxTime   = 5 * time.Second
	DefaultMaxStack  = 512
	DefaultMaxHeap   = 64 << 20
	DefaultMaxOutput = limits.MaxValueBytes
)

// Request is a rendered script run: pure data, recorded (without secrets)
// when the task asks for it.
type Request struct {
	Language string `json:"language"`
	Code     string `json:"code"`
	// Arguments are an array (the script's argv) or an object whose
	// entries become global variables of the script.
	Arguments   any            `json:"arguments,omitempty"`
	Environment map[string]any `json:"environment,omitempty"`
	Stdin       string         `json:"stdin,omitempty"`
	Return      string         `json:"return,omitempty"` // default stdout
	// Time is what the script's clock says (Date.now(), new Date()): the
	// time the task started, as the history records it.
	Time time.Time `json:"time"`
	// Seed seeds Math.random.
	Seed uint64 `json:"seed"`
	// Timeout, when positive, is the time left of the task's timeout; the
	// run stops at the earlier of it and the runner's MaxTime.
	Timeout time.Duration `json:"-"`
}

// Runner runs scripts. The zero value uses the defaults; it is safe for
// concurrent use (each run has its own interpreter).
type Runner struct {
	MaxTime   time.Duration // wall-clock bound of one run
	MaxStack  int           // deepest call stack
	MaxHeap   uint64        // heap growth while the run lasts, in bytes
	MaxOutput int           // bytes of stdout, stderr and of the result

	mu    sync.Mutex
	progs map[[32]byte]*goja.Program
}

const maxCachedPrograms = 256

// interruption is why a run was stopped.
type interruption struct {
	typ    string
	status int
	detail string
}

// Run runs r and returns the task's output as r.Return asks, or a DSL error
// (without instance: the engine sets it).
func (rn *Runner) Run(ctx context.Context, r Request) (any, *history.Error) {
	if r.Language != LanguageJS {
		return nil, problem(errConfiguration, 400, "unsupported script language %q (KNHK runs js)", r.Language)
	}
	ret := r.Return
	if ret == "" {
		ret = ReturnStdout
	}
	switch ret {
	case ReturnStdout, ReturnStderr, ReturnCode, ReturnAll, ReturnNone:
	default:
		return nil, problem(errConfiguration, 400, "unknown return %q", r.Return)
	}
	prog, err := rn.compile(r.Code)
	if err != nil {
		return nil, problem(errConfiguration, 400, "script does not compile: %v", err)
	}
	maxOut := rn.MaxOutput
	if maxOut <= 0 {
		maxOut = DefaultMaxOutput
	}
	vm := goja.New()
	rng := rand.New(rand.NewPCG(r.Seed, r.Seed^0x9e3779b97f4a7c15))
	vm.SetRandSource(rng.Float64)
	at := r.Time
	vm.SetTimeSource(func() time.Time { return at })
	stack := rn.MaxStack
	if stack <= 0 {
		stack = DefaultMaxStack
	}
	vm.SetMaxCallStackSize(stack)
	stdout := &boundedBuffer{max: maxOut, vm: vm, name: "stdout"}
	stderr := &boundedBuffer{max: maxOut, vm: vm, name: "stderr"}
	if err := globals(vm, r, stdout, stderr); err != nil {
		return nil, problem(errConfiguration, 400, "script arguments: %v", err)
	}

	limit := rn.MaxTime
	if limit <= 0 {
		limit = DefaultMaxTime
	}
	if r.Timeout > 0 && r.Timeout < limit {
		limit = r.Timeout
	}
	done := make(chan struct{})
	defer close(done)
	timer := time.AfterFunc(limit, func() {
		vm.Interrupt(&interruption{errTimeout, 408, fmt.Sprintf("the script ran longer than %s and was stopped", limit)})
	})
	defer timer.Stop()
	go watch(ctx, vm, done, rn.maxHeap())

	v, runErr := vm.RunProgram(prog)
	code := 0
	if runErr != nil {
		var ie *goja.InterruptedError
		if errors.As(runErr, &ie) {
			if why, ok := ie.Value().(*interruption); ok {
				return nil, problem(why.typ, why.status, "%s", why.detail)
			}
			return nil, problem(errRuntime, 500, "the script was stopped: %v", ie.Value())
		}
		var ex *goja.Exception
		if !errors.As(runErr, &ex) {
			return nil, problem(errRuntime, 500, "script: %v", runErr)
		}
		if ret != ReturnCode && ret != ReturnAll {
			return nil, problem(errRuntime, 500, "the script threw: %s", ex.Value().String())
		}
		code = 1
		stderr.WriteString(ex.Value().String() + "\n")
	}
	var out any
	switch ret {
	case ReturnStdout:
		if stdout.Len() > 0 {
			out = decodeText(stdout.String())
		} else if runErr == nil {
			if out, err = exportValue(vm, v); err != nil {
				return nil, problem(errRuntime, 500, "the script's result is not JSON: %v", err)
			}
		}
	case ReturnStderr:
		out = strings.TrimSuffix(stderr.String(), "\n")
	case ReturnCode:
		out = code
	case ReturnAll:
		out = map[string]any{"code": code, "stdout": strings.TrimSuffix(stdout.String(), "\n"), "stderr": strings.TrimSuffix(stderr.String(), "\n")}
	}
	if data, err := json.Marshal(out); err == nil && len(data) > maxOut {
		return nil, problem(errRuntime, 413, "the script's result is %d bytes, over the limit of %d bytes", len(data), maxOut)
	}
	return expr.Normalize(out), nil
}

func (rn *Runner) maxHeap() uint64 {
	if rn.MaxHeap > 0 {
		return rn.MaxHeap
	}
	return DefaultMaxHeap
}

// compile compiles code once per distinct text.
func (rn *Runner) compile(code string) (*goja.Program, error) {
	key := sha256.Sum256([]byte(code))
	rn.mu.Lock()
	p := rn.progs[key]
	rn.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err := goja.Compile("script.js", code, false)
	if err != nil {
		return nil, err
	}
	rn.mu.Lock()
	if rn.progs == nil || len(rn.progs) >= maxCachedPrograms {
		rn.progs = map[[32]byte]*goja.Program{}
	}
	rn.progs[key] = p
	rn.mu.Unlock()
	return p, nil
}

// globals gives the script its arguments, environment, stdin and a console
// that writes to the bounded buffers.
func globals(vm *goja.Runtime, r Request, stdout, stderr *boundedBuffer) error {
	argv := []any{}
	switch a := r.Arguments.(type) {
	case nil:
	case []any:
		argv = a
	case map[string]any:
		for name, v := range a {
			if !isIdentifier(name) {
				return fmt.Errorf("argument name %q is not a JavaScript identifier", name)
			}
			jv, err := native(vm, v)
			if err != nil {
				return err
			}
			if err := vm.Set(name, jv); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("arguments must be an array or an object, not %T", r.Arguments)
	}
	env := r.Environment
	if env == nil {
		env = map[string]any{}
	}
	process := map[string]any{"env": env, "argv": append([]any{"js", "script.js"}, argv...)}
	console := vm.NewObject()
	out := func(b *boundedBuffer) func(goja.FunctionCall) goja.Value {
		return func(c goja.FunctionCall) goja.Value {
			parts := make([]string, len(c.Arguments))
			for i, a := range c.Arguments {
				parts[i] = a.String()
			}
			b.WriteString(strings.Join(parts, " ") + "\n")
			return goja.Undefined()
		}
	}
	for _, name := range []string{"log", "info", "debug"} {
		if err := console.Set(name, out(stdout)); err != nil {
			return err
		}
	}
	for _, name := range []string{"error", "warn"} {
		if err := console.Set(name, out(stderr)); err != nil {
			return err
		}
	}
	for name, v := range map[string]any{"argv": argv, "process": process} {
		jv, err := native(vm, v)
		if err != nil {
			return err
		}
		if err := vm.Set(name, jv); err != nil {
			return err
		}
	}
	if err := vm.Set("stdin", r.Stdin); err != nil {
		return err
	}
	return vm.Set("console", console)
}

// native turns a JSON-like Go value into the script's own values (arrays
// and objects of the interpreter, not views of Go maps and slices).
func native(vm *goja.Runtime, v any) (goja.Value, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	parse, ok := goja.AssertFunction(vm.Get("JSON").ToObject(vm).Get("parse"))
	if !ok {
		return nil, fmt.Errorf("JSON.parse is not a function")
	}
	return parse(goja.Undefined(), vm.ToValue(string(data)))
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || c == '$' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// watch interrupts vm when ctx ends or the heap grows by more than maxHeap
// while the run lasts. The heap is the process's: a run that allocates
// less can still be stopped by others allocating at the same time, never
// the reverse.
func watch(ctx context.Context, vm *goja.Runtime, done <-chan struct{}, maxHeap uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	base := heap()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			vm.Interrupt(&interruption{errRuntime, 503, fmt.Sprintf("the script was stopped: %v", ctx.Err())})
			return
		case <-tick.C:
			if h := heap(); h > base && h-base > maxHeap {
				vm.Interrupt(&interruption{errRuntime, 507, fmt.Sprintf("the script allocated more than %d bytes and was stopped", maxHeap)})
				return
			}
		}
	}
}

// exportValue turns the script's completion value into JSON-like values,
// as JSON.stringify sees it (undefined and functions give null).
func exportValue(vm *goja.Runtime, v goja.Value) (any, error) {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil, nil
	}
	stringify, ok := goja.AssertFunction(vm.Get("JSON").ToObject(vm).Get("stringify"))
	if !ok {
		return nil, fmt.Errorf("JSON.stringify is not a function")
	}
	s, err := stringify(goja.Undefined(), v)
	if err != nil {
		return nil, err
	}
	if goja.IsUndefined(s) {
		return nil, nil
	}
	return expr.DecodeJSON([]byte(s.String()))
}

// decodeText is what the script printed: a JSON value when the text is
// one, the text (without its last newline) otherwise.
func decodeText(s string) any {
	s = strings.TrimSuffix(s, "\n")
	if t := strings.TrimSpace(s); t != "" && json.Valid([]byte(t)) {
		if v, err := expr.DecodeJSON([]byte(t)); err == nil {
			return v
		}
	}
	return s
}

// boundedBuffer collects a stream and stops the script once it exceeds max
// bytes.
type boundedBuffer struct {
	strings.Builder
	max  int
	vm   *goja.Runtime
	name string
}

func (b *boundedBuffer) WriteString(s string) {
	if b.Len()+len(s) > b.max {
		b.vm.Interrupt(&interruption{errRuntime, 413, fmt.Sprintf("the script wrote more than %d bytes to %s and was stopped", b.max, b.name)})
		return
	}
	b.Builder.WriteString(s)
}

func problem(typ string, status int, format string, args ...any) *history.Error {
	return &history.Error{Type: typ, Status: status, Title: "Script Failed", Detail: fmt.Sprintf(format, args...)}
}
