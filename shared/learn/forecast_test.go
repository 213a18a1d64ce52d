package learn

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// hourlyVolume is six weeks of cases per hour: a daily cycle, growth and
// Poisson-like noise, in whole cases.
func hourlyVolume(seed uint64, growth, noise float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 7))
	xs := make([]float64, 42*24)
	for t := range xs {
		level := 1000 + growth*float64(t) + 400*math.Sin(2*math.Pi*float64(t)/24)
		xs[t] = math.Round(level + noise*math.Sqrt(level)*r.NormFloat64())
	}
	return xs
}

func TestForecastAgainstSeasonalNaive(t *testing.T) {
	cases := []struct {
		name   string
		xs     []float64
		useHW  bool
		reason string
	}{
		{"growing noisy volume", hourlyVolume(1, 2, 1.5), true, "the trend and the noise defeat last day's value"},
		{"steady noisy volume", hourlyVolume(2, 0, 1.5), true, "smoothing averages the noise out"},
		{"exactly repeating days", hourlyVolume(3, 0, 0), false, "last day's value is exact: nothing beats it"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _, err := EvaluateForecast(c.xs, 24, 7*24)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: Holt-Winters MAE %.2f, seasonal-naive MAE %.2f over %d held-out hours (use forecast: %v)",
				c.name, b.ForecastMAE, b.NaiveMAE, b.Points, b.Use)
			if b.Use != c.useHW {
				t.Errorf("use = %v, want %v (%s)", b.Use, c.useHW, c.reason)
			}
		})
	}
}

func TestForecastRefusesShortSeries(t *testing.T) {
	_, _, err := EvaluateForecast(make([]float64, 80), 24, 10)
	if !errors.Is(err, ErrShortSeries) {
		t.Fatalf("err = %v, want ErrShortSeries", err)
	}
	if _, err := NewHoltWinters(1.5, 0, 0, 24, make([]float64, 48)); err == nil {
		t.Fatal("alpha 1.5 accepted")
	}
	if _, err := NewHoltWinters(0.5, 0, 0, 1, make([]float64, 48)); err == nil {
		t.Fatal("season 1 accepted")
	}
}

func TestHoltWintersFollowsALine(t *testing.T) {
	xs := make([]float64, 96)
	for i := range xs {
		xs[i] = 10 + 3*float64(i)
	}
	m, err := NewHoltWinters(0.5, 0.5, 0.1, 12, xs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Ahead(5), 10+3*float64(len(xs)+4); math.Abs(got-want) > 1e-6 {
		t.Fatalf("Ahead(5) = %v, want %v", got, want)
	}
}
