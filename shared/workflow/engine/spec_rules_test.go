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
