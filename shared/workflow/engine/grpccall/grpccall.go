// Package grpccall performs the gRPC calls of workflow tasks: the engine
// renders a Request (pure data); this package loads the proto file the
// document names (file or http(s) URI, with its imports), compiles it at run
// time, builds the request message from the call's arguments and invokes
// the unary method with dynamic messages. Streaming methods are refused.
package grpccall

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/bufbuild/protocompile"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/knhk/knhk/shared/breaker"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/engine/httpcall"
	"github.com/knhk/knhk/shared/workflow/expr"
)

const (
	errCommunication = "https://serverlessworkflow.io/spec/1.0.0/errors/communication"
	errConfiguration = "https://serverlessworkflow.io/spec/1.0.0/errors/configuration"
)

// IdempotencyKeyMetadata is the metadata key that carries a call's
// idempotency key (the HTTP calls' Idempotency-Key header, lower-cased as
// gRPC metadata keys are).
const IdempotencyKeyMetadata = "idempotency-key"

// Limits of proto loading.
const (
	maxProtoBytes  = 4 << 20
	maxProtoFiles  = 64
	maxCachedProto = 128
)

// Request is a rendered gRPC call.
type Request struct {
	Proto     string         `json:"proto"` // URI of the proto file
	Service   string         `json:"service"`
	Host      string         `json:"host"`
	Port      int            `json:"port,omitempty"` // 0: 443
	Method    string         `json:"method"`
	Arguments map[string]any `json:"arguments,omitempty"`
	Auth      *httpcall.Auth `json:"auth,omitempty"`
	// Timeout, when positive, is the time left of the task's timeout: the
	// call's deadline.
	Timeout time.Duration `json:"-"`
	// IdempotencyKey, when set, is sent as idempotency-key metadata; the
	// shell sets it (derived from the history, not recorded).
	IdempotencyKey string `json:"-"`
}

// Redacted returns a copy of r without credentials, fit to be recorded.
func (r Request) Redacted() Request {
	if r.Auth != nil {
		r.Auth = &httpcall.Auth{Scheme: r.Auth.Scheme}
	}
	return r
}

// Authorizer turns an authentication policy into an Authorization value.
type Authorizer interface {
	Authorization(ctx context.Context, a *httpcall.Auth) (string, *history.Error)
}

// Client performs gRPC calls. It keeps compiled proto files by URI and one
// connection per target. The zero value works for plaintext targets and
// http(s) proto URIs; it is safe for concurrent use.
type Client struct {
	// HTTP fetches proto files over http(s) (nil: http.DefaultClient).
	HTTP *http.Client
	// FileRoot, when set, lets proto URIs name files (file: URIs and
	// relative paths) inside it; without it they are refused.
	FileRoot string
	// Auth resolves the service's authentication policy (nil: a policy
	// is a configuration error).
	Auth Authorizer
	// Breakers, when set, guards every target (host:port) with its circuit
	// breaker, as HTTP calls are per host.
	Breakers *breaker.Set
	// Dial, when set, opens connections (e.g. a host map's dialer).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// TLS decides whether a target is dialled with TLS (nil: TLS on port
	// 443, plaintext on any other port).
	TLS func(host string, port int) bool

	mu     sync.Mutex
	protos map[string]protoreflect.FileDescriptor
	conns  map[string]*grpc.ClientConn
}

// Close closes the client's connections.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for k, cc := range c.conns {
		errs = append(errs, cc.Close())
		delete(c.conns, k)
	}
	return errors.Join(errs...)
}

// Do performs r and returns the response message as JSON values (protojson,
// unpopulated fields included), or a DSL error without instance.
func (c *Client) Do(ctx context.Context, r Request) (any, *history.Error) {
	fd, perr := c.proto(ctx, r.Proto)
	if perr != nil {
		return nil, perr
	}
	md, perr := findMethod(fd, r.Service, r.Method)
	if perr != nil {
		return nil, perr
	}
	in := dynamicpb.NewMessage(md.Input())
	args, err := json.Marshal(r.Arguments)
	if err != nil || r.Arguments == nil {
		args = []byte("{}")
	}
	if err := protojson.Unmarshal(args, in); err != nil {
		return nil, problem(errConfiguration, 400, "the arguments do not fit %s: %v", md.Input().FullName(), err)
	}
	port := r.Port
	if port == 0 {
		port = 443
	}
	target := net.JoinHostPort(r.Host, strconv.Itoa(port))
	md2 := metadata.MD{}
	if r.IdempotencyKey != "" {
		md2.Set(IdempotencyKeyMetadata, r.IdempotencyKey)
	}
	if r.Auth != nil {
		if c.Auth == nil {
			return nil, problem(errConfiguration, 400, "no authorizer for %s authentication", r.Auth.Scheme)
		}
		v, perr := c.Auth.Authorization(ctx, r.Auth)
		if perr != nil {
			return nil, perr
		}
		md2.Set("authorization", v)
	}
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	cc, err := c.conn(target, r.Host, port)
	if err != nil {
		return nil, problem(errConfiguration, 400, "grpc target %s: %v", target, err)
	}
	fullMethod := "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
	out := dynamicpb.NewMessage(md.Output())
	invoke := func() error {
		return cc.Invoke(metadata.NewOutgoingContext(ctx, md2), fullMethod, in, out)
	}
	if c.Breakers != nil {
		b := c.Breakers.Get(target)
		ticket, err := b.Allow()
		if err != nil {
			return nil, problem(errCommunication, 503, "grpc %s%s: %v", target, fullMethod, err)
		}
		err = invoke()
		ticket.Done(!isFailure(err))
		if err != nil {
			return nil, statusProblem(target, fullMethod, err)
		}
	} else if err := invoke(); err != nil {
		return nil, statusProblem(target, fullMethod, err)
	}
	data, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(out)
	if err != nil {
		return nil, problem(errCommunication, 502, "grpc %s: encode response: %v", fullMethod, err)
	}
	v, err := expr.DecodeJSON(data)
	if err != nil {
		return nil, problem(errCommunication, 502, "grpc %s: decode response: %v", fullMethod, err)
	}
	return v, nil
}

// isFailure tells the breaker which outcomes mean the target is unwell:
// not the ones that are the caller's or the data's fault.
func isFailure(err error) bool {
	if err == nil {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal, codes.Unknown, codes.DataLoss:
		return true
	}
	return false
}

// httpStatus maps gRPC codes to the HTTP statuses a DSL error carries
// (the mapping of the gRPC-HTTP gateway).
var httpStatus = map[codes.Code]int{
	codes.Canceled: 499, codes.Unknown: 500, codes.InvalidArgument: 400, codes.DeadlineExceeded: 504,
	codes.NotFound: 404, codes.AlreadyExists: 409, codes.PermissionDenied: 403, codes.ResourceExhausted: 429,
	codes.FailedPrecondition: 400, codes.Aborted: 409, codes.OutOfRange: 400, codes.Unimplemented: 501,
	codes.Internal: 500, codes.Unavailable: 503, codes.DataLoss: 500, codes.Unauthenticated: 401,
}

func statusProblem(target, method string, err error) *history.Error {
	s := status.Convert(err)
	code := httpStatus[s.Code()]
	if code == 0 {
		code = 500
	}
	e := problem(errCommunication, code, "grpc %s%s: %s: %s", target, method, s.Code(), s.Message())
	e.Title = s.Code().String()
	return e
}

func (c *Client) conn(target, host string, port int) (*grpc.ClientConn, error) {
	useTLS := port == 443
	if c.TLS != nil {
		useTLS = c.TLS(host, port)
	}
	key := target
	if useTLS {
		key += "+tls"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[key]; cc != nil {
		return cc, nil
	}
	creds := insecure.NewCredentials()
	if useTLS {
		creds = credentials.NewTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12})
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if c.Dial != nil {
		opts = append(opts, grpc.WithContextDialer(c.Dial))
	}
	// passthrough: the dialer (or the system resolver at dial time) sees
	// the host as written, so host maps apply.
	cc, err := grpc.NewClient("passthrough:///"+target, opts...)
	if err != nil {
		return nil, err
	}
	if c.conns == nil {
		c.conns = map[string]*grpc.ClientConn{}
	}
	c.conns[key] = cc
	return cc, nil
}

// findMethod finds the method of the service named by its full name
// (package.Service) or, when unambiguous, its simple name.
func findMethod(fd protoreflect.FileDescriptor, service, method string) (protoreflect.MethodDescriptor, *history.Error) {
	var svc protoreflect.ServiceDescriptor
	svcs := fd.Services()
	for i := 0; i < svcs.Len(); i++ {
		s := svcs.Get(i)
		if string(s.FullName()) == service || string(s.Name()) == service {
			if svc != nil && string(svc.FullName()) != service {
				return nil, problem(errConfiguration, 400, "service %q is ambiguous in the proto file: name it with its package", service)
			}
			svc = s
		}
	}
	if svc == nil {
		return nil, problem(errConfiguration, 400, "service %q is not in the proto file", service)
	}
	md := svc.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, problem(errConfiguration, 400, "method %q is not a method of %s", method, svc.FullName())
	}
	if md.IsStreamingClient() || md.IsStreamingServer() {
		return nil, problem(errConfiguration, 400, "unsupported: %s/%s is a streaming method (KNHK calls unary methods)", svc.FullName(), method)
	}
	return md, nil
}

// proto loads and compiles the proto file at uri (once per client).
func (c *Client) proto(ctx context.Context, uri string) (protoreflect.FileDescriptor, *history.Error) {
	c.mu.Lock()
	fd := c.protos[uri]
	c.mu.Unlock()
	if fd != nil {
		return fd, nil
	}
	base, root, perr := c.locate(uri)
	if perr != nil {
		return nil, perr
	}
	var (
		fetched  = map[string]bool{}
		fetchMu  sync.Mutex
		fetchErr *history.Error
	)
	comp := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: func(name string) (io.ReadCloser, error) {
				fetchMu.Lock()
				if len(fetched) >= maxProtoFiles {
					fetchMu.Unlock()
					return nil, fmt.Errorf("more than %d proto files", maxProtoFiles)
				}
				fetched[name] = true
				fetchMu.Unlock()
				data, perr := c.fetch(ctx, base, name)
				if perr != nil {
					fetchMu.Lock()
					if fetchErr == nil && name == root {
						fetchErr = perr
					}
					fetchMu.Unlock()
					return nil, errors.New(perr.Detail)
				}
				return io.NopCloser(bytes.NewReader(data)), nil
			},
		}),
	}
	files, err := comp.Compile(ctx, root)
	if fetchErr != nil {
		return nil, fetchErr
	}
	if err != nil {
		return nil, problem(errConfiguration, 400, "proto %s does not compile: %v", uri, err)
	}
	fd = files[0]
	c.mu.Lock()
	if c.protos == nil || len(c.protos) >= maxCachedProto {
		c.protos = map[string]protoreflect.FileDescriptor{}
	}
	c.protos[uri] = fd
	c.mu.Unlock()
	return fd, nil
}

// locate splits a proto URI into the base its imports are relative to and
// the root file's name.
func (c *Client) locate(uri string) (*url.URL, string, *history.Error) {
	u, err := url.Parse(uri)
	if err != nil || uri == "" {
		return nil, "", problem(errConfiguration, 400, "proto endpoint %q is not a URI", uri)
	}
	switch u.Scheme {
	case "http", "https":
		dir, file := path.Split(u.Path)
		b := *u
		b.Path, b.RawQuery, b.Fragment = dir, "", ""
		return &b, file, nil
	case "file", "":
		if c.FileRoot == "" {
			return nil, "", problem(errConfiguration, 400, "proto endpoint %q: file URIs are not served here (publish the proto file over http or https)", uri)
		}
		p := u.Path
		if u.Scheme == "" {
			p = uri
		}
		if u.Opaque != "" {
			p = u.Opaque
		}
		dir, file := path.Split(filepath.ToSlash(p))
		return &url.URL{Scheme: "file", Path: dir}, file, nil
	}
	return nil, "", problem(errConfiguration, 400, "proto endpoint %q: scheme %q is not file, http or https", uri, u.Scheme)
}

// fetch reads the proto file name relative to base.
func (c *Client) fetch(ctx context.Context, base *url.URL, name string) ([]byte, *history.Error) {
	if base.Scheme == "file" {
		return c.readFile(path.Join(base.Path, name))
	}
	ref, err := url.Parse(name)
	if err != nil {
		return nil, problem(errConfiguration, 400, "proto import %q: %v", name, err)
	}
	u := base.ResolveReference(ref)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, problem(errConfiguration, 400, "proto %s: %v", u, err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, problem(errCommunication, 503, "load proto %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, problem(errCommunication, max(resp.StatusCode, 502), "load proto %s: %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxProtoBytes+1))
	if err != nil {
		return nil, problem(errCommunication, 502, "load proto %s: %v", u, err)
	}
	if len(data) > maxProtoBytes {
		return nil, problem(errConfiguration, 413, "proto %s is over %d bytes", u, maxProtoBytes)
	}
	return data, nil
}

// readFile reads a proto file that must lie inside FileRoot.
func (c *Client) readFile(p string) ([]byte, *history.Error) {
	root, err := os.OpenRoot(c.FileRoot)
	if err != nil {
		return nil, problem(errConfiguration, 400, "proto files: %v", err)
	}
	defer root.Close()
	rel := filepath.FromSlash(p)
	if filepath.IsAbs(rel) {
		abs, err := filepath.Abs(c.FileRoot)
		if err != nil {
			return nil, problem(errConfiguration, 400, "proto files: %v", err)
		}
		if rel, err = filepath.Rel(abs, rel); err != nil {
			return nil, problem(errConfiguration, 400, "proto file %s is outside the proto files' folder", p)
		}
	}
	f, err := root.Open(rel)
	if err != nil {
		return nil, problem(errConfiguration, 400, "proto file %s: %v", p, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxProtoBytes+1))
	if err != nil {
		return nil, problem(errConfiguration, 400, "proto file %s: %v", p, err)
	}
	if len(data) > maxProtoBytes {
		return nil, problem(errConfiguration, 413, "proto file %s is over %d bytes", p, maxProtoBytes)
	}
	return data, nil
}

func problem(typ string, status int, format string, args ...any) *history.Error {
	return &history.Error{Type: typ, Status: status, Title: "Call Failed", Detail: fmt.Sprintf(format, args...)}
}
