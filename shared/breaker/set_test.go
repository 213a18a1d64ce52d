package breaker

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSetKeepsOneBreakerPerKey(t *testing.T) {
	s := NewSet(Config{FailureThreshold: 1})
	if s.Get("a") != s.Get("a") {
		t.Fatal("two breakers for one key")
	}
	if s.State("never-used") != Closed {
		t.Fatal("unknown key not closed")
	}
	_ = s.Do("a", func() error { return errBoom })
	if s.State("a") != Open || s.State("b") != Closed {
		t.Fatalf("states a=%s b=%s, want open and closed", s.State("a"), s.State("b"))
	}
	if err := s.Do("a", func() error { t.Fatal("ran through an open breaker"); return nil }); !errors.Is(err, ErrOpen) {
		t.Fatalf("err %v, want ErrOpen", err)
	}
	if err := s.Do("b", func() error { return nil }); err != nil {
		t.Fatalf("other host affected: %v", err)
	}
}

func TestTransportCountsStatusesAndTransportErrors(t *testing.T) {
	var status atomic.Int32
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()

	tests := []struct {
		status   int
		failures bool
	}{
		{http.StatusOK, false},
		{http.StatusNotFound, false},
		{http.StatusBadRequest, false},
		{http.StatusTooManyRequests, true},
		{http.StatusInternalServerError, true},
		{http.StatusServiceUnavailable, true},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			clk := newClock()
			set := NewSet(Config{FailureThreshold: 2, OpenInterval: time.Minute, Clock: clk.Now})
			client := &http.Client{Transport: set.Transport(nil)}
			status.Store(int32(tc.status))
			hits.Store(0)
			for range 3 {
				resp, err := client.Get(srv.URL)
				if err != nil {
					if !tc.failures || !errors.Is(err, ErrOpen) {
						t.Fatalf("unexpected error %v", err)
					}
					continue
				}
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d passed through", resp.StatusCode, tc.status)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
			host := strings.TrimPrefix(srv.URL, "http://")
			wantState, wantHits := Closed, int32(3)
			if tc.failures {
				wantState, wantHits = Open, 2
			}
			if got := set.State(host); got != wantState {
				t.Fatalf("state %s, want %s", got, wantState)
			}
			if hits.Load() != wantHits {
				t.Fatalf("server saw %d requests, want %d", hits.Load(), wantHits)
			}
		})
	}
}

func TestTransportErrorOpensAndRejectsWithHost(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close() // nothing listens there any more: every dial fails

	var rejected []string
	set := NewSet(Config{FailureThreshold: 1, OpenInterval: time.Minute, OnReject: func(key string) { rejected = append(rejected, key) }})
	client := &http.Client{Transport: set.Transport(http.DefaultTransport)}
	if _, err := client.Get("http://" + addr + "/x"); err == nil || errors.Is(err, ErrOpen) {
		t.Fatalf("first request: err %v, want a dial error", err)
	}
	_, err := client.Post("http://"+addr+"/x", "text/plain", strings.NewReader("body"))
	var oe *OpenError
	if !errors.As(err, &oe) || oe.Host != addr || oe.RetryAfter <= 0 {
		t.Fatalf("second request: err %v, want an OpenError for %s", err, addr)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Fatalf("client did not wrap the rejection in *url.Error: %T", err)
	}
	if len(rejected) != 1 || rejected[0] != addr {
		t.Fatalf("OnReject calls %v, want one for %s (the dial error is a failure, not a rejection)", rejected, addr)
	}
}

func TestFailedStatus(t *testing.T) {
	for code, want := range map[int]bool{200: false, 204: false, 301: false, 404: false, 428: false, 429: true, 499: false, 500: true, 502: true, 599: true} {
		if FailedStatus(code) != want {
			t.Errorf("FailedStatus(%d) = %v, want %v", code, !want, want)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{name: "defaults", want: Config{FailureThreshold: DefaultFailureThreshold, OpenInterval: DefaultOpenInterval, SuccessThreshold: DefaultSuccessThreshold}},
		{
			name: "all set",
			env:  map[string]string{"HTTP_FAILURE_THRESHOLD": "7", "HTTP_OPEN_INTERVAL": "1m30s", "HTTP_SUCCESS_THRESHOLD": "4"},
			want: Config{FailureThreshold: 7, OpenInterval: 90 * time.Second, SuccessThreshold: 4},
		},
		{
			name: "empty values keep defaults",
			env:  map[string]string{"HTTP_FAILURE_THRESHOLD": "", "HTTP_OPEN_INTERVAL": ""},
			want: Config{FailureThreshold: DefaultFailureThreshold, OpenInterval: DefaultOpenInterval, SuccessThreshold: DefaultSuccessThreshold},
		},
		{name: "non-integer", env: map[string]string{"HTTP_FAILURE_THRESHOLD": "five"}, wantErr: "HTTP_FAILURE_THRESHOLD"},
		{name: "zero", env: map[string]string{"HTTP_SUCCESS_THRESHOLD": "0"}, wantErr: "HTTP_SUCCESS_THRESHOLD"},
		{name: "bad duration", env: map[string]string{"HTTP_OPEN_INTERVAL": "30"}, wantErr: "HTTP_OPEN_INTERVAL"},
		{name: "negative duration", env: map[string]string{"HTTP_OPEN_INTERVAL": "-1s"}, wantErr: "HTTP_OPEN_INTERVAL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"HTTP_FAILURE_THRESHOLD", "HTTP_OPEN_INTERVAL", "HTTP_SUCCESS_THRESHOLD"} {
				t.Setenv(k, tc.env[k])
			}
			got, err := ConfigFromEnv("HTTP")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.FailureThreshold != tc.want.FailureThreshold || got.OpenInterval != tc.want.OpenInterval || got.SuccessThreshold != tc.want.SuccessThreshold {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func BenchmarkDoClosed(b *testing.B) {
	s := NewSet(Config{})
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Do("api.example.com", func() error { return nil })
	}
}
