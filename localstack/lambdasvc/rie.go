package lambdasvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Result is the outcome of one invocation that reached the function.
type Result struct {
	// Payload is the function's response (or its error document).
	Payload []byte
	// FunctionError is "Unhandled" when the function returned an error, timed
	// out or crashed; empty on success.
	FunctionError string
	// Reason says why the invocation failed, for logs and failure records.
	Reason string
}

// Failed reports whether the invocation was a function error.
func (r Result) Failed() bool { return r.FunctionError != "" }

// classify reads an emulator response body: the emulator answers 200 for
// function errors too, with an {"errorMessage","errorType"} document, and
// a plain "Task timed out" text on timeout.
func classify(status int, body []byte) Result {
	r := Result{Payload: body}
	if status != http.StatusOK {
		r.FunctionError, r.Reason = "Unhandled", fmt.Sprintf("emulator status %d: %s", status, truncate(body, 200))
		return r
	}
	trimmed := bytes.TrimSpace(body)
	if bytes.HasPrefix(trimmed, []byte("Task timed out after")) {
		r.FunctionError, r.Reason = "Unhandled", string(trimmed)
		return r
	}
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var doc map[string]json.RawMessage
		if json.Unmarshal(trimmed, &doc) == nil {
			_, hasMsg := doc["errorMessage"]
			_, hasType := doc["errorType"]
			extra := 0
			for k := range doc {
				if k != "errorMessage" && k != "errorType" && k != "stackTrace" && k != "cause" {
					extra++
				}
			}
			if (hasMsg || hasType) && extra == 0 {
				var msg string
				_ = json.Unmarshal(doc["errorMessage"], &msg)
				r.FunctionError, r.Reason = "Unhandled", "function error: "+msg
			}
		}
	}
	return r
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// instance is one emulator process serving one function; it handles one
// invocation at a time.
type instance struct {
	fn     *Function
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
	token  string
	busy   atomic.Bool
	// served is set once an invocation succeeded: the emulator has started
	// the runtime, which then stays up between invocations.
	served bool
	// runtime is the runtime process's pid, once found.
	runtime int
}

// pool runs up to size emulator instances of one function and restarts the
// ones that die. It starts eager of them; the others start when an
// invocation finds every running instance busy.
type pool struct {
	fn       *Function
	rie      string
	env      []string
	sink     *lineSink
	idle     chan *instance
	spare    chan struct{} // capacity not yet started
	eager    int
	mu       sync.Mutex
	all      map[*instance]bool
	restarts atomic.Int64
	invokes  atomic.Int64
	closed   atomic.Bool
	done     chan struct{} // closed by stop
	client   *http.Client
}

func newPool(fn *Function, rie string, env []string, sink *lineSink, size, eager int) *pool {
	eager = min(max(eager, 1), size)
	p := &pool{fn: fn, rie: rie, env: env, sink: sink, idle: make(chan *instance, size), spare: make(chan struct{}, size), eager: eager,
		all: map[*instance]bool{}, done: make(chan struct{}), client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	for range size - eager {
		p.spare <- struct{}{}
	}
	return p
}

// start launches the pool's eager instances.
func (p *pool) start(ctx context.Context) error {
	for range p.eager {
		in, err := p.spawn(ctx)
		if err != nil {
			p.stop()
			return err
		}
		p.idle <- in
	}
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// spawn starts one emulator process and waits until it accepts connections.
func (p *pool) spawn(ctx context.Context) (*instance, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	apiAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(p.rie, "--log-level", "error",
		"--runtime-interface-emulator-address", addr, "--runtime-api-address", apiAddr, p.fn.Binary)
	cmd.Dir = filepath.Dir(p.fn.Binary)
	token := fmt.Sprintf("%d-%s", os.Getpid(), addr)
	cmd.Env = append(slices.Clip(p.env), instanceEnv+"="+token)
	// Own pipes rather than exec's copying: the runtime inherits them, and
	// Wait must return when the emulator exits even if an orphaned runtime
	// still holds them.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("emulator output pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("emulator output pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start emulator for %s: %w", p.fn.Name, err)
	}
	for _, r := range []*os.File{outR, errR} {
		go func() {
			_, _ = io.Copy(&lineWriter{sink: p.sink}, r)
			r.Close()
		}()
	}
	in := &instance{fn: p.fn, addr: addr, cmd: cmd, token: token, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(in.exited) }()
	p.mu.Lock()
	if p.closed.Load() {
		// stop ran meanwhile: it cannot see this instance, so end it here.
		p.mu.Unlock()
		p.kill(in)
		return nil, errPoolClosed
	}
	p.all[in] = true
	p.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return in, nil
		}
		select {
		case <-in.exited:
			p.forget(in)
			return nil, fmt.Errorf("emulator for %s exited at start: %v", p.fn.Name, cmd.ProcessState)
		case <-ctx.Done():
			p.kill(in)
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill(in)
			return nil, fmt.Errorf("emulator for %s not listening on %s", p.fn.Name, addr)
		}
	}
}

func (p *pool) forget(in *instance) {
	p.mu.Lock()
	delete(p.all, in)
	p.mu.Unlock()
}

// kill ends an instance, its runtime process and whatever the runtime
// started, and waits for the emulator to exit.
func (p *pool) kill(in *instance) {
	if in.cmd.Process != nil {
		_ = syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-in.exited
	in.killChildren()
	p.forget(in)
}

// terminate asks an instance to stop, then kills it after grace.
func (p *pool) terminate(in *instance, grace time.Duration) {
	if in.cmd.Process != nil {
		_ = in.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-in.exited:
	case <-time.After(grace):
	}
	p.kill(in)
}

// instanceEnv marks every process of an instance: the emulator passes its
// environment on to the runtime, so the runtime can be found (and ended)
// even after the emulator died and the runtime was orphaned.
const instanceEnv = "_KNHK_LOCAL_INSTANCE"

// killChildren ends the runtime processes the instance started: the runtime
// runs in its own process group, so killing the emulator's group misses it.
func (in *instance) killChildren() {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && pid != os.Getpid() && in.marks(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// alive is the health check of an idle instance: its emulator runs and,
// once it has served an invocation, so does the runtime it started.
func (in *instance) alive() bool {
	select {
	case <-in.exited:
		return false
	default:
	}
	if !in.served {
		return true
	}
	if in.runtime != 0 && in.marks(in.runtime) {
		return true
	}
	in.runtime = in.findRuntime()
	return in.runtime != 0
}

// findRuntime returns the pid of a live process of the instance other than
// the emulator, 0 when there is none.
func (in *instance) findRuntime() int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && pid != in.cmd.Process.Pid && pid != os.Getpid() && in.marks(pid) {
			return pid
		}
	}
	return 0
}

// marks reports whether pid is a running (not zombie) process of this
// instance.
func (in *instance) marks(pid int) bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	env, err := os.ReadFile(filepath.Join(dir, "environ"))
	return err == nil && bytes.Contains(env, []byte(instanceEnv+"="+in.token+"\x00"))
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// errPoolClosed is returned by invoke after stop.
var errPoolClosed = errors.New("function pool stopped")

// invoke runs one invocation on an idle instance. A crash or timeout of the
// instance is a function error; the instance is replaced.
func (p *pool) invoke(ctx context.Context, payload []byte) (Result, error) {
	var in *instance
	select {
	case in = <-p.idle:
	default:
		// Every running instance is busy: wait for one, or start one
		// more while the pool has room.
		select {
		case in = <-p.idle:
		case <-p.spare:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-p.done:
			return Result{}, errPoolClosed
		}
	}
	if p.closed.Load() {
		p.idle <- in
		return Result{}, errPoolClosed
	}
	if in == nil {
		// An earlier restart failed: try again.
		var err error
		if in, err = p.spawn(ctx); err != nil {
			p.idle <- nil
			return Result{}, err
		}
	}
	if !in.alive() {
		// Died while idle (the emulator or its runtime): replace it
		// before use rather than hand it a batch it cannot serve.
		p.restarts.Add(1)
		p.kill(in)
		var err error
		if in, err = p.spawn(ctx); err != nil {
			p.idle <- nil
			return Result{}, err
		}
	}
	p.invokes.Add(1)
	in.busy.Store(true)
	res, healthy := p.post(in, payload)
	in.busy.Store(false)
	in.served = in.served || healthy
	if !healthy {
		p.restarts.Add(1)
		p.kill(in)
		if p.closed.Load() {
			return res, nil
		}
		next, err := p.spawn(context.WithoutCancel(ctx))
		if err != nil {
			p.idle <- nil
			return res, err
		}
		in = next
	}
	p.idle <- in
	return res, nil
}

// post sends the invocation; healthy is false when the instance died or
// stopped answering and must be replaced.
func (p *pool) post(in *instance, payload []byte) (Result, bool) {
	// The emulator enforces the function timeout itself; this bound only
	// catches an emulator that hangs.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(p.fn.Timeout+10)*time.Second)
	defer cancel()
	go func() {
		select {
		case <-in.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+in.addr+"/2015-03-31/functions/function/invocations", bytes.NewReader(payload))
	if err != nil {
		return Result{FunctionError: "Unhandled", Reason: err.Error()}, true
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return Result{FunctionError: "Unhandled", Reason: "instance failed during the invocation: " + err.Error()}, false
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return Result{FunctionError: "Unhandled", Reason: "instance failed during the invocation: " + err.Error()}, false
	}
	res := classify(resp.StatusCode, body)
	select {
	case <-in.exited:
		return res, false
	default:
	}
	return res, resp.StatusCode == http.StatusOK
}

// stop ends every instance: idle ones at once, busy ones after their
// invocation returns (bounded by the function timeout).
func (p *pool) stop() {
	p.mu.Lock()
	if p.closed.Swap(true) {
		p.mu.Unlock()
		return
	}
	close(p.done)
	all := make([]*instance, 0, len(p.all))
	for in := range p.all {
		all = append(all, in)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, in := range all {
		wg.Go(func() { p.terminate(in, 2*time.Second) })
	}
	wg.Wait()
}

// InstanceStatus describes one running emulator instance.
type InstanceStatus struct {
	PID  int    `json:"pid"`
	Addr string `json:"addr"`
	Busy bool   `json:"busy"`
}

// FunctionStatus describes one function's instances and counters.
type FunctionStatus struct {
	Name        string           `json:"name"`
	Instances   []InstanceStatus `json:"instances"`
	Restarts    int64            `json:"restarts"`
	Invocations int64            `json:"invocations"`
}

func (p *pool) status() FunctionStatus {
	s := FunctionStatus{Name: p.fn.Name, Restarts: p.restarts.Load(), Invocations: p.invokes.Load()}
	p.mu.Lock()
	for in := range p.all {
		s.Instances = append(s.Instances, InstanceStatus{PID: in.cmd.Process.Pid, Addr: in.addr, Busy: in.busy.Load()})
	}
	p.mu.Unlock()
	return s
}
