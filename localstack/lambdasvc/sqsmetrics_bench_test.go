package lambdasvc

import "testing"

// BenchmarkQueueMetricsReceive is what each ReceiveMessage of a mapping
// now adds: counting its result in the minute's sums.
func BenchmarkQueueMetricsReceive(b *testing.B) {
	q := newQueueMetrics("http://127.0.0.1:1/000000000000/work", func(...Metric) {})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q.received(i % 3) // empty, one, two messages
		i++
	}
}
