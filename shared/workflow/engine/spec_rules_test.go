package engine

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/knhk/knhk/shared/history"
)

// TestRetryLimitAttemptCountIsRetriesAfterFirstAttempt pins the schema's
// "maximum amount of retry attempts": count N allows N retries after the
// first attempt, N+1 calls in total.
func TestRetryLimitAttemptCountIsRetriesAfterFirstAttempt(t *testing.T) {
	for _, count := range []int{1, 2, 4} {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
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
              count: ` + strconv.Itoa(count) + `
`
		res := run(t, src, nil, RunOptions{})
		srv.Close()
		mustFault(t, res, ErrCommunication, "/do/0/attempt/try/0/get")
		retried := 0
		for _, e := range res.History {
			if e.Type == history.TaskRetried {
				retried++
			}
		}
		if retried != count || int(calls.Load()) != count+1 {
			t.Errorf("count %d: %d retries and %d calls, want %d and %d", count, retried, calls.Load(), count, count+1)
		}
	}
}

// TestAuthenticationCredentialNullOrEmptyIsAFault pins the DSL's bearer
// `token` and basic `username`/`password` as required credentials: one that
// evaluates to null or empty faults the call, and no request is sent.
func TestAuthenticationCredentialNullOrEmptyIsAFault(t *testing.T) {
	var sent atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	call := func(auth string) string {
		return header + `do:
  - get:
      call: http
      with:
        method: get
        endpoint:
          uri: ` + srv.URL + `
          authentication:
` + auth
	}
	for _, tc := range []struct {
		name, auth string
		input      map[string]any
		fault      bool
	}{
		{"bearer null", "            bearer:\n              token: ${ .token }\n", map[string]any{}, true},
		{"bearer empty", "            bearer:\n              token: ${ .token }\n", map[string]any{"token": ""}, true},
		{"bearer given", "            bearer:\n              token: ${ .token }\n", map[string]any{"token": "t0k"}, false},
		{"basic null password", "            basic:\n              username: ada\n              password: ${ .pw }\n", map[string]any{}, true},
		{"basic empty username", "            basic:\n              username: ${ .user }\n              password: pw\n", map[string]any{"user": ""}, true},
		{"basic given", "            basic:\n              username: ada\n              password: ${ .pw }\n", map[string]any{"pw": "s3"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent.Store(0)
			res := run(t, call(tc.auth), tc.input, RunOptions{})
			if !tc.fault {
				mustComplete(t, res, `{"ok":true}`)
				if sent.Load() != 1 {
					t.Fatalf("%d requests, want one", sent.Load())
				}
				return
			}
			mustFault(t, res, ErrAuthentication, "/do/0/get")
			if n := sent.Load(); n != 0 {
				t.Fatalf("%d requests sent, want none", n)
			}
		})
	}
}

// TestListenUntilConsumedEventsAreNotOutput pins the DSL's `any` consumption
// with `until` as a consumption strategy: events are consumed until the
// until strategy is satisfied, and the events it consumed end the task
// without being part of its output.
func TestListenUntilConsumedEventsAreNotOutput(t *testing.T) {
	ev := func(id, typ string) map[string]any {
		return map[string]any{"specversion": "1.0", "id": id, "source": "s", "type": typ, "data": id}
	}
	listen := func(until string) string {
		return header + `do:
  - collect:
      listen:
        to:
          any:
            - with:
                type: tick
          until:
` + until
	}
	one := "            one:\n              with:\n                type: stop\n"
	all := "            all:\n              - with:\n                  type: a\n              - with:\n                  type: b\n"
	for _, tc := range []struct {
		name   string
		src    string
		events []map[string]any
		want   string // the output; "" while the task still waits
		taken  int    // EventReceived in the history
	}{
		{"one until event ends it", listen(one), []map[string]any{ev("t1", "tick"), ev("t2", "tick"), ev("s", "stop"), ev("t3", "tick")}, `["t1","t2"]`, 3},
		{"the until event alone ends it with nothing consumed", listen(one), []map[string]any{ev("s", "stop")}, `[]`, 1},
		{"all until events are needed", listen(all), []map[string]any{ev("a1", "a"), ev("t1", "tick"), ev("a2", "a"), ev("b1", "b"), ev("t2", "tick")}, `["t1"]`, 3},
		{"still waiting for the until event", listen(one), []map[string]any{ev("t1", "tick"), ev("x", "other")}, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, tc.src, nil, RunOptions{Events: tc.events})
			if tc.want == "" {
				if res.Status != StatusRunning {
					t.Fatalf("status %s, want the task still waiting", res.Status)
				}
			} else {
				mustComplete(t, res, tc.want)
			}
			if n := countType(res, history.EventReceived); n != tc.taken {
				t.Fatalf("%d events consumed, want %d: %v", n, tc.taken, res.History)
			}
			// The recorded history replays to the same state.
			st, err := Replay(load(t, tc.src), res.History)
			if err != nil || st.Status != res.Status || js(st.Output) != js(res.Output) {
				t.Fatalf("replay: %v, status %s output %s", err, st.Status, js(st.Output))
			}
		})
	}
}
