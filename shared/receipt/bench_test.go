package receipt

import (
	"crypto/sha256"
	"testing"
)

// typical is a task.completed receipt of about 500 canonical bytes.
func typical(b *testing.B) *Receipt {
	return buildChain(b, "acme", "case-0001", 2)[1]
}

func BenchmarkEncodeHash(b *testing.B) {
	r := typical(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := r.seal(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(r.body)), "canonical-bytes")
}

func chainBodies(b *testing.B, n int) ([]*Receipt, [][]byte) {
	rs := decodeAll(b, lines(b, buildChain(b, "acme", "case-0001", n)))
	bodies := make([][]byte, n)
	for i, r := range rs {
		bodies[i], _ = r.Body()
	}
	return rs, bodies
}

func BenchmarkVerifyChain(b *testing.B) {
	rs, _ := chainBodies(b, 10000)
	b.ReportAllocs()
	for b.Loop() {
		if fs := VerifyChain(rs); len(fs) != 0 {
			b.Fatal(fs)
		}
	}
}

func BenchmarkSHA256Baseline(b *testing.B) {
	_, bodies := chainBodies(b, 10000)
	b.ReportAllocs()
	for b.Loop() {
		for _, body := range bodies {
			_ = sha256.Sum256(body)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	l := lines(b, buildChain(b, "acme", "case-0001", 2))[1]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(l); err != nil {
			b.Fatal(err)
		}
	}
}
