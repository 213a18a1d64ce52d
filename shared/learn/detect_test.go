package learn

import (
	"math"
	"testing"
)

func TestDetectorRefusesNonNumbers(t *testing.T) {
	d, err := NewDetector(DetectorConfig{Window: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, _, err := d.Observe(v); err == nil {
			t.Fatalf("Observe(%v) accepted", v)
		}
	}
	if d.n != 0 || len(d.hist) != 0 {
		t.Fatal("a refused point changed the detector")
	}
	if _, err := NewDetector(DetectorConfig{Season: -1}); err == nil {
		t.Fatal("negative season accepted")
	}
}

func TestDetectorFlagsASpikeInAFlatSeries(t *testing.T) {
	xs := make([]float64, 200)
	for i := range xs {
		xs[i] = 100 + float64(i%5) // small, regular wobble
	}
	xs[150] = 400
	an, err := Detect(DetectorConfig{Window: 30, MinScale: 0.5}, xs)
	if err != nil {
		t.Fatal(err)
	}
	if len(an) != 1 || an[0].Index != 150 || an[0].Kind != Spike {
		t.Fatalf("anomalies = %+v, want one spike at 150", an)
	}
}

// FuzzDetector feeds arbitrary series: the detector never panics, every
// anomaly it reports names a point it saw, and its memory stays bounded.
func FuzzDetector(f *testing.F) {
	f.Add([]byte{1, 2, 3, 200, 4, 5}, uint8(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 9}, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, season uint8) {
		d, err := NewDetector(DetectorConfig{Window: 8, Season: int(season % 6), Level: 3})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			for j, b := range data {
				a, ok, err := d.Observe(float64(b) * float64(1+j%3))
				if err != nil {
					t.Fatal(err)
				}
				if ok && (a.Index < 0 || a.Index >= d.n) {
					t.Fatalf("anomaly at %d of %d points", a.Index, d.n)
				}
			}
		}
		if len(d.hist) > 2*d.keep() || len(d.resid) > 4*d.cfg.Window {
			t.Fatalf("memory grew: %d values, %d residuals", len(d.hist), len(d.resid))
		}
	})
}
