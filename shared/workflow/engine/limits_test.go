package engine

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/limits"
)

func deep(n int) any {
	var v any = 1
	for range n {
		v = []any{v}
	}
	return v
}

func TestLimits(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, strings.Repeat("[", 600)+strings.Repeat("]", 600))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name, src string
		input     any
		instance  string
	}{
		{"start input too deep (512)", header + "do:\n  - a:\n      set:\n        x: 1\n", map[string]any{"x": deep(512)}, "/"},
		{"start input too deep (600)", header + "do:\n  - a:\n      set:\n        x: 1\n", deep(600), "/"},
		{"expression result too deep", header + "do:\n  - a:\n      set:\n        x: '${ reduce range(0; 70) as $i (1; [.]) }'\n", map[string]any{}, "/do/0/a"},
		{"expression result too large", header + "do:\n  - a:\n      set:\n        x: '${ [range(0; 70000)] | map(tostring) | join(\"-\") }'\n", map[string]any{}, "/do/0/a"},
		{"HTTP result too deep", header + "do:\n  - get:\n      call: http\n      with:\n        method: get\n        endpoint: " + srv.URL + "\n", map[string]any{}, "/do/0/get"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, tc.src, tc.input, RunOptions{})
			e := mustFault(t, res, ErrRuntime, tc.instance)
			if e.Status != 413 || !strings.Contains(e.Detail, "over the limit") {
				t.Fatalf("error %+v, want a 413 naming the limit", e)
			}
			for _, ev := range res.History {
				for _, p := range [][]byte{ev.Input, ev.Output, ev.Data} {
					if err := limits.CheckJSON("p", p); len(p) > 0 && err != nil {
						t.Fatalf("%s records a value over the limits: %v", ev.Type, err)
					}
				}
			}
		})
	}
	ok := run(t, header+"do:\n  - a:\n      set:\n        x: ${ .x }\n", map[string]any{"x": deep(limits.MaxDepth - 2)}, RunOptions{})
	mustComplete(t, ok, "")
}

// TestSecretsNeverRecorded runs a workflow that puts secrets in a header,
// the query, the body and its outputs and errors, and finds none of them in
// the recorded history; the call itself carried the real values, and the
// history replays to the same state.
func TestSecretsNeverRecorded(t *testing.T) {
	const key, token, pw = "sk_live_9f8e7d6c", "tok-1a2b3c4d5e", "hunter2-pass"
	var got http.Header
	var gotQuery, gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, gotQuery = r.Header.Clone(), r.URL.RawQuery
		b := make([]byte, 1024)
		n, _ := r.Body.Read(b)
		gotBody = string(b[:n])
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "session="+token)
		fmt.Fprintf(w, `{"echo":%q}`, "your key is "+key)
	}))
	defer srv.Close()
	src := header + `use:
  secrets: [api, creds]
do:
  - call:
      call: http
      with:
        method: post
        endpoint: ` + srv.URL + `/pay
        headers:
          X-Api-Key: ${ $secrets.api }
          X-Custom-Token: ${ $secrets.creds.token }
        query:
          key: ${ $secrets.api }
        body:
          nested: '${ "{\"pw\":\"" + $secrets.creds.password + "\"}" }'
        output: response
  - keep:
      set:
        copied: ${ $secrets.creds.token }
        echoed: ${ .content.echo }
  - fail:
      raise:
        error:
          type: https://example.com/errors/x
          status: 400
          detail: ${ "bad password " + $secrets.creds.password }
`
	sec := map[string]any{"api": key, "creds": map[string]any{"token": token, "password": pw}}
	res := run(t, src, map[string]any{}, RunOptions{Options: Options{Secrets: sec}})
	mustFault(t, res, "https://example.com/errors/x", "")
	if got.Get("X-Api-Key") != key || got.Get("X-Custom-Token") != token || !strings.Contains(gotQuery, key) || !strings.Contains(gotBody, pw) {
		t.Fatalf("the call did not carry the real values: %v %q %q", got, gotQuery, gotBody)
	}
	all, _ := json.Marshal(res.History)
	for _, s := range []string{key, token, pw} {
		if strings.Contains(string(all), s) {
			t.Fatalf("secret %q recorded: %s", s, all)
		}
	}
	if !strings.Contains(string(all), "[redacted]") {
		t.Fatal("nothing was redacted")
	}
	st, err := Replay(load(t, src), res.History)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusFaulted || !reflect.DeepEqual(st.Error, res.Error) {
		t.Fatalf("replay: %s %+v, live %+v", st.Status, st.Error, res.Error)
	}
	_ = history.TaskCompleted
}
