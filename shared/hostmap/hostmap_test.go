package hostmap

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestParse(t *testing.T) {
	m, err := Parse(" knhk.local=127.0.0.1:8080, .example.test=127.0.0.1:9 ")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"fraud.knhk.local": "127.0.0.1:8080", "KNHK.LOCAL": "127.0.0.1:8080", "a.b.example.test": "127.0.0.1:9",
		"notknhk.local": "", "knhk.local.evil.com": "", "example.com": "",
	}
	for host, want := range cases {
		got, ok := m.Lookup(host)
		if ok != (want != "") || got != want {
			t.Errorf("Lookup(%q) = %q %v, want %q", host, got, ok, want)
		}
	}
	for _, bad := range []string{"knhk.local", "=127.0.0.1:1", "knhk.local=nohostport"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if m, err := Parse(""); err != nil || len(m) != 0 {
		t.Fatalf("empty map: %v %v", m, err)
	}
}

func TestTransportRoutesMappedHosts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Host)
	}))
	defer srv.Close()
	m := Map{"knhk.local": srv.Listener.Addr().String()}
	c := &http.Client{Transport: m.Transport(http.DefaultTransport.(*http.Transport))}
	resp, err := c.Get("http://fraud.knhk.local/score")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "fraud.knhk.local" {
		t.Fatalf("the stand-in saw host %q; the Host header must be kept", b)
	}
	if _, err := c.Get("http://unmapped.invalid/"); err == nil {
		t.Fatal("an unmapped host was routed")
	}
}
