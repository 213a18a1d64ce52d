package main

import (
	"context"
	"testing"

	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/telemetry"
)

// BenchmarkInit measures the executor's own part of a cold start: building
// its configuration, clients and handler once per execution environment
// (its caller identity read from the local endpoint), with tracing off and
// on. The Go runtime's start and the binary's load come on top.
func BenchmarkInit(b *testing.B) {
	ep := localaws.StartT(b)
	for _, tc := range []struct {
		name string
		otlp string
	}{{"tracing off", ""}, {"tracing on", "http://127.0.0.1:4318"}} {
		b.Run(tc.name, func(b *testing.B) {
			for k, v := range map[string]string{"AWS_ENDPOINT_URL": ep.URL, "AWS_REGION": localaws.Region, "AWS_ACCESS_KEY_ID": "test",
				"AWS_SECRET_ACCESS_KEY": "test", "KNHK_RECEIPTS_TABLE": "r", "KNHK_STATE_TABLE": "s",
				"KNHK_WORK_QUEUE_URL": ep.URL + "/000000000000/work", telemetry.EnvOTLPEndpoint: tc.otlp} {
				b.Setenv(k, v)
			}
			b.ResetTimer()
			for range b.N {
				fn, _, err := build(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				if fn.Tracing != nil {
					_ = fn.Tracing.Shutdown(0)
				}
			}
		})
	}
}
