package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/knhk/knhk/shared/history"
)

type memPublisher struct{ events []cloudevents.Event }

func (m *memPublisher) Publish(_ context.Context, ev cloudevents.Event) error {
	m.events = append(m.events, ev)
	return nil
}

func TestEmit(t *testing.T) {
	pub := &memPublisher{}
	res := run(t, header+`do:
  - tell:
      emit:
        event:
          with:
            source: https://shop.example
            type: order.placed
            subject: ${ .id }
            region: eu
            data:
              id: ${ .id }
`, map[string]any{"id": "o-1"}, RunOptions{CaseID: "c1", Publisher: pub})
	mustComplete(t, res, "")
	if len(pub.events) != 1 {
		t.Fatalf("published %d events", len(pub.events))
	}
	ev := pub.events[0]
	if ev.Type() != "order.placed" || ev.Subject() != "o-1" || ev.Extensions()["region"] != "eu" || !ev.Time().Equal(t0) || ev.ID() == "" {
		t.Fatalf("event %v", ev)
	}
	if countType(res, history.EventEmitted) != 1 {
		t.Fatal("an emit is recorded by one event.emitted")
	}
	again := run(t, header+"do:\n  - tell:\n      emit:\n        event:\n          with:\n            source: https://shop.example\n            type: order.placed\n", nil, RunOptions{CaseID: "c1"})
	if again.Output.(map[string]any)["id"] != res.Output.(map[string]any)["id"] {
		t.Fatal("event ids must be derived from the case and task, not random")
	}
	bad := run(t, header+"do:\n  - tell:\n      emit:\n        event:\n          with:\n            source: ${ .nope }\n            type: x\n", nil, RunOptions{})
	mustFault(t, bad, ErrValidation, "/do/0/tell")
}

func TestListenAllAndCorrelation(t *testing.T) {
	src := header + `do:
  - both:
      listen:
        to:
          all:
            - with:
                type: paid
              correlate:
                order:
                  from: ${ .subject }
                  expect: ${ .order }
            - with:
                type: shipped
  - out:
      set:
        kinds: ${ map(.k) }
`
	ev := func(id, typ, subject string) map[string]any {
		return map[string]any{"specversion": "1.0", "id": id, "source": "s", "type": typ, "subject": subject, "data": map[string]any{"k": id}}
	}
	res := run(t, src, map[string]any{"order": "o-1"}, RunOptions{Events: []map[string]any{
		ev("1", "paid", "o-2"), ev("2", "shipped", "o-1"), ev("3", "shipped", "o-1"), ev("4", "paid", "o-1"),
	}})
	mustComplete(t, res, `{"kinds":["2","4"]}`)
	if countType(res, history.EventReceived) != 2 || countType(res, history.EventAwaited) != 1 {
		t.Fatalf("history %v", res.History)
	}
}

func TestListenAnyUntil(t *testing.T) {
	src := header + `do:
  - collect:
      listen:
        to:
          any:
            - with:
                type: tick
          until: length >= 3
`
	var evs []map[string]any
	for i := range 5 {
		evs = append(evs, map[string]any{"specversion": "1.0", "id": fmt.Sprint(i), "source": "s", "type": "tick", "data": i})
	}
	mustComplete(t, run(t, src, nil, RunOptions{Events: evs}), `[0,1,2]`)
}

func TestHTTPCallRendering(t *testing.T) {
	var got *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer srv.Close()
	src := header + `use:
  secrets: [api]
  authentications:
    apiAuth:
      bearer:
        token: ${ $secrets.api.token }
do:
  - send:
      call: http
      with:
        method: post
        endpoint:
          uri: ${ "` + srv.URL + `/orders/" + .id }
          authentication:
            use: apiAuth
        headers:
          X-Order: ${ .id }
        query:
          dry: 'true'
        body:
          total: ${ .total }
`
	res := run(t, src, map[string]any{"id": "o 1", "total": 12.5}, RunOptions{Options: Options{Secrets: map[string]any{"api": map[string]any{"token": "tk"}}}})
	mustComplete(t, res, `{"ok":true}`)
	if got.Method != "POST" || got.URL.Path != "/orders/o 1" || got.URL.RawQuery != "dry=true" || got.Header.Get("X-Order") != "o 1" ||
		got.Header.Get("Authorization") != "Bearer tk" || body != `{"total":12.5}` {
		t.Fatalf("request %s %s %s %v body %s", got.Method, got.URL.Path, got.URL.RawQuery, got.Header, body)
	}
	for _, e := range res.History {
		if strings.Contains(string(e.Data), "tk") {
			t.Fatalf("a credential leaked into the history: %s", e.Data)
		}
	}
}

func TestURITemplate(t *testing.T) {
	cases := []struct {
		tpl  string
		data any
		want string
		err  bool
	}{
		{"https://x/pet/{id}", map[string]any{"id": 1}, "https://x/pet/1", false},
		{"https://x/find?q={q}", map[string]any{"q": "a b&c"}, "https://x/find?q=a%20b%26c", false},
		{"https://x/{a}/{b}", map[string]any{"a": "x", "b": true}, "https://x/x/true", false},
		{"https://x/{missing}", map[string]any{}, "", true},
		{"https://x/{open", map[string]any{}, "", true},
		{"https://x/plain", nil, "https://x/plain", false},
	}
	for _, c := range cases {
		got, err := expandURI(c.tpl, c.data)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("expandURI(%q) = %q, %v", c.tpl, got, err)
		}
	}
}

func TestErrorTypeSpellings(t *testing.T) {
	cases := []struct {
		a, b string
		same bool
	}{
		{ErrCommunication, "https://serverlessworkflow.io/dsl/errors/types/communication", true},
		{ErrTimeout, "https://serverlessworkflow.io/spec/1.0.0/errors/timeout", true},
		{ErrTimeout, ErrCommunication, false},
		{"https://example.com/errors/communication", ErrCommunication, false},
		{"https://serverlessworkflow.io/errors/types/compliance", "https://serverlessworkflow.io/errors/types/compliance", true},
	}
	for _, c := range cases {
		if got := sameErrorType(c.a, c.b); got != c.same {
			t.Errorf("sameErrorType(%s, %s) = %v", c.a, c.b, got)
		}
	}
}

func TestRetryDelayIsDeterministic(t *testing.T) {
	wf := load(t, header+`do:
  - t:
      try:
        - r:
            raise:
              error:
                type: https://example.com/e
                status: 500
      catch:
        retry:
          delay:
            seconds: 1
          backoff:
            linear: {}
          jitter:
            from:
              seconds: 0
            to:
              seconds: 1
          limit:
            attempt:
              count: 3
`)
	p, _ := Compile(wf)
	due := func(caseID string) []string {
		st := NewState()
		var out []string
		dec, _ := p.Decide(context.Background(), st, Start{CaseID: caseID, Time: t0}, Options{})
		for len(dec.Effects) > 0 {
			e := dec.Effects[0]
			out = append(out, e.Due.Sub(t0).String())
			dec, _ = p.Decide(context.Background(), st, TimerFired{ID: e.ID, Time: e.Due}, Options{})
		}
		if st.Status != StatusFaulted {
			t.Fatalf("status %s", st.Status)
		}
		return out
	}
	a, b, c := due("case-a"), due("case-a"), due("case-b")
	if len(a) != 3 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("delays %v and %v must be equal and three (count: 3 retries)", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Fatalf("jitter must depend on the case: %v", a)
	}
}

func TestRedrive(t *testing.T) {
	wf := load(t, header+`do:
  - both:
      fork:
        branches:
          - call:
              call: http
              with:
                method: get
                endpoint: http://svc.example/x
          - pause:
              wait: PT5S
`)
	p, _ := Compile(wf)
	st := NewState()
	ctx := context.Background()
	first, _ := p.Decide(ctx, st, Start{Time: t0}, Options{})
	if len(first.Effects) != 2 {
		t.Fatalf("effects %v", first.Effects)
	}
	quiet, _ := p.Decide(ctx, st, Resume{Time: t0}, Options{})
	if len(quiet.Effects) != 0 || len(quiet.Events) != 0 {
		t.Fatal("a plain resume repeats nothing")
	}
	again, _ := p.Decide(ctx, st, Resume{Time: t0, Redrive: true}, Options{})
	if len(again.Events) != 0 || len(again.Effects) != 2 {
		t.Fatalf("redrive: %d events, %d effects", len(again.Events), len(again.Effects))
	}
	b1, _ := json.Marshal(first.Effects)
	b2, _ := json.Marshal(again.Effects)
	if string(b1) != string(b2) {
		t.Fatalf("redriven effects differ:\n%s\n%s", b1, b2)
	}
	call := first.Effects[0]
	if call.Kind != EffectHTTP {
		call = first.Effects[1]
	}
	_, _ = p.Decide(ctx, st, EffectResult{ID: call.ID, Output: 1, Time: t0}, Options{})
	dup, _ := p.Decide(ctx, st, EffectResult{ID: call.ID, Output: 2, Time: t0}, Options{})
	if len(dup.Events) != 0 {
		t.Fatal("a result is accepted once")
	}
}

func TestFlowDirectives(t *testing.T) {
	mustComplete(t, run(t, header+`do:
  - outer:
      do:
        - a:
            set:
              v: 1
            then: exit
        - b:
            set:
              v: 2
  - after:
      set:
        v: ${ .v + 10 }
  - skipped:
      if: .v > 100
      set:
        v: 0
`, nil, RunOptions{}), `{"v":11}`)
	mustFault(t, run(t, header+"do:\n  - a:\n      set:\n        v: 1\n      then: nowhere\n", nil, RunOptions{}), ErrConfiguration, "/do/0/a")
}

func TestStepBudget(t *testing.T) {
	res := run(t, header+"do:\n  - spin:\n      set:\n        n: ${ .n + 1 }\n      then: spin\n", map[string]any{"n": 0}, RunOptions{Options: Options{StepBudget: 100}})
	e := mustFault(t, res, ErrRuntime, "/do/0/spin")
	if !strings.Contains(e.Detail, "step budget") {
		t.Fatalf("detail %q", e.Detail)
	}
	if n := countType(res, history.TaskCompleted); n != 100 {
		t.Fatalf("%d tasks ran, want the budget of 100", n)
	}
}
