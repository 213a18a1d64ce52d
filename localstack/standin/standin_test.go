package standin

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestServicesDeduplicateOnIdempotencyKey(t *testing.T) {
	svc := New()
	srv := httptest.NewServer(svc)
	defer srv.Close()
	post := func(host, key string) (string, http.Header) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/charges", strings.NewReader(`{"amount":1}`))
		req.Host = host
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header
	}
	var wg sync.WaitGroup
	bodies := make([]string, 4)
	for i := range bodies {
		wg.Add(1)
		go func() { defer wg.Done(); bodies[i], _ = post("slow.acquirer.knhk.local", `"k1"`) }()
	}
	wg.Wait()
	for _, b := range bodies {
		if b != bodies[0] || !strings.Contains(b, "svc-charges") {
			t.Fatalf("answers differ or miss the stored response: %q", bodies)
		}
	}
	if _, h := post("slow.acquirer.knhk.local", `"k1"`); h.Get("Idempotent-Replayed") != "true" {
		t.Fatal("a repeat is not marked as replayed")
	}
	post("acquirer.knhk.local", `"k2"`)
	post("acquirer.knhk.local", "")
	post("acquirer.knhk.local", "")
	if st := svc.Stats(); st != (Stats{Requests: 8, Effects: 4, Replays: 4, Unkeyed: 2}) {
		t.Fatalf("stats %+v", st)
	}
}

// TestTunableDependency: the tunable host fails the share of calls set, in a
// fixed pattern, without performing their effect, so the retry of a failed
// key succeeds; a share of 0 fails nothing, 1 everything.
func TestTunableDependency(t *testing.T) {
	svc := New()
	srv := httptest.NewServer(svc)
	defer srv.Close()
	call := func(key string) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/quote", nil)
		req.Host = "tunable.quotes.knhk.local"
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		fail      float64
		calls     int
		wantFails int
	}{{0, 20, 0}, {0.3, 20, 6}, {0.5, 20, 10}, {1, 5, 5}} {
		svc.SetTunable(Tunable{Fail: c.fail})
		before := svc.Stats()
		fails := 0
		for i := range c.calls {
			if call(fmt.Sprintf("k-%v-%d", c.fail, i)) == http.StatusServiceUnavailable {
				fails++
			}
		}
		after := svc.Stats()
		if fails != c.wantFails {
			t.Errorf("share %v: %d of %d calls failed, want %d", c.fail, fails, c.calls, c.wantFails)
		}
		if got := after.Effects - before.Effects; got != c.calls-fails {
			t.Errorf("share %v: %d effects, want one per successful call (%d)", c.fail, got, c.calls-fails)
		}
		if got := after.Requests - before.Requests; got != c.calls {
			t.Errorf("share %v: %d requests counted, want %d", c.fail, got, c.calls)
		}
	}
	// A failed key is not stored: its retry performs the effect.
	svc.SetTunable(Tunable{Fail: 1})
	if got := call("retried"); got != http.StatusServiceUnavailable {
		t.Fatalf("first call %d, want 503", got)
	}
	svc.SetTunable(Tunable{})
	if got := call("retried"); got != http.StatusOK {
		t.Fatalf("retry %d, want 200", got)
	}
}
