package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

type runtimeKey string // stands in for the runtime's plain string key

func decodeLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, line)
		}
		recs = append(recs, rec)
	}
	return recs
}

func TestLoggerCarriesContextFields(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelInfo)
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})
	ctx = WithCase(ctx, "acme", "case-7")
	ctx = WithSeq(ctx, 0)
	ctx = WithTraceID(ctx, "4bf92f3577b34da6a3ce929d0e0e4736")
	ctx = WithCorrelationID(ctx, "order-77")
	log.InfoContext(ctx, "task completed", "task", "/do/0/charge")
	log.DebugContext(ctx, "hidden")
	log.Info("no context")

	recs := decodeLines(t, buf.String())
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2 (debug filtered)", len(recs))
	}
	r := recs[0]
	want := map[string]any{
		AttrMessage: "task completed", AttrLevel: "INFO", AttrTenant: "acme", AttrCaseID: "case-7",
		AttrSeq: float64(0), AttrRequestID: "req-1", AttrTraceID: "4bf92f3577b34da6a3ce929d0e0e4736", AttrCorrelation: "order-77", "task": "/do/0/charge",
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %v, want %v", k, r[k], v)
		}
	}
	if _, ok := r[AttrTime].(string); !ok {
		t.Errorf("no %s member: %v", AttrTime, r)
	}
	for _, k := range []string{"msg", "time", AttrXRayTraceID} {
		if _, ok := r[k]; ok {
			t.Errorf("unexpected member %s", k)
		}
	}
	for _, k := range []string{AttrTenant, AttrCaseID, AttrSeq, AttrRequestID, AttrTraceID, AttrCorrelation} {
		if _, ok := recs[1][k]; ok {
			t.Errorf("record without context has %s", k)
		}
	}
}

func TestContextFieldsAreIndependent(t *testing.T) {
	base := WithCase(context.Background(), "t", "c")
	a := WithSeq(base, 4)
	b := WithSeq(base, 5)
	seqOf := func(ctx context.Context) any {
		for _, at := range Attrs(ctx) {
			if at.Key == AttrSeq {
				return at.Value.Int64()
			}
		}
		return nil
	}
	if seqOf(a) != int64(4) || seqOf(b) != int64(5) || seqOf(base) != nil {
		t.Fatalf("seq leaked between contexts: %v %v %v", seqOf(a), seqOf(b), seqOf(base))
	}
	if got := len(Attrs(context.Background())); got != 0 {
		t.Fatalf("empty context gives %d attrs", got)
	}
}

func TestXRayTraceHeader(t *testing.T) {
	// The Lambda Go runtime stores the header under the plain string key.
	ctx := context.WithValue(context.Background(), any(xrayContextKey), "Root=1-5759e988-bd862e3fe1be46a994272793")
	found := false
	for _, a := range Attrs(ctx) {
		if a.Key == AttrXRayTraceID && a.Value.String() == "Root=1-5759e988-bd862e3fe1be46a994272793" {
			found = true
		}
	}
	if !found {
		t.Fatalf("X-Ray header not logged: %v", Attrs(ctx))
	}
	other := context.WithValue(context.Background(), runtimeKey(xrayContextKey), "x")
	if len(Attrs(other)) != 0 {
		t.Fatal("a differently typed key was taken for the runtime's")
	}
}

func TestLoggerWithAttrsAndGroups(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelDebug).With("function", "executor").WithGroup("http")
	log.DebugContext(WithCase(context.Background(), "t", "c"), "call", "status", 503)
	r := decodeLines(t, buf.String())[0]
	if r["function"] != "executor" || r[AttrMessage] != "call" || r[AttrLevel] != "DEBUG" {
		t.Fatalf("record %v", r)
	}
	g, ok := r["http"].(map[string]any)
	if !ok || g["status"] != float64(503) || g[AttrCaseID] != "c" {
		t.Fatalf("group %v", r["http"])
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"", slog.LevelInfo, false},
		{"debug", slog.LevelDebug, false},
		{"INFO", slog.LevelInfo, false},
		{" warn ", slog.LevelWarn, false},
		{"error", slog.LevelError, false},
		{"verbose", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseLevel(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("ParseLevel(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestNilWriterAndLevel(t *testing.T) {
	log := NewLogger(nil, nil)
	log.Info("discarded") // must not panic
	if log.Enabled(context.Background(), slog.LevelDebug) || !log.Enabled(context.Background(), slog.LevelInfo) {
		t.Fatal("nil level is not info")
	}
}
