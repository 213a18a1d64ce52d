package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/dsl"
)

func TestBadInput(t *testing.T) {
	cases := []struct {
		name, src, typ, instance string
	}{
		{"jq runtime error", header + `do:
  - first:
      set:
        a: 1
  - bad:
      set:
        x: ${ .a + "s" }
`, ErrExpression, "/do/1/bad"},
		{"unknown function", header + `do:
  - c:
      call: nosuchfunction
`, ErrConfiguration, "/do/0/c"},
		{"endless loop", header + `do:
  - a:
      set:
        n: 1
      then: b
  - b:
      set:
        n: 2
      then: a
`, ErrRuntime, ""},
		{"non-boolean switch", header + `do:
  - s:
      switch:
        - x:
            when: .a
            then: end
`, ErrExpression, "/do/0/s"},
		{"for over a string", header + `do:
  - l:
      for:
        in: .a
      do:
        - x:
            set:
              y: 1
`, ErrExpression, "/do/0/l"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := run(t, c.src, map[string]any{"a": "str"}, RunOptions{Options: Options{StepBudget: 50}})
			mustFault(t, res, c.typ, c.instance)
		})
	}
}

func TestTryRetryAndCatch(t *testing.T) {
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer srv.Close()
	src := header + `do:
  - attempt:
      try:
        - get:
            call: http
            with:
              method: get
              endpoint: ` + srv.URL + `
      catch:
        errors:
          with:
            type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
            status: 503
        retry:
          delay:
            seconds: 2
          backoff:
            exponential: {}
          jitter:
            from:
              milliseconds: 10
            to:
              milliseconds: 100
          limit:
            attempt:
              count: 5
`
	res := run(t, src, map[string]any{}, RunOptions{})
	mustComplete(t, res, `{"ok":true}`)
	retried := 0
	for _, e := range res.History {
		if e.Type == history.TaskRetried {
			retried++
		}
	}
	if retried != 2 || calls != 3 {
		t.Fatalf("retries %d, calls %d; want 2 and 3", retried, calls)
	}
	// the same case replays to the same state, and jitter is stable.
	again := run(t, src, map[string]any{}, RunOptions{})
	_ = again
}

func TestRetryExhaustedFaults(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	src := header + `do:
  - attempt:
      try:
        - get:
            call: http
            with:
              method: get
              endpoint: ` + srv.URL + `
      catch:
        retry:
          delay:
            seconds: 1
          limit:
            attempt:
              count: 3
`
	res := run(t, src, nil, RunOptions{})
	e := mustFault(t, res, ErrCommunication, "/do/0/attempt/try/0/get")
	if e.Status != 500 {
		t.Fatalf("status %d", e.Status)
	}
}

func TestTimeouts(t *testing.T) {
	src := header + `do:
  - slow:
      wait:
        minutes: 10
      timeout:
        after:
          seconds: 5
`
	res := run(t, src, nil, RunOptions{})
	e := mustFault(t, res, ErrTimeout, "/do/0/slow")
	if e.Status != 408 {
		t.Fatalf("status %d", e.Status)
	}
	wfTimeout := header + `timeout:
  after:
    seconds: 1
do:
  - slow:
      wait: PT1H
`
	mustFault(t, run(t, wfTimeout, nil, RunOptions{}), ErrTimeout, "/")
}

func TestDataFlowAndContext(t *testing.T) {
	src := header + `use:
  secrets: [apiKey]
do:
  - first:
      input:
        from: '${ {n: .n} }'
      set:
        doubled: ${ .n * 2 }
        key: ${ $secrets.apiKey }
        wf: ${ $workflow.id }
        rt: ${ $runtime.name }
        me: ${ $task.name }
      export:
        as: '${ {total: .doubled} }'
  - second:
      set:
        fromContext: ${ $context.total }
        key: ${ .key }
      output:
        as: '${ . + {original: $workflow.input.n} }'
`
	res := run(t, src, map[string]any{"n": 21, "junk": true}, RunOptions{CaseID: "case-7", Options: Options{Secrets: map[string]any{"apiKey": "s3cr3t", "other": "hidden"}}})
	// A value read from $secrets is redacted where it is recorded, and the
	// next task reads what was recorded (docs/receipts.md, "Secrets").
	mustComplete(t, res, `{"fromContext":42,"key":"[redacted]","original":21}`)
	first := res.History[1]
	if first.Type != history.TaskCompleted || !strings.Contains(string(first.Output), `"wf":"case-7"`) || !strings.Contains(string(first.Output), `"me":"first"`) {
		t.Fatalf("first event %s %s", first.Type, first.Output)
	}
}

func TestSchemaValidationAndBuiltin(t *testing.T) {
	src := header + `do:
  - check:
      call: knhk:validate-schema
      with:
        schema:
          type: object
          required: [amount]
          properties:
            amount:
              type: number
              minimum: 1
`
	mustComplete(t, run(t, src, map[string]any{"amount": 5}, RunOptions{}), `{"amount":5}`)
	mustFault(t, run(t, src, map[string]any{"amount": 0}, RunOptions{}), ErrValidation, "/do/0/check")
	out := header + `do:
  - s:
      set:
        a: 1
      output:
        schema:
          document:
            type: object
            required: [b]
`
	mustFault(t, run(t, out, nil, RunOptions{}), ErrValidation, "/do/0/s")
}

func TestRaiseReferencedError(t *testing.T) {
	src := header + `use:
  errors:
    notFound:
      type: https://example.com/errors/not-found
      status: 404
      title: ${ "missing " + .what }
do:
  - r:
      raise:
        error: notFound
`
	e := mustFault(t, run(t, src, map[string]any{"what": "pet"}, RunOptions{}), "https://example.com/errors/not-found", "/do/0/r")
	if e.Status != 404 || e.Title != "missing pet" {
		t.Fatalf("error %+v", e)
	}
}

func TestFunctionCall(t *testing.T) {
	src := header + `use:
  functions:
    double:
      set:
        v: ${ .x * 2 }
do:
  - c:
      call: double
      with:
        x: ${ .n }
`
	mustComplete(t, run(t, src, map[string]any{"n": 4}, RunOptions{}), `{"v":8}`)
}

type memRegistry map[string]string

func (m memRegistry) Workflow(_ context.Context, ns, name, version string) (*dsl.Workflow, error) {
	src, ok := m[ns+"/"+name+"/"+version]
	if !ok {
		return nil, fmt.Errorf("no workflow %s/%s/%s", ns, name, version)
	}
	return dsl.Load([]byte(src))
}

func TestRunWorkflow(t *testing.T) {
	child := "document:\n  dsl: '1.0.3'\n  namespace: lib\n  name: child\n  version: '1.0.0'\ndo:\n  - inc:\n      set:\n        n: ${ .n + 1 }\n"
	src := header + `do:
  - sub:
      run:
        workflow:
          namespace: lib
          name: child
          version: '1.0.0'
          input:
            n: ${ .start }
`
	res := run(t, src, map[string]any{"start": 1}, RunOptions{Options: Options{Registry: memRegistry{"lib/child/1.0.0": child}}})
	mustComplete(t, res, `{"n":2}`)
	mustFault(t, run(t, src, nil, RunOptions{}), ErrConfiguration, "/do/0/sub")
}

// TestReplayDeterminism runs workflows stimulus by stimulus and checks
// that replaying every prefix of the history gives the state the live run
// had at that point.
func TestReplayDeterminism(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	defer srv.Close()
	for name, src := range replayWorkflows(srv.URL) {
		t.Run(name, func(t *testing.T) {
			wf := load(t, src)
			p, err := Compile(wf)
			if err != nil {
				t.Fatal(err)
			}
			for seed := int64(1); seed <= 5; seed++ {
				snapshots, events := driveRandomly(t, p, seed)
				for i, snap := range snapshots {
					st, err := Replay(wf, events[:snap.n])
					if err != nil {
						t.Fatalf("seed %d: replay %d events: %v", seed, snap.n, err)
					}
					if got := marshal(t, st); got != snap.state {
						t.Fatalf("seed %d step %d: replayed state differs\n got %s\nwant %s", seed, i, got, snap.state)
					}
				}
			}
		})
	}
}

type snapshot struct {
	n     int
	state string
}

func marshal(t testing.TB, st *State) string {
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// driveRandomly advances a case, delivering the outstanding stimuli in a
// random order and redelivering some, and snapshots the state after each
// decision.
func driveRandomly(t *testing.T, p *Program, seed int64) ([]snapshot, []history.Event) {
	rng := rand.New(rand.NewSource(seed))
	st := NewState()
	var events []history.Event
	var snaps []snapshot
	var pending []Stimulus
	var delivered []Stimulus
	now := t0
	decide := func(s Stimulus) {
		dec, err := p.Decide(context.Background(), st, s, Options{})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, dec.Events...)
		snaps = append(snaps, snapshot{n: len(events), state: marshal(t, st)})
		for _, e := range dec.Effects {
			switch e.Kind {
			case EffectTimer:
				pending = append(pending, TimerFired{ID: e.ID, Time: e.Due})
			case EffectHTTP:
				pending = append(pending, EffectResult{ID: e.ID, Output: map[string]any{"uri": e.HTTP.URI}, Time: now})
			}
		}
	}
	decide(Start{CaseID: "c", Input: map[string]any{"items": []any{1, 2, 3}}, Time: now})
	for len(pending) > 0 && !st.Terminal() {
		i := rng.Intn(len(pending))
		s := pending[i]
		pending = append(pending[:i], pending[i+1:]...)
		now = now.Add(1)
		decide(s)
		delivered = append(delivered, s)
		if rng.Intn(3) == 0 && len(delivered) > 0 {
			before := len(events)
			decide(delivered[rng.Intn(len(delivered))])
			if len(events) != before {
				t.Fatalf("a redelivered stimulus produced %d new events", len(events)-before)
			}
		}
	}
	if !st.Terminal() {
		t.Fatalf("seed %d: case did not end: %s", seed, marshal(t, st))
	}
	return snaps, events
}

func replayWorkflows(base string) map[string]string {
	call := func(name, path string) string {
		return "        - " + name + ":\n            call: http\n            with:\n              method: get\n              endpoint: " + base + path + "\n"
	}
	return map[string]string{
		"fork":    header + "do:\n  - f:\n      fork:\n        branches:\n          - a:\n              do:\n" + indent(call("ca", "/a"), 8) + "          - b:\n              do:\n" + indent(call("cb", "/b"), 8) + "          - c:\n              wait: PT1S\n  - after:\n      set:\n        joined: ${ length }\n",
		"compete": header + "do:\n  - f:\n      fork:\n        compete: true\n        branches:\n          - a:\n              do:\n" + indent(call("ca", "/a"), 8) + "          - b:\n              do:\n" + indent(call("cb", "/b"), 8) + "",
		"loop":    header + "do:\n  - l:\n      for:\n        in: .items\n      do:\n" + call("c", "/item") + "        - w:\n            wait: PT1S\n",
	}
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pad + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestForkJoinsOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	for _, name := range []string{"fork", "compete"} {
		wf := load(t, replayWorkflows(srv.URL)[name])
		p, _ := Compile(wf)
		for seed := int64(1); seed <= 20; seed++ {
			_, events := driveRandomly(t, p, seed)
			joins, completed := 0, 0
			for _, e := range events {
				switch e.Type {
				case history.BranchJoined:
					joins++
				case history.BranchCompleted:
					completed++
				}
			}
			if joins != 1 {
				t.Fatalf("%s seed %d: %d joins", name, seed, joins)
			}
			if name == "compete" && completed != 1 {
				t.Fatalf("compete seed %d: %d branches completed, want only the first", seed, completed)
			}
			if name == "fork" && completed != 3 {
				t.Fatalf("fork seed %d: %d branches completed", seed, completed)
			}
		}
	}
}

func TestReplayRejectsDuplicates(t *testing.T) {
	res := run(t, header+"do:\n  - a:\n      set:\n        x: 1\n", nil, RunOptions{})
	h := append(append([]history.Event{}, res.History...), res.History[1])
	wf := load(t, header+"do:\n  - a:\n      set:\n        x: 1\n")
	if _, err := Replay(wf, h); err == nil {
		t.Fatal("a history applying an event twice must not replay")
	}
	if _, err := Replay(wf, res.History[1:]); err == nil {
		t.Fatal("a history without its start must not replay")
	}
}

// A retry policy's conditions see $error even when the catch names the
// error otherwise, as the validator allows.
func TestRetryConditionSeesErrorUnderAnyCatchName(t *testing.T) {
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls < 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer srv.Close()
	src := header + `use:
  retries:
    onUnavailable:
      when: ${ $error.status == 503 }
      delay:
        seconds: 1
      limit:
        attempt:
          count: 3
do:
  - attempt:
      try:
        - get:
            call: http
            with:
              method: get
              endpoint: ` + srv.URL + `
      catch:
        as: failure
        retry: onUnavailable
`
	wf, err := dsl.Load([]byte(src))
	if err != nil {
		t.Fatalf("the validator must accept $error in a shared retry policy: %v", err)
	}
	res, err := Run(context.Background(), wf, map[string]any{}, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustComplete(t, res, `{"ok":true}`)
	if calls != 2 {
		t.Fatalf("calls = %d, want 2 (one retry)", calls)
	}
}
