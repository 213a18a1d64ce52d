package lambdasvc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/knhk/knhk/localstack/otlpsink"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/telemetry"
)

// BenchmarkColdStart measures a whole execution environment's cold start
// of the executor's bootstrap under the emulator, as the local Lambda
// service starts one: the emulator's process, the runtime's process and its
// Init (AWS configuration, clients, the caller identity from the local
// endpoint, the tracer provider), then a first invocation of an empty batch,
// whose spans are exported before it returns. Reported as ms/cold-start,
// with tracing off (OTEL_SDK_DISABLED) and on (exporting to a loopback OTLP
// receiver): the difference is what tracing adds at run time; the larger
// binary it brings is in both.
func BenchmarkColdStart(b *testing.B) {
	_, rie := tools(b)
	dir := b.TempDir()
	bin := filepath.Join(dir, "bootstrap")
	if out, err := exec.Command("go", "build", "-o", bin, "../../functions/executor").CombinedOutput(); err != nil {
		b.Fatalf("build executor: %v: %s", err, out)
	}
	ep := localaws.StartT(b)
	sink, err := otlpsink.Start("127.0.0.1:0", filepath.Join(dir, "traces.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sink.Close() })
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "AWS_ENDPOINT_URL=" + ep.URL, "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "LOG_LEVEL=error",
		"KNHK_RECEIPTS_TABLE=receipts", "KNHK_STATE_TABLE=state", "KNHK_WORK_QUEUE_URL=" + ep.URL + "/000000000000/work"}
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"tracing=off", []string{telemetry.EnvSDKDisabled + "=true"}},
		{"tracing=on", []string{telemetry.EnvOTLPEndpoint + "=" + sink.Endpoint()}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			fn := &Function{Name: "executor", Binary: bin, Timeout: 30}
			env := append(slices.Clip(base), tc.env...)
			logs := &lineSink{w: discard{}}
			var total time.Duration
			for b.Loop() {
				before := sink.Spans()
				ctx := context.Background()
				began := time.Now()
				p := newPool(fn, rie, env, logs, 1, 1)
				if err := p.start(ctx); err != nil {
					b.Fatal(err)
				}
				res, err := p.invoke(ctx, []byte(`{"Records":[]}`))
				total += time.Since(began)
				exported := sink.Spans() - before
				p.stop()
				if err != nil || res.Failed() {
					b.Fatalf("first invocation: %v %s %s", err, res.FunctionError, res.Reason)
				}
				// The invocation's span is at the receiver when it returns,
				// and only when tracing is on.
				if on := tc.name == "tracing=on"; (exported > 0) != on {
					b.Fatalf("%d spans exported by the first invocation with %s", exported, tc.name)
				}
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/cold-start")
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
