// Package otlpsink is the local trace receiver: an OTLP/HTTP endpoint
// (POST /v1/traces, protobuf, optionally gzip-compressed) that
// appends every span it receives to a file as one JSON object a line, and
// reads that file back for `knhk trace`. It stands in for a collector with
// a trace store on a developer's machine; on AWS the functions export to
// the ADOT collector or X-Ray's OTLP endpoint instead.
package otlpsink

import (
	"bufio"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// maxBody bounds one export request.
const maxBody = 16 << 20

// Span is one stored span.
type Span struct {
	TraceID      string         `json:"traceId"`
	SpanID       string         `json:"spanId"`
	ParentSpanID string         `json:"parentSpanId,omitempty"`
	Name         string         `json:"name"`
	Kind         string         `json:"kind"`
	Service      string         `json:"service,omitempty"`
	Start        time.Time      `json:"start"`
	End          time.Time      `json:"end"`
	Status       string         `json:"status,omitempty"` // "", "OK" or "ERROR"
	Message      string         `json:"statusMessage,omitempty"`
	Attributes   map[string]any `json:"attributes,omitempty"`
	Links        []Link         `json:"links,omitempty"`
}

// Link is a span link.
type Link struct {
	TraceID string `json:"traceId"`
	SpanID  string `json:"spanId"`
}

// Duration is the span's wall time.
func (s Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Sink receives spans over OTLP/HTTP and appends them to a file.
type Sink struct {
	mu    sync.Mutex
	out   *os.File
	srv   *http.Server
	addr  string
	spans int
}

// Start listens on addr (host:port; port 0 picks one) and appends spans to
// the file at path (its folder is created).
func Start(addr, path string) (*Sink, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("otlpsink: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("otlpsink: %w", err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("otlpsink: %w", err)
	}
	s := &Sink{out: f, addr: l.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", s.export)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

// Endpoint is the base URL to give exporters as OTEL_EXPORTER_OTLP_ENDPOINT.
func (s *Sink) Endpoint() string { return "http://" + s.addr }

// Spans is how many spans the sink has stored.
func (s *Sink) Spans() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spans
}

// Close stops the server and closes the file.
func (s *Sink) Close() error {
	err := s.srv.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(err, s.out.Close())
}

func (s *Sink) export(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = http.MaxBytesReader(w, r.Body, maxBody)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, "gzip: "+err.Error(), http.StatusBadRequest)
			return
		}
		defer func() { _ = zr.Close() }()
		body = io.LimitReader(zr, maxBody)
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-protobuf") {
		http.Error(w, "want Content-Type application/x-protobuf (OTLP/HTTP protobuf), not "+ct, http.StatusUnsupportedMediaType)
		return
	}
	req := &collectortrace.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(raw, req); err != nil {
		http.Error(w, "decode: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.store(Flatten(req)); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (s *Sink) store(spans []Span) error {
	var b []byte
	for _, sp := range spans {
		line, err := json.Marshal(sp)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.out.Write(b); err != nil {
		return fmt.Errorf("otlpsink: store: %w", err)
	}
	s.spans += len(spans)
	return nil
}

// Flatten turns an export request into spans.
func Flatten(req *collectortrace.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range req.GetResourceSpans() {
		service, _ := attrs(rs.GetResource().GetAttributes())["service.name"].(string)
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := Span{TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
					ParentSpanID: hex.EncodeToString(sp.GetParentSpanId()), Name: sp.GetName(),
					Kind:    strings.ToLower(strings.TrimPrefix(sp.GetKind().String(), "SPAN_KIND_")),
					Service: service, Start: time.Unix(0, int64(sp.GetStartTimeUnixNano())).UTC(),
					End: time.Unix(0, int64(sp.GetEndTimeUnixNano())).UTC(), Attributes: attrs(sp.GetAttributes())}
				switch sp.GetStatus().GetCode() {
				case tracepb.Status_STATUS_CODE_OK:
					s.Status = "OK"
				case tracepb.Status_STATUS_CODE_ERROR:
					s.Status, s.Message = "ERROR", sp.GetStatus().GetMessage()
				}
				for _, l := range sp.GetLinks() {
					s.Links = append(s.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
				}
				out = append(out, s)
			}
		}
	}
	return out
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = value(kv.GetValue())
	}
	return m
}

func value(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, value(e))
		}
		return out
	case *commonpb.AnyValue_BytesValue:
		return hex.EncodeToString(x.BytesValue)
	default:
		return nil
	}
}

// Read returns the spans stored in the file at path; lines that do not
// decode are skipped.
func Read(path string) ([]Span, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []Span
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxBody)
	for sc.Scan() {
		var s Span
		if json.Unmarshal(sc.Bytes(), &s) == nil && s.SpanID != "" {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}
