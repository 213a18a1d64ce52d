package grpccall_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/knhk/knhk/shared/breaker"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/engine/grpccall"
	"github.com/knhk/knhk/shared/workflow/engine/grpccall/grpctest"
	"github.com/knhk/knhk/shared/workflow/engine/httpcall"
)

const greeterProto = `syntax = "proto3";
package demo;
import "google/protobuf/timestamp.proto";
import "common.proto";
service Greeter {
  rpc SayHello (HelloRequest) returns (HelloReply);
  rpc Fail (HelloRequest) returns (HelloReply);
  rpc Slow (HelloRequest) returns (HelloReply);
  rpc Watch (HelloRequest) returns (stream HelloReply);
}
message HelloRequest { string name = 1; int32 times = 2; }
message HelloReply { string message = 1; google.protobuf.Timestamp at = 2; demo.Meta meta = 3; }
`

const commonProto = `syntax = "proto3";
package demo;
message Meta { string idempotency_key = 1; string authorization = 2; }
`

var protoFiles = map[string]string{"greeter.proto": greeterProto, "common.proto": commonProto}

func first(md metadata.MD, k string) string {
	if v := md.Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}

func handlers() map[string]grpctest.Handler {
	return map[string]grpctest.Handler{
		"SayHello": func(_ context.Context, req map[string]any, md metadata.MD) (map[string]any, error) {
			name, _ := req["name"].(string)
			return map[string]any{"message": strings.Repeat("hello "+name+"!", int(req["times"].(float64))),
				"at":   "2026-03-01T12:00:00Z",
				"meta": map[string]any{"idempotencyKey": first(md, "idempotency-key"), "authorization": first(md, "authorization")}}, nil
		},
		"Fail": func(context.Context, map[string]any, metadata.MD) (map[string]any, error) {
			return nil, status.Error(codes.NotFound, "no such greeting")
		},
		"Slow": func(ctx context.Context, _ map[string]any, _ metadata.MD) (map[string]any, error) {
			<-ctx.Done()
			return nil, status.Error(codes.DeadlineExceeded, "too slow")
		},
	}
}

type fixedAuth string

func (f fixedAuth) Authorization(_ context.Context, a *httpcall.Auth) (string, *history.Error) {
	return string(f) + " " + a.Token, nil
}

func TestDoUnary(t *testing.T) {
	srv := grpctest.Serve(t, protoFiles, "greeter.proto", handlers())
	c := &grpccall.Client{Auth: fixedAuth("Bearer")}
	defer c.Close()
	got, err := c.Do(context.Background(), grpccall.Request{
		Proto: srv.ProtoURL["greeter.proto"], Service: "demo.Greeter", Host: "127.0.0.1", Port: srv.Port, Method: "SayHello",
		Arguments: map[string]any{"name": "Ada", "times": 2}, Auth: &httpcall.Auth{Scheme: "bearer", Token: "t0k"},
		IdempotencyKey: `"knhk-1"`, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("Do: %+v", err)
	}
	want := map[string]any{"message": "hello Ada!hello Ada!", "at": "2026-03-01T12:00:00Z",
		"meta": map[string]any{"idempotencyKey": `"knhk-1"`, "authorization": "Bearer t0k"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	// The simple service name works too, and the proto is compiled once.
	got, err = c.Do(context.Background(), grpccall.Request{Proto: srv.ProtoURL["greeter.proto"], Service: "Greeter", Host: "127.0.0.1", Port: srv.Port, Method: "SayHello",
		Arguments: map[string]any{"name": "Bo", "times": 1}})
	if err != nil || got.(map[string]any)["message"] != "hello Bo!" {
		t.Fatalf("got %v, %+v", got, err)
	}
	// Unpopulated fields are present.
	if m := got.(map[string]any)["meta"].(map[string]any); m["idempotencyKey"] != "" {
		t.Fatalf("meta = %v", m)
	}
}

func TestDoFaults(t *testing.T) {
	srv := grpctest.Serve(t, protoFiles, "greeter.proto", handlers())
	dir := t.TempDir()
	for name, src := range protoFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base := grpccall.Request{Proto: srv.ProtoURL["greeter.proto"], Service: "demo.Greeter", Host: "127.0.0.1", Port: srv.Port, Method: "SayHello", Arguments: map[string]any{"name": "x", "times": 1}}
	with := func(f func(*grpccall.Request)) grpccall.Request { r := base; f(&r); return r }
	tests := []struct {
		name   string
		client *grpccall.Client
		req    grpccall.Request
		status int
		detail string
	}{
		{"status codes map to HTTP statuses", &grpccall.Client{}, with(func(r *grpccall.Request) { r.Method = "Fail" }), 404, "NotFound: no such greeting"},
		{"the task's timeout is the deadline", &grpccall.Client{}, with(func(r *grpccall.Request) { r.Method = "Slow"; r.Timeout = 50 * time.Millisecond }), 504, "DeadlineExceeded"},
		{"streaming methods are refused", &grpccall.Client{}, with(func(r *grpccall.Request) { r.Method = "Watch" }), 400, "unsupported: demo.Greeter/Watch is a streaming method"},
		{"unknown service", &grpccall.Client{}, with(func(r *grpccall.Request) { r.Service = "demo.Nope" }), 400, `service "demo.Nope" is not in the proto file`},
		{"unknown method", &grpccall.Client{}, with(func(r *grpccall.Request) { r.Method = "Nope" }), 400, `method "Nope" is not a method of demo.Greeter`},
		{"arguments that do not fit", &grpccall.Client{}, with(func(r *grpccall.Request) { r.Arguments = map[string]any{"nam": "x"} }), 400, "the arguments do not fit demo.HelloRequest"},
		{"a proto that is not there", &grpccall.Client{}, with(func(r *grpccall.Request) { r.Proto = srv.ProtoURL["greeter.proto"] + ".missing" }), 502, "404 Not Found"},
		{"file URIs need a proto folder", &grpccall.Client{}, with(func(r *grpccall.Request) { r.Proto = "file://" + filepath.Join(dir, "greeter.proto") }), 400, "file URIs are not served here"},
		{"files outside the folder are refused", &grpccall.Client{FileRoot: filepath.Join(dir, "sub")}, with(func(r *grpccall.Request) { r.Proto = "../greeter.proto" }), 400, "proto file"},
		{"other schemes are refused", &grpccall.Client{}, with(func(r *grpccall.Request) { r.Proto = "ftp://x/y.proto" }), 400, `scheme "ftp"`},
		{"no target", &grpccall.Client{}, with(func(r *grpccall.Request) { r.Port = 1; r.Timeout = 2 * time.Second }), 503, "Unavailable"},
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.client.Close()
			_, err := tc.client.Do(context.Background(), tc.req)
			if err == nil {
				t.Fatal("no error")
			}
			if err.Status != tc.status || !strings.Contains(err.Detail, tc.detail) {
				t.Fatalf("got %d %q, want %d containing %q", err.Status, err.Detail, tc.status, tc.detail)
			}
		})
	}
}

func TestDoFileProto(t *testing.T) {
	srv := grpctest.Serve(t, protoFiles, "greeter.proto", handlers())
	dir := t.TempDir()
	for name, src := range protoFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := &grpccall.Client{FileRoot: dir}
	defer c.Close()
	for _, uri := range []string{"greeter.proto", "file:greeter.proto", "file://" + filepath.ToSlash(filepath.Join(dir, "greeter.proto"))} {
		got, err := c.Do(context.Background(), grpccall.Request{Proto: uri, Service: "demo.Greeter", Host: "127.0.0.1", Port: srv.Port, Method: "SayHello", Arguments: map[string]any{"name": "f", "times": 1}})
		if err != nil || got.(map[string]any)["message"] != "hello f!" {
			t.Fatalf("%s: got %v, %+v", uri, got, err)
		}
	}
}

func TestDoBreaker(t *testing.T) {
	srv := grpctest.Serve(t, protoFiles, "greeter.proto", map[string]grpctest.Handler{
		"SayHello": func(context.Context, map[string]any, metadata.MD) (map[string]any, error) {
			return nil, status.Error(codes.Unavailable, "down")
		},
		"Fail": func(context.Context, map[string]any, metadata.MD) (map[string]any, error) {
			return nil, status.Error(codes.InvalidArgument, "bad")
		},
	})
	c := &grpccall.Client{Breakers: breaker.NewSet(breaker.Config{FailureThreshold: 2, OpenInterval: time.Hour})}
	defer c.Close()
	call := func(method string) *history.Error {
		_, err := c.Do(context.Background(), grpccall.Request{Proto: srv.ProtoURL["greeter.proto"], Service: "demo.Greeter", Host: "127.0.0.1", Port: srv.Port, Method: method})
		return err
	}
	// The caller's own errors do not open the breaker.
	for range 3 {
		if err := call("Fail"); err == nil || err.Status != 400 {
			t.Fatalf("Fail: %+v", err)
		}
	}
	for range 2 {
		if err := call("SayHello"); err == nil || err.Status != 503 || !strings.Contains(err.Detail, "Unavailable") {
			t.Fatalf("SayHello: %+v", err)
		}
	}
	err := call("SayHello")
	if err == nil || err.Status != 503 || !strings.Contains(err.Detail, "circuit") {
		t.Fatalf("third failure: want the breaker's refusal, got %+v", err)
	}
	if n := len(srv.Calls()); n != 5 {
		t.Fatalf("the server saw %d calls, want 5 (the refused one never left)", n)
	}
}
