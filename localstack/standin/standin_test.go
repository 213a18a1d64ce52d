package standin

import (
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
