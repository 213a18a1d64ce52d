package sla

import (
	"testing"
	"time"
)

// TestSketchBytes reports the encoded size of a workflow-minute's sketch
// and keeps it well inside a DynamoDB item.
func TestSketchBytes(t *testing.T) {
	for _, n := range []int{1, 100, 10000} {
		b := NewBucket("w", time.Unix(0, 0))
		for i, x := range latencies(7, n, 5, 1) {
			_ = b.Observe(Completed, time.Duration(x*float64(time.Millisecond))+time.Duration(i%2))
		}
		size := len(EncodeSketch(b.Latency))
		t.Logf("%d cases: %d sketch bytes", n, size)
		if size > 8<<10 {
			t.Fatalf("%d cases: %d bytes", n, size)
		}
	}
}
