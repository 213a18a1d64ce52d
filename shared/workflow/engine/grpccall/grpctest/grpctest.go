// Package grpctest serves gRPC stand-ins for tests: a real grpc.Server on
// 127.0.0.1 whose services are compiled from proto source at run time and
// whose unary methods answer with a Go function of the request (as JSON
// values), plus an HTTP server that serves the proto files.
package grpctest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/bufbuild/protocompile"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Handler answers one unary call: req is the request message as protojson
// values, md the incoming metadata.
type Handler func(ctx context.Context, req map[string]any, md metadata.MD) (map[string]any, error)

// Server is a running stand-in.
type Server struct {
	Addr string // host:port of the gRPC server
	Port int
	// ProtoURL maps each proto file name to its http URL.
	ProtoURL map[string]string

	mu    sync.Mutex
	calls []Call
}

// Call is one call the stand-in answered.
type Call struct {
	Method   string
	Request  map[string]any
	Metadata metadata.MD
}

// Calls returns the calls answered so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Serve compiles files (name → proto source; the first service of root is
// served) and serves handlers (by method name) until the test ends.
func Serve(tb testing.TB, files map[string]string, root string, handlers map[string]Handler) *Server {
	tb.Helper()
	comp := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: func(name string) (io.ReadCloser, error) {
			src, ok := files[name]
			if !ok {
				return nil, fmt.Errorf("no file %s", name)
			}
			return io.NopCloser(strings.NewReader(src)), nil
		},
	})}
	compiled, err := comp.Compile(context.Background(), root)
	if err != nil {
		tb.Fatalf("grpctest: compile %s: %v", root, err)
	}
	fd := compiled[0]
	if fd.Services().Len() == 0 {
		tb.Fatalf("grpctest: %s has no service", root)
	}
	s := &Server{ProtoURL: map[string]string{}}
	srv := grpc.NewServer()
	for i := 0; i < fd.Services().Len(); i++ {
		srv.RegisterService(s.serviceDesc(fd.Services().Get(i), handlers), struct{}{})
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("grpctest: listen: %v", err)
	}
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(srv.Stop)
	s.Addr = lis.Addr().String()
	s.Port = lis.Addr().(*net.TCPAddr).Port
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		src, ok := files[strings.TrimPrefix(r.URL.Path, "/protos/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, src)
	}))
	tb.Cleanup(hs.Close)
	for name := range files {
		s.ProtoURL[name] = hs.URL + "/protos/" + name
	}
	return s
}

func (s *Server) serviceDesc(sd protoreflect.ServiceDescriptor, handlers map[string]Handler) *grpc.ServiceDesc {
	desc := &grpc.ServiceDesc{ServiceName: string(sd.FullName()), HandlerType: (*any)(nil), Metadata: sd.ParentFile().Path()}
	for j := 0; j < sd.Methods().Len(); j++ {
		md := sd.Methods().Get(j)
		if md.IsStreamingClient() || md.IsStreamingServer() {
			desc.Streams = append(desc.Streams, grpc.StreamDesc{StreamName: string(md.Name()), ServerStreams: md.IsStreamingServer(), ClientStreams: md.IsStreamingClient(),
				Handler: func(any, grpc.ServerStream) error { return nil }})
			continue
		}
		h := handlers[string(md.Name())]
		desc.Methods = append(desc.Methods, grpc.MethodDesc{MethodName: string(md.Name()),
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := dynamicpb.NewMessage(md.Input())
				if err := dec(in); err != nil {
					return nil, err
				}
				data, err := protojson.Marshal(in)
				if err != nil {
					return nil, err
				}
				var req map[string]any
				if err := json.Unmarshal(data, &req); err != nil {
					return nil, err
				}
				incoming, _ := metadata.FromIncomingContext(ctx)
				s.mu.Lock()
				s.calls = append(s.calls, Call{Method: string(md.Name()), Request: req, Metadata: incoming})
				s.mu.Unlock()
				out := dynamicpb.NewMessage(md.Output())
				if h == nil {
					return out, nil
				}
				resp, err := h(ctx, req, incoming)
				if err != nil {
					return nil, err
				}
				data, err = json.Marshal(resp)
				if err != nil {
					return nil, err
				}
				if err := protojson.Unmarshal(data, out); err != nil {
					return nil, err
				}
				return out, nil
			}})
	}
	return desc
}
