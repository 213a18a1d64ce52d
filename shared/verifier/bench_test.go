package verifier

import (
	"fmt"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/shared/receipt"
)

// BenchmarkVerifyBatch100 measures the pure part of a stream batch: 100
// INSERT records of 10 cases decoded, checked on their own and linked to
// their case's position.
func BenchmarkVerifyBatch100(b *testing.B) {
	var recs []events.DynamoDBEventRecord
	chains := make([][]*receipt.Receipt, 10)
	for c := range chains {
		chains[c] = buildChain(b, "acme", fmt.Sprintf("case-bench-%02d", c), 10)
	}
	for i := range 10 {
		for c := range chains {
			recs = append(recs, insertRecord(b, chains[c][i], len(recs)))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pos := make(map[string]receipt.Watermark, 10)
		found := 0
		for _, rec := range recs {
			id, _ := keyOf(rec)
			cur, ok := pos[id]
			if !ok {
				cur = receipt.Watermark{Seq: -1}
			}
			got, fs := Inserted(rec)
			r := only(got)
			if Classify(cur, r.Seq) != Link {
				b.Fatal("out of order")
			}
			var link []receipt.Finding
			pos[id], link = Advance(cur, nil, r)
			found += len(fs) + len(withoutSelf(link, fs))
		}
		if found != 0 {
			b.Fatalf("%d findings in clean chains", found)
		}
	}
}
