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
