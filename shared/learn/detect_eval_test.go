package learn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// injected is one anomaly put into a generated series: it occupies
// [Start, End) and a detection is credited to it up to Tol points later.
type injected struct {
	Kind       Kind
	Start, End int
}

// series generates a metric of n points with a seasonal pattern, noise and
// one injected anomaly of kind k (or none when k is 0).
type seriesGen struct {
	name   string
	base   float64 // level
	amp    float64 // seasonal amplitude
	noise  func(r *rand.Rand, level float64) float64
	sigma  float64 // noise scale used to size anomalies
	clampZ bool    // values cannot go below 0 (rates)
	floor  float64 // the detector's MinScale
}

const (
	evalLen    = 720
	evalSeason = 48
	evalTol    = 30
)

func latencyGen() seriesGen {
	return seriesGen{name: "latency", base: 120, amp: 30, sigma: 6, floor: 0.6,
		noise: func(r *rand.Rand, _ float64) float64 { return r.NormFloat64() * 6 }}
}

// failureGen is a per-minute failure rate of 400 calls at a base rate of
// 2 %: binomial noise.
func failureGen() seriesGen {
	return seriesGen{name: "failure rate", base: 0.02, amp: 0.005, sigma: math.Sqrt(0.02 * 0.98 / 400), clampZ: true,
		floor: RateFloor(0.02, 400),
		noise: func(r *rand.Rand, level float64) float64 {
			n, k := 400, 0
			for range n {
				if r.Float64() < level {
					k++
				}
			}
			return float64(k)/float64(n) - level
		}}
}

func (g seriesGen) generate(seed uint64, k Kind) ([]float64, []injected) {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	xs := make([]float64, evalLen)
	var inj []injected
	start := 4*evalSeason + r.IntN(evalLen-4*evalSeason-200)
	var end int
	var mag float64
	switch k {
	case Spike:
		end = start + 1 + r.IntN(3)
		mag = (10 + 6*r.Float64()) * g.sigma
	case Shift:
		end = evalLen
		mag = (8 + 6*r.Float64()) * g.sigma
	case Drift:
		end = start + 150 + r.IntN(50) // ramp length
		mag = (10 + 6*r.Float64()) * g.sigma
	}
	if k != 0 {
		inj = append(inj, injected{Kind: k, Start: start, End: end})
		if k == Drift {
			inj[0].End = evalLen
		}
	}
	if r.IntN(2) == 0 {
		mag = -mag
		if g.clampZ || k == Spike { // rates and latencies spike upwards
			mag = -mag
		}
	}
	for t := range xs {
		level := g.base + g.amp*math.Sin(2*math.Pi*float64(t)/evalSeason)
		if k != 0 && t >= start {
			switch k {
			case Spike:
				if t < end {
					level += mag
				}
			case Shift:
				level += mag
			case Drift:
				level += mag * min(1, float64(t-start)/float64(end-start))
			}
		}
		if g.clampZ {
			level = max(level, 0)
		}
		xs[t] = level + g.noise(r, level)
	}
	return xs, inj
}

// score matches alarm episodes (consecutive anomalies, gaps under 3 points
// merged) with injected anomalies.
func score(an []Anomaly, inj []injected) (tp, fp, found int) {
	type ep struct{ s, e int }
	var eps []ep
	for _, a := range an {
		if n := len(eps); n > 0 && a.Index-eps[n-1].e <= 3 {
			eps[n-1].e = a.Index
			continue
		}
		eps = append(eps, ep{a.Index, a.Index})
	}
	hit := make([]bool, len(inj))
	for _, e := range eps {
		ok := false
		for i, in := range inj {
			if e.s >= in.Start && e.s < in.End+evalTol {
				ok, hit[i] = true, true
			}
		}
		if ok {
			tp++
		} else {
			fp++
		}
	}
	for _, h := range hit {
		if h {
			found++
		}
	}
	return tp, fp, found
}

// TestDetectorPrecisionRecall is the detector's evaluation: 200 generated
// series per metric and kind (fixed seeds), precision = alarm episodes that
// match an injected anomaly over all episodes, recall = injected anomalies
// found. Both must be at least 0.9 for every kind; clean series (no
// anomaly) count their false alarms.
func TestDetectorPrecisionRecall(t *testing.T) {
	const runs = 200
	for _, g := range []seriesGen{latencyGen(), failureGen()} {
		cfg := DetectorConfig{Window: 60, Season: evalSeason, MinScale: g.floor}
		clean := 0
		for seed := range uint64(runs) {
			xs, _ := g.generate(seed+10_000, 0)
			an, err := Detect(cfg, xs)
			if err != nil {
				t.Fatal(err)
			}
			_, fp, _ := score(an, nil)
			clean += fp
		}
		t.Logf("%s: %d false alarm episodes over %d clean series of %d points", g.name, clean, runs, evalLen)
		for _, k := range []Kind{Spike, Shift, Drift} {
			t.Run(fmt.Sprintf("%s/%s", g.name, k), func(t *testing.T) {
				var tp, fp, found, total int
				for seed := range uint64(runs) {
					xs, inj := g.generate(seed+uint64(k)*1000, k)
					an, err := Detect(cfg, xs)
					if err != nil {
						t.Fatal(err)
					}
					a, b, c := score(an, inj)
					tp, fp, found, total = tp+a, fp+b, found+c, total+len(inj)
				}
				precision := float64(tp) / float64(max(1, tp+fp))
				recall := float64(found) / float64(total)
				t.Logf("%s %s: precision %.3f (%d of %d episodes), recall %.3f (%d of %d)",
					g.name, k, precision, tp, tp+fp, recall, found, total)
				if precision < 0.9 || recall < 0.9 {
					t.Errorf("precision %.3f, recall %.3f: want both ≥ 0.9", precision, recall)
				}
			})
		}
	}
}
