package engine

import (
	"context"
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkSetTask measures one set task with one jq expression, engine
// overhead and event creation included: a case of 100 such tasks is run to
// completion and the figures are reported per task.
func BenchmarkSetTask(b *testing.B) {
	b.Run("no-secrets", func(b *testing.B) { benchSetTasks(b, Options{}) })
	// Every event is scanned for two secret values and the sensitive headers.
	b.Run("two-secrets", func(b *testing.B) {
		benchSetTasks(b, Options{Secrets: map[string]any{"api": "sk_live_4242abcd", "db": map[string]any{"password": "p@ss w/rd"}}})
	})
}

func benchSetTasks(b *testing.B, opts Options) {
	const tasks = 100
	src := header + "do:\n"
	for i := range tasks {
		src += fmt.Sprintf("  - t%d:\n      set:\n        x: ${ .x + 1 }\n", i)
	}
	p, err := Compile(load(b, src))
	if err != nil {
		b.Fatal(err)
	}
	in := map[string]any{"x": 1}
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	allocs := ms.Mallocs
	for b.Loop() {
		st := NewState()
		if _, err := p.Decide(context.Background(), st, Start{CaseID: "c", Input: in, Time: t0}, opts); err != nil {
			b.Fatal(err)
		}
		if st.Status != StatusCompleted {
			b.Fatal(st.Status)
		}
	}
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tasks), "ns/task")
	b.ReportMetric(float64(ms.Mallocs-allocs)/float64(b.N*tasks), "allocs/task")
}

func BenchmarkFiveTaskWorkflow(b *testing.B) {
	src := header + "do:\n"
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		src += "  - " + n + ":\n      set:\n        n: ${ .n + 1 }\n"
	}
	wf := load(b, src)
	in := map[string]any{"n": 0}
	b.ReportAllocs()
	for b.Loop() {
		res, err := Run(context.Background(), wf, in, RunOptions{})
		if err != nil || res.Status != StatusCompleted {
			b.Fatal(err, res.Status)
		}
	}
}

func BenchmarkReplay1000(b *testing.B) {
	wf := load(b, header+"do:\n  - l:\n      for:\n        in: .items\n      do:\n        - s:\n            set:\n              n: ${ $item }\n")
	items := make([]any, 997)
	for i := range items {
		items[i] = i
	}
	res, err := Run(context.Background(), wf, map[string]any{"items": items}, RunOptions{})
	if err != nil || res.Status != StatusCompleted {
		b.Fatal(err)
	}
	if len(res.History) < 1000 {
		b.Fatalf("history has %d events", len(res.History))
	}
	h := res.History[:1000]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Replay(wf, h); err != nil {
			b.Fatal(err)
		}
	}
}
