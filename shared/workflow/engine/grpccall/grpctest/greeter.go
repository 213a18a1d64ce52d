package grpctest

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// GreeterProto is the proto source of the demo.Greeter service that
// Greeter serves, in a file named greeter.proto.
const GreeterProto = `syntax = "proto3";
package demo;
service Greeter {
  rpc SayHello (HelloRequest) returns (HelloReply);
  rpc Slow (HelloRequest) returns (HelloReply);
  rpc Watch (HelloRequest) returns (stream HelloReply);
}
message HelloRequest { string name = 1; }
message HelloReply { string message = 1; string key = 2; }
`

// Greeter serves demo.Greeter until the test ends: SayHello answers
// "hello <name>" with the call's idempotency-key metadata as key, Slow
// answers only when the call's deadline passes, and Watch (a streaming
// method) sends nothing.
func Greeter(tb testing.TB) *Server {
	tb.Helper()
	return Serve(tb, map[string]string{"greeter.proto": GreeterProto}, "greeter.proto", map[string]Handler{
		"SayHello": func(_ context.Context, req map[string]any, md metadata.MD) (map[string]any, error) {
			key := ""
			if v := md.Get("idempotency-key"); len(v) > 0 {
				key = v[0]
			}
			return map[string]any{"message": fmt.Sprintf("hello %v", req["name"]), "key": key}, nil
		},
		"Slow": func(ctx context.Context, _ map[string]any, _ metadata.MD) (map[string]any, error) {
			<-ctx.Done()
			return nil, status.Error(codes.DeadlineExceeded, "slow")
		},
	})
}
