package otlpsink

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// A protobuf export, gzip-compressed, is stored as spans with their
// parent, attributes, status and links; other bodies are refused.
func TestSinkStoresExport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	s, err := Start("127.0.0.1:0", path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	id := func(h string) []byte { b, _ := hex.DecodeString(h); return b }
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	body, err := proto.Marshal(&collectortrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "executor")}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
			TraceId: id("0af7651916cd43dd8448eb211c80319c"), SpanId: id("b7ad6b7169203331"), ParentSpanId: id("00f067aa0ba902b7"),
			Name: "task /do/0/charge", Kind: tracepb.Span_SPAN_KIND_INTERNAL, StartTimeUnixNano: 1e9, EndTimeUnixNano: 1e9 + 3e6,
			Attributes: []*commonpb.KeyValue{str("knhk.case_id", "c-1"),
				{Key: "n", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 3}}}},
			Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "boom"},
			Links:  []*tracepb.Span_Link{{TraceId: id("4bf92f3577b34da6a3ce929d0e0e4736"), SpanId: id("00f067aa0ba902b7")}},
		}}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(body)
	_ = zw.Close()
	req, _ := http.NewRequest(http.MethodPost, s.Endpoint()+"/v1/traces", &zipped)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	spans, err := Read(path)
	if err != nil || len(spans) != 1 || s.Spans() != 1 {
		t.Fatalf("spans %v, %v", spans, err)
	}
	sp := spans[0]
	if sp.Service != "executor" || sp.ParentSpanID != "00f067aa0ba902b7" || sp.Kind != "internal" || sp.Status != "ERROR" ||
		sp.Message != "boom" || sp.Duration() != 3*time.Millisecond || sp.Attributes["knhk.case_id"] != "c-1" ||
		sp.Attributes["n"] != float64(3) || len(sp.Links) != 1 || sp.Links[0].TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("span %+v", sp)
	}
	for _, bad := range []struct {
		ct   string
		body []byte
		want int
	}{{"application/x-protobuf", []byte{0xff, 0xff}, http.StatusBadRequest}, {"application/json", []byte(`{}`), http.StatusUnsupportedMediaType}} {
		resp, err := http.Post(s.Endpoint()+"/v1/traces", bad.ct, bytes.NewReader(bad.body))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != bad.want {
			t.Errorf("%s %q: status %d, want %d", bad.ct, bad.body, resp.StatusCode, bad.want)
		}
	}
	if s.Spans() != 1 {
		t.Errorf("%d spans stored after refused exports, want 1", s.Spans())
	}
}

func TestCaseTracesAndTree(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, int64(ms)*int64(time.Millisecond)) }
	spans := []Span{
		{TraceID: "a", SpanID: "1", Name: "root", Start: at(0), End: at(10), Attributes: map[string]any{"knhk.case_id": "c"}},
		{TraceID: "a", SpanID: "2", ParentSpanID: "1", Name: "child", Start: at(1), End: at(5)},
		{TraceID: "a", SpanID: "3", ParentSpanID: "9", Name: "orphan", Start: at(2), End: at(3)},
		{TraceID: "b", SpanID: "4", Name: "linked", Start: at(20), End: at(21), Links: []Link{{TraceID: "a", SpanID: "2"}}},
		{TraceID: "x", SpanID: "5", Name: "other", Start: at(0), End: at(1), Attributes: map[string]any{"knhk.case_id": "d"}},
	}
	ts := CaseTraces(spans, "c")
	if len(ts) != 2 || ts[0].ID != "a" || ts[0].Linked || ts[1].ID != "b" || !ts[1].Linked {
		t.Fatalf("traces %+v", ts)
	}
	roots := ts[0].Tree()
	if len(roots) != 2 || roots[0].Span.Name != "root" || len(roots[0].Children) != 1 || roots[1].Span.Name != "orphan" {
		t.Errorf("tree %+v", roots)
	}
	if got := CaseTraces(spans, "none"); len(got) != 0 {
		t.Errorf("unknown case: %+v", got)
	}
}
