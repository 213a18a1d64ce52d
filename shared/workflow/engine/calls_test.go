package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/engine/grpccall/grpctest"
)

func historyJSON(t *testing.T, res *RunResult) string {
	t.Helper()
	data, err := json.Marshal(res.History)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestRunScript(t *testing.T) {
	src := header + `do:
  - price:
      run:
        script:
          language: js
          arguments:
            - ${ .amount | tostring }
          environment:
            RATE: ${ .rate }
          code: |
            const amount = Number(argv[0]);
            console.log(JSON.stringify({ total: amount * process.env.RATE, started: new Date().toISOString() }));
  - named:
      run:
        script:
          language: js
          arguments:
            order: ${ . }
          code: order.total + 1
`
	res := run(t, src, map[string]any{"amount": 10, "rate": 1.5}, RunOptions{CaseID: "c-script"})
	mustComplete(t, res, "16")
	if countType(res, history.EffectRequested) != 2 {
		t.Fatal("each script run is requested as an effect")
	}
	if !strings.Contains(historyJSON(t, res), `"language":"js"`) {
		t.Fatal("the script request is recorded")
	}
	// The history replays into the same state.
	st, err := Replay(load(t, src), res.History)
	if err != nil || st.Status != StatusCompleted || string(st.Output) != "16" {
		t.Fatalf("replay: %v %s %s", err, st.Status, st.Output)
	}
}

func TestRunScriptClockAndRandomAreTheCase(t *testing.T) {
	src := header + `do:
  - r:
      run:
        script:
          language: js
          code: '({ now: new Date().toISOString(), r: Math.random() })'
`
	a := run(t, src, nil, RunOptions{CaseID: "c-1"})
	b := run(t, src, nil, RunOptions{CaseID: "c-1"})
	c := run(t, src, nil, RunOptions{CaseID: "c-2"})
	mustComplete(t, a, "")
	if js(a.Output) != js(b.Output) {
		t.Fatalf("same case, different results: %s %s", js(a.Output), js(b.Output))
	}
	if js(a.Output) == js(c.Output) {
		t.Fatalf("another case, same random numbers: %s", js(a.Output))
	}
	if now := a.Output.(map[string]any)["now"]; now != t0.Format("2006-01-02T15:04:05.000Z") {
		t.Fatalf("the script's clock says %v, want the case's start %v", now, t0)
	}
}

func TestRunScriptFaults(t *testing.T) {
	tests := []struct {
		name, task, typ string
		status          int
	}{
		{"a throw", `run: {script: {language: js, code: 'throw new Error("declined")'}}`, ErrRuntime, 500},
		{"the task's timeout stops an endless loop", "timeout: {after: PT0.05S}\n      run: {script: {language: js, code: 'for (;;) {}'}}", ErrTimeout, 408},
		{"python", `run: {script: {language: python, code: 'print(1)'}}`, ErrConfiguration, 400},
		{"an external source", `run: {script: {language: js, source: {endpoint: 'https://x/s.js'}}}`, ErrConfiguration, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, header+"do:\n  - s:\n      "+tc.task+"\n", nil, RunOptions{})
			e := mustFault(t, res, tc.typ, "/do/0/s")
			if e.Status != tc.status {
				t.Fatalf("status %d, want %d (%s)", e.Status, tc.status, e.Detail)
			}
		})
	}
	// A caught script fault leaves the workflow running.
	res := run(t, header+`do:
  - guarded:
      try:
        - s:
            run: {script: {language: js, code: 'throw "no"'}}
      catch:
        as: err
        do:
          - note:
              set:
                caught: ${ $err.detail }
`, nil, RunOptions{})
	mustComplete(t, res, `{"caught":"the script threw: no"}`)
}

func grpcTask(srv *grpctest.Server, method string) string {
	return fmt.Sprintf(`call: grpc
      with:
        proto:
          endpoint: %s
        service:
          name: demo.Greeter
          host: 127.0.0.1
          port: %d
        method: %s
        arguments:
          name: ${ .who }`, srv.ProtoURL["greeter.proto"], srv.Port, method)
}

func TestGRPCCall(t *testing.T) {
	srv := grpctest.Greeter(t)
	src := header + "do:\n  - hello:\n      " + grpcTask(srv, "SayHello") + "\n      output:\n        as: ${ .message }\n"
	res := run(t, src, map[string]any{"who": "Ada"}, RunOptions{CaseID: "c-grpc"})
	mustComplete(t, res, `"hello Ada"`)
	if !strings.Contains(historyJSON(t, res), `"method":"SayHello"`) {
		t.Fatal("the gRPC request is recorded")
	}
	if calls := srv.Calls(); len(calls) != 1 || calls[0].Request["name"] != "Ada" {
		t.Fatalf("calls %v", calls)
	}
}

func TestGRPCCallFaults(t *testing.T) {
	srv := grpctest.Greeter(t)
	tests := []struct {
		name, task string
		status     int
		detail     string
	}{
		{"the task's timeout is the call's deadline", "timeout: {after: PT0.1S}\n      " + grpcTask(srv, "Slow"), 504, "DeadlineExceeded"},
		{"streaming methods", grpcTask(srv, "Watch"), 400, "unsupported: demo.Greeter/Watch is a streaming method"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, header+"do:\n  - g:\n      "+tc.task+"\n", map[string]any{"who": "x"}, RunOptions{})
			e := mustFault(t, res, "", "/do/0/g")
			if e.Status != tc.status || !strings.Contains(e.Detail, tc.detail) {
				t.Fatalf("got %d %q, want %d %q", e.Status, e.Detail, tc.status, tc.detail)
			}
		})
	}
}

func TestPerformerSendsTheIdempotencyKey(t *testing.T) {
	srv := grpctest.Greeter(t)
	src := header + "do:\n  - hello:\n      " + grpcTask(srv, "SayHello") + "\n"
	p, err := Compile(load(t, src))
	if err != nil {
		t.Fatal(err)
	}
	st := NewState()
	dec, err := p.Decide(context.Background(), st, Start{CaseID: "c", Input: map[string]any{"who": "k"}, Time: t0}, Options{})
	if err != nil || len(dec.Effects) != 1 || dec.Effects[0].Kind != EffectGRPC {
		t.Fatalf("effects %v, %v", dec.Effects, err)
	}
	out, perr := NewPerformer(nil, nil, nil).Perform(context.Background(), dec.Effects[0], `"knhk-abc"`)
	if perr != nil || out.(map[string]any)["key"] != `"knhk-abc"` {
		t.Fatalf("got %v, %+v", out, perr)
	}
}

func TestOAuth2Authentication(t *testing.T) {
	var tokenRequests atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth2/token" || r.FormValue("client_secret") != "s3cr3t-client" {
			w.WriteHeader(401)
			return
		}
		n := tokenRequests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok-%d-secretish","token_type":"Bearer","expires_in":3600}`, n)
	}))
	defer idp.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); !strings.HasPrefix(a, "Bearer tok-") || !strings.HasSuffix(a, "-secretish") {
			w.WriteHeader(401)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer api.Close()
	call := func(name string) string {
		return fmt.Sprintf(`  - %s:
      call: http
      with:
        method: get
        output: response
        endpoint:
          uri: %s/orders
          authentication:
            use: idp
`, name, api.URL)
	}
	src := header + `use:
  secrets: [idpClient]
  authentications:
    idp:
      oauth2:
        use: idpClient
do:
` + call("first") + call("second")
	secrets := map[string]any{"idpClient": map[string]any{"authority": idp.URL, "grant": "client_credentials",
		"client": map[string]any{"id": "knhk", "secret": "s3cr3t-client"}}}
	res := run(t, src, nil, RunOptions{Options: Options{Secrets: secrets}})
	mustComplete(t, res, "")
	if res.Output.(map[string]any)["statusCode"] != 200 {
		t.Fatalf("output %s", js(res.Output))
	}
	if n := tokenRequests.Load(); n != 1 {
		t.Fatalf("%d token requests for two calls, want 1", n)
	}
	h := historyJSON(t, res)
	for _, leak := range []string{"tok-1-secretish", "s3cr3t-client"} {
		if strings.Contains(h, leak) {
			t.Fatalf("the history holds %q: %s", leak, h)
		}
	}
	// A token endpoint that refuses is a clear authentication fault.
	secrets["idpClient"].(map[string]any)["client"] = map[string]any{"id": "knhk", "secret": "wrong"}
	bad := run(t, src, nil, RunOptions{Options: Options{Secrets: secrets}})
	e := mustFault(t, bad, ErrAuthentication, "/do/0/first")
	// (The authority came from the secret: it is redacted too.)
	if e.Status != 401 || !strings.Contains(e.Detail, "oauth2 token from [redacted]/oauth2/token: oauth2: cannot fetch token: 401") {
		t.Fatalf("fault %+v", e)
	}
	// A policy written inline, with the secret by expression, works alike.
	inline := header + `use:
  secrets: [idpSecret]
  authentications:
    idp:
      oauth2:
        authority: ` + idp.URL + `
        client:
          id: knhk
          secret: ${ $secrets.idpSecret }
do:
` + call("only")
	res = run(t, inline, nil, RunOptions{Options: Options{Secrets: map[string]any{"idpSecret": "s3cr3t-client"}}})
	mustComplete(t, res, "")
	if strings.Contains(historyJSON(t, res), "s3cr3t-client") {
		t.Fatal("the inline policy's secret is in the history")
	}
}
