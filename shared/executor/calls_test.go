package executor

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/workflow/engine/grpccall"
	"github.com/knhk/knhk/shared/workflow/engine/grpccall/grpctest"
	"github.com/knhk/knhk/shared/workflow/engine/httpcall"
)

// TestGRPCAndScriptTasks runs a case whose tasks call a gRPC stand-in and
// run a script: the call carries the case's idempotency key as metadata,
// the script's result is the task output, and the chain verifies.
func TestGRPCAndScriptTasks(t *testing.T) {
	srv := grpctest.Greeter(t)
	e := newEnv(t, nil)
	body := fmt.Sprintf(`document:
  dsl: '1.0.0'
  namespace: test
  name: grpc-script
  version: '1.0.0'
do:
  - hello:
      call: grpc
      with:
        proto:
          endpoint: %s
        service:
          name: demo.Greeter
          host: 127.0.0.1
          port: %d
        method: SayHello
        arguments:
          name: ${ .who }
  - shout:
      run:
        script:
          language: js
          arguments:
            - ${ .message }
          code: 'console.log(JSON.stringify({ loud: argv[0].toUpperCase() }))'
`, srv.ProtoURL["greeter.proto"], srv.Port)
	if _, _, err := e.reg.Push(e.ctx, []byte(body)); err != nil {
		t.Fatal(err)
	}
	x, _ := e.executor(DefaultConfig())
	id := message.CaseID("acme", "test", "grpc-script", "g-1")
	e.send(startMessage("acme", "test", "grpc-script", "g-1", map[string]any{"who": "ada"}))
	e.pump(x, func() bool { return e.ended(id) }, time.Minute)
	rs := e.chain(id)
	last := rs[len(rs)-1]
	if last.Type != history.CaseCompleted {
		t.Fatalf("case ended %s", last.Type)
	}
	var out map[string]any
	if err := json.Unmarshal(last.Output, &out); err != nil || out["loud"] != "HELLO ADA" {
		t.Fatalf("output %s (%v)", last.Output, err)
	}
	calls := srv.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d gRPC calls, want 1", len(calls))
	}
	if got, want := calls[0].Metadata.Get(grpccall.IdempotencyKeyMetadata), httpcall.IdempotencyKey(id, "/0"); len(got) != 1 || got[0] != want {
		t.Fatalf("idempotency-key %v, want %s", got, want)
	}
}
