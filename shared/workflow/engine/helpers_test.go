package engine

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/dsl"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func load(t testing.TB, src string) *dsl.Workflow {
	t.Helper()
	// Parse without the validator: the engine must cope with what the
	// validator would reject (unknown functions), and KNHK's built-in
	// functions are not declared under use.functions.
	wf, err := dsl.Parse([]byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return wf
}

func run(t testing.TB, src string, input any, opts RunOptions) *RunResult {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = func() time.Time { return t0 }
	}
	res, err := Run(context.Background(), load(t, src), input, opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return res
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func mustComplete(t testing.TB, res *RunResult, want string) {
	t.Helper()
	if res.Status != StatusCompleted {
		t.Fatalf("status %s, error %+v", res.Status, res.Error)
	}
	if want != "" && js(res.Output) != want {
		t.Fatalf("output %s, want %s", js(res.Output), want)
	}
}

func mustFault(t testing.TB, res *RunResult, typ, instance string) *history.Error {
	t.Helper()
	if res.Status != StatusFaulted {
		t.Fatalf("status %s (output %s), want faulted", res.Status, js(res.Output))
	}
	if typ != "" && res.Error.Type != typ {
		t.Fatalf("error type %s, want %s (%+v)", res.Error.Type, typ, res.Error)
	}
	if instance != "" && res.Error.Instance != instance {
		t.Fatalf("error instance %s, want %s", res.Error.Instance, instance)
	}
	return res.Error
}

const header = "document:\n  dsl: '1.0.3'\n  namespace: test\n  name: t\n  version: '1.0.0'\n"

// offline is an HTTP client that fails every call without the network.
var offline = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
	return nil, errors.New("offline")
})}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
