package learn

import (
	"fmt"
	"time"

	"github.com/knhk/knhk/shared/sla"
)

// Series are one workflow's per-minute signals over a span, as the
// detector and the forecast read them. A minute without ended cases carries
// the previous minute's p99 (a quiet minute is not a latency of 0) and a
// failure rate of 0.
type Series struct {
	Workflow string
	From     time.Time // the first minute
	P99      []float64 // milliseconds
	Failure  []float64 // bad / valid cases
	Volume   []float64 // valid cases
}

// SeriesFromBuckets folds the verifier's service-level buckets (several per
// workflow-minute are merged exactly) into per-workflow series over the
// minutes [from, to). Buckets outside the span are ignored.
func SeriesFromBuckets(bs []*sla.Bucket, from, to time.Time) (map[string]*Series, error) {
	from, to = from.UTC().Truncate(time.Minute), to.UTC().Truncate(time.Minute)
	n := int(to.Sub(from) / time.Minute)
	if n <= 0 {
		return nil, fmt.Errorf("learn: empty span %s..%s", from, to)
	}
	merged := map[string][]*sla.Bucket{}
	for _, b := range bs {
		i := int(b.Minute.UTC().Sub(from) / time.Minute)
		if b.Minute.Before(from) || i >= n {
			continue
		}
		m := merged[b.Workflow]
		if m == nil {
			m = make([]*sla.Bucket, n)
			merged[b.Workflow] = m
		}
		if m[i] == nil {
			m[i] = sla.NewBucket(b.Workflow, b.Minute)
		}
		if err := m[i].Merge(b); err != nil {
			return nil, fmt.Errorf("learn: merge %s at %s: %w", b.Workflow, b.Minute, err)
		}
	}
	out := make(map[string]*Series, len(merged))
	for wf, m := range merged {
		s := &Series{Workflow: wf, From: from, P99: make([]float64, n), Failure: make([]float64, n), Volume: make([]float64, n)}
		last := 0.0
		for i, b := range m {
			if b != nil {
				if q, ok := sla.Quantile(b.Latency, 0.99); ok {
					last = float64(q) / float64(time.Millisecond)
				}
				if v := b.Counts.Valid(); v > 0 {
					s.Failure[i] = float64(b.Counts.Bad()) / float64(v)
					s.Volume[i] = float64(v)
				}
			}
			s.P99[i] = last
		}
		out[wf] = s
	}
	return out, nil
}
