package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/engine"
)

// scenario is a case the corpus records.
type scenario struct {
	name, covers string
	document     string
	input        any
	secrets      map[string]any
	events       []map[string]any
	client       func(t *testing.T) *http.Client
}

// t0 is the recorded cases' clock: timers jump ahead of it virtually.
var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

const header = "document:\n  dsl: '1.0.3'\n  namespace: replay\n  name: %s\n  version: '1.0.0'\n"

func doc(name, body string) string { return fmt.Sprintf(header, name) + body }

// scripted answers the calls of the inline scenarios without a network:
// /ok answers 200, /flaky answers 503 twice and then 200.
func scripted(*testing.T) *http.Client {
	var mu sync.Mutex
	flaky := 0
	return &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		status, body := http.StatusOK, `{"ok":true,"path":"`+r.URL.Path+`"}`
		if r.URL.Path == "/flaky" {
			mu.Lock()
			flaky++
			n := flaky
			mu.Unlock()
			if n <= 2 {
				status, body = http.StatusServiceUnavailable, `{"retry":true}`
			} else {
				body = fmt.Sprintf(`{"attempts":%d}`, n)
			}
		}
		return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
	})}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// stand-ins answers the sample workflows' calls (localstack/standin).
func standins(t *testing.T) *http.Client {
	srv := httptest.NewServer(standin.Handler())
	t.Cleanup(srv.Close)
	return standin.Client(srv.Listener.Addr().String())
}

func event(id, typ string, data any) map[string]any {
	return map[string]any{"specversion": "1.0", "id": id, "source": "https://replay.knhk.local", "type": typ, "data": data}
}

// scenarios are the recorded cases: every sample workflow with its sample
// input, and the control-flow patterns, faults, retries, timers, listens,
// emits, scripts and timeouts the engine decides.
func scenarios(t *testing.T) []scenario {
	root := filepath.Join("..", "..", "events")
	files, err := filepath.Glob(filepath.Join(root, "workflows", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sample workflows: %v", err)
	}
	var out []scenario
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var input any
		if raw, err := os.ReadFile(filepath.Join(root, "inputs", name+".json")); err == nil {
			if err := json.Unmarshal(raw, &input); err != nil {
				t.Fatalf("input of %s: %v", name, err)
			}
		}
		wf, err := dsl.Load(src)
		if err != nil {
			t.Fatalf("sample %s: %v", name, err)
		}
		secrets := map[string]any{}
		for _, s := range wf.Use.Secrets {
			secrets[s] = map[string]any{"token": "secret-token-" + s, "username": "secret-user-" + s, "password": "secret-password-" + s}
		}
		var events []map[string]any
		if name == "insurance-claim" {
			events = append(events, standin.AdjusterDecision("clm_55102", "decision-1"))
		}
		out = append(out, scenario{name: "sample-" + name, covers: "the sample workflow " + name + " with its sample input",
			document: string(src), input: input, secrets: secrets, events: events, client: standins})
	}
	inline := []scenario{
		{name: "fork-join", covers: "fork, both branches joined", document: doc("fork-join", `do:
  - both:
      fork:
        branches:
          - left:
              call: http
              with:
                method: get
                endpoint: https://api.knhk.local/ok
          - right:
              set:
                side: right
  - after:
      set:
        joined: ${ length }
`)},
		{name: "fork-compete", covers: "fork with compete: the first branch to finish wins", document: doc("fork-compete", `do:
  - race:
      fork:
        compete: true
        branches:
          - slow:
              wait: PT10M
          - fast:
              set:
                winner: fast
`)},
		{name: "for-while", covers: "for over a list with while, and export into the context", document: doc("for-while", `do:
  - each:
      for:
        each: item
        in: ${ .items }
      while: ${ $item < 4 }
      do:
        - add:
            set:
              sum: ${ (.sum // 0) + $item }
      export:
        as: '${ $context + {summed: true} }'
  - done:
      set:
        sum: ${ .sum }
        summed: ${ $context.summed }
`), input: map[string]any{"items": []any{1, 2, 3, 4, 5}}},
		{name: "switch-loop", covers: "switch and then directives that loop back", document: doc("switch-loop", `do:
  - init:
      set:
        n: 0
  - step:
      set:
        n: ${ .n + 1 }
  - check:
      switch:
        - again:
            when: ${ .n < 3 }
            then: step
        - stop:
            then: finish
  - skipped:
      set:
        never: true
  - finish:
      set:
        n: ${ .n }
`)},
		{name: "retry-then-success", covers: "try/catch with an exponential retry policy over a failing call", document: doc("retry-then-success", `do:
  - fetch:
      try:
        - get:
            call: http
            with:
              method: get
              endpoint: https://api.knhk.local/flaky
      catch:
        errors:
          with:
            type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
        retry:
          delay:
            seconds: 2
          backoff:
            exponential: {}
          limit:
            attempt:
              count: 3
`)},
		{name: "raise-fault", covers: "a raised error that no catch handles faults the case", document: doc("raise-fault", `use:
  errors:
    refused:
      type: https://knhk.local/errors/refused
      status: 422
      title: Refused
do:
  - check:
      if: ${ .amount > 100 }
      raise:
        error: refused
`), input: map[string]any{"amount": 250}},
		{name: "caught-fault", covers: "a caught fault runs the catch tasks with the error", document: doc("caught-fault", `do:
  - guarded:
      try:
        - fail:
            raise:
              error:
                type: https://knhk.local/errors/boom
                status: 500
                title: Boom
      catch:
        as: err
        do:
          - note:
              set:
                caught: ${ $err.title }
`)},
		{name: "wait-timer", covers: "a wait fired by a timer", document: doc("wait-timer", `do:
  - pause:
      wait: PT5M
  - after:
      set:
        waited: true
`)},
		{name: "timeout", covers: "a task timeout caught and handled", document: doc("timeout", `do:
  - bounded:
      try:
        - slow:
            wait: PT1H
            timeout:
              after:
                seconds: 30
      catch:
        errors:
          with:
            type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
        do:
          - fallback:
              set:
                timedOut: true
`)},
		{name: "listen-all", covers: "listen for all of two events, with an unrelated event in between", document: doc("listen-all", `do:
  - both:
      listen:
        to:
          all:
            - with:
                type: com.knhk.replay.a
            - with:
                type: com.knhk.replay.b
`), events: []map[string]any{event("e1", "com.knhk.replay.b", 1), event("e2", "com.knhk.replay.other", 2), event("e3", "com.knhk.replay.a", 3)}},
		{name: "listen-until-events", covers: "listen for any event until another event arrives", document: doc("listen-until-events", `do:
  - collect:
      listen:
        to:
          any:
            - with:
                type: com.knhk.replay.reading
          until:
            one:
              with:
                type: com.knhk.replay.closed
`), events: []map[string]any{event("r1", "com.knhk.replay.reading", 10), event("r2", "com.knhk.replay.reading", 20), event("c", "com.knhk.replay.closed", nil)}},
		{name: "listen-correlated", covers: "listen with a correlation on the case input", document: doc("listen-correlated", `do:
  - approval:
      listen:
        to:
          one:
            with:
              type: com.knhk.replay.approved
            correlate:
              order:
                from: ${ .subject }
                expect: ${ .orderId }
`), input: map[string]any{"orderId": "o-2"}, events: []map[string]any{
			func() map[string]any {
				e := event("x1", "com.knhk.replay.approved", "wrong")
				e["subject"] = "o-1"
				return e
			}(),
			func() map[string]any {
				e := event("x2", "com.knhk.replay.approved", "right")
				e["subject"] = "o-2"
				return e
			}(),
		}},
		{name: "emit", covers: "emit a CloudEvent built from the input", document: doc("emit", `do:
  - announce:
      emit:
        event:
          with:
            source: https://replay.knhk.local
            type: com.knhk.replay.announced
            data: ${ . }
`), input: map[string]any{"order": "o-9"}},
		{name: "script", covers: "a js script with arguments and environment", document: doc("script", `do:
  - price:
      run:
        script:
          language: js
          arguments:
            - ${ .amount | tostring }
          environment:
            RATE: ${ .rate }
          code: |
            console.log(JSON.stringify({ total: Number(argv[0]) * process.env.RATE }));
`), input: map[string]any{"amount": 10, "rate": 1.5}},
		{name: "data-flow", covers: "input.from, output.as and a bearer secret that is never recorded", document: doc("data-flow", `use:
  secrets: [api]
input:
  from: ${ .order }
do:
  - send:
      call: http
      with:
        method: post
        endpoint:
          uri: https://api.knhk.local/ok
          authentication:
            bearer:
              token: ${ $secrets.api.token }
        body: ${ . }
      output:
        as: ${ .path }
output:
  as: '${ {sent: .} }'
`), input: map[string]any{"order": map[string]any{"id": "o-3"}}, secrets: map[string]any{"api": map[string]any{"token": "s3cr3t-token"}}},
	}
	for i := range inline {
		inline[i].client = scripted
	}
	return append(out, inline...)
}

// record runs a scenario with the current engine and returns its entry.
func record(t *testing.T, sc scenario) entry {
	t.Helper()
	wf, err := dsl.Load([]byte(sc.document))
	if err != nil {
		t.Fatalf("%s: %v", sc.name, err)
	}
	e := entry{Scenario: sc.name, Covers: sc.covers, Document: sc.document, Secrets: sc.secrets}
	res, err := engine.Run(context.Background(), wf, sc.input, engine.RunOptions{
		CaseID: "replay-" + sc.name, HTTPClient: sc.client(t), Events: sc.events,
		Genesis: history.Genesis{Tenant: "replay", Namespace: wf.Document.Namespace, Workflow: wf.Document.Name,
			Version: wf.Document.Version, DescriptorHash: dsl.Hash([]byte(sc.document))},
		Options: engine.Options{Secrets: sc.secrets},
		Clock:   func() time.Time { return t0 },
		OnDecision: func(s engine.Stimulus, d engine.Decision) {
			e.Steps = append(e.Steps, step{Stimulus: wrap(s), Events: d.Events, Effects: effects(d)})
		},
	})
	if err != nil {
		t.Fatalf("%s: run: %v", sc.name, err)
	}
	if !res.State.Terminal() {
		t.Fatalf("%s: the recorded case did not end (%s)", sc.name, res.Status)
	}
	return e
}
