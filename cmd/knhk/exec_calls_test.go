package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/knhk/knhk/shared/workflow/engine/grpccall/grpctest"
)

// TestExecGRPCScriptAndOAuth2 runs, through knhk exec, a workflow that calls
// a gRPC stand-in (proto file beside the workflow), an HTTP API behind an
// oauth2 client-credentials policy (twice, one token), and a script.
func TestExecGRPCScriptAndOAuth2(t *testing.T) {
	srv := grpctest.Greeter(t)
	var tokens atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("grant_type") != "client_credentials" || r.FormValue("client_secret") != "s3cr3t" {
			w.WriteHeader(401)
			return
		}
		tokens.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"tok-abc","token_type":"Bearer","expires_in":3600}`)
	}))
	defer idp.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-abc" {
			w.WriteHeader(401)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"rate":2}`)
	}))
	defer api.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "greeter.proto"), []byte(grpctest.GreeterProto), 0o600); err != nil {
		t.Fatal(err)
	}
	rate := func(name string) string {
		return `  - ` + name + `:
      call: http
      with:
        method: get
        endpoint:
          uri: ` + api.URL + `/rate
          authentication:
            use: idp
      export:
        as: '${ $context + {rate: .rate} }'
`
	}
	src := `document:
  dsl: '1.0.0'
  namespace: test
  name: calls
  version: '1.0.0'
use:
  authentications:
    idp:
      oauth2:
        authority: ` + idp.URL + `
        grant: client_credentials
        client:
          id: knhk
          secret: s3cr3t
do:
` + rate("rate1") + rate("rate2") + `  - hello:
      call: grpc
      with:
        proto:
          endpoint: file://` + filepath.ToSlash(filepath.Join(dir, "greeter.proto")) + `
        service:
          name: demo.Greeter
          host: 127.0.0.1
          port: ` + fmt.Sprint(srv.Port) + `
        method: SayHello
        arguments:
          name: Ada
  - shout:
      run:
        script:
          language: js
          arguments:
            greeting: ${ .message }
            rate: ${ $context.rate }
          code: '({ loud: greeting.toUpperCase(), doubled: rate * 2 })'
`
	wfPath := filepath.Join(dir, "calls.yaml")
	if err := os.WriteFile(wfPath, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	receipts := filepath.Join(dir, "r.jsonl")
	out, err := execute(t, "", "exec", wfPath, "--receipts", receipts)
	if err != nil {
		t.Fatalf("exec: %v\n%s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || got["loud"] != "HELLO ADA" || got["doubled"] != float64(4) {
		t.Fatalf("output %s (%v)", out, err)
	}
	if n := tokens.Load(); n != 1 {
		t.Fatalf("%d token requests for two calls, want 1", n)
	}
	data, err := os.ReadFile(receipts)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "tok-abc") {
		t.Fatal("the token is in the receipts")
	}
	// Python stays unsupported, at validation.
	py := filepath.Join(dir, "py.yaml")
	if err := os.WriteFile(py, []byte("document: {dsl: '1.0.0', namespace: t, name: py, version: '1.0.0'}\ndo:\n  - p:\n      run:\n        script:\n          language: python\n          code: print(1)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := execute(t, "", "exec", py); err == nil || !strings.Contains(err.Error(), "unsupported: python scripts") {
		t.Fatalf("python: %v", err)
	}
}
