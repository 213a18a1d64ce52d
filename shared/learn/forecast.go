package learn

import (
	"errors"
	"fmt"
	"math"
)

// HoltWinters is additive triple exponential smoothing (level, trend and a
// seasonal component of period Season), fitted to a volume series (cases
// per hour) to forecast the next point.
type HoltWinters struct {
	Alpha, Beta, Gamma float64 // smoothing of level, trend, season (0..1)
	Season             int

	level, trend float64
	season       []float64
	n            int // points folded
}

// ErrShortSeries is returned when a series is too short for a forecast.
var ErrShortSeries = errors.New("learn: series too short")

// NewHoltWinters initialises the model from the first two seasons of xs
// and folds the rest.
func NewHoltWinters(alpha, beta, gamma float64, season int, xs []float64) (*HoltWinters, error) {
	if season < 2 {
		return nil, fmt.Errorf("learn: season %d: want at least 2", season)
	}
	for _, p := range []float64{alpha, beta, gamma} {
		if !(p >= 0 && p <= 1) {
			return nil, fmt.Errorf("learn: smoothing parameter %v: want 0..1", p)
		}
	}
	if len(xs) < 2*season {
		return nil, fmt.Errorf("%w: %d points, need two seasons (%d)", ErrShortSeries, len(xs), 2*season)
	}
	m := &HoltWinters{Alpha: alpha, Beta: beta, Gamma: gamma, Season: season, season: make([]float64, season)}
	var s1, s2 float64
	for i := range season {
		s1 += xs[i]
		s2 += xs[season+i]
	}
	s1 /= float64(season)
	s2 /= float64(season)
	// The first season's mean is the level at its middle; the seasonal
	// components are what is left of each point once level and trend are
	// taken away.
	m.trend = (s2 - s1) / float64(season)
	mid := float64(season-1) / 2
	for i := range season {
		m.season[i] = xs[i] - (s1 + m.trend*(float64(i)-mid))
	}
	m.level = s1 + m.trend*mid
	m.n = season
	for _, x := range xs[season:] {
		m.Update(x)
	}
	return m, nil
}

// Next is the forecast of the next point.
func (m *HoltWinters) Next() float64 { return m.Ahead(1) }

// Ahead is the forecast h points ahead (h ≥ 1).
func (m *HoltWinters) Ahead(h int) float64 {
	return m.level + float64(h)*m.trend + m.season[(m.n+h-1)%m.Season]
}

// Update folds the observed next point.
func (m *HoltWinters) Update(x float64) {
	i := m.n % m.Season
	prev := m.level
	m.level = m.Alpha*(x-m.season[i]) + (1-m.Alpha)*(m.level+m.trend)
	m.trend = m.Beta*(m.level-prev) + (1-m.Beta)*m.trend
	m.season[i] = m.Gamma*(x-m.level) + (1-m.Gamma)*m.season[i]
	m.n++
}

// FitHoltWinters chooses the smoothing parameters on a grid by the one-step
// error over train (after its first two seasons) and returns the model
// fitted to all of train.
func FitHoltWinters(train []float64, season int) (*HoltWinters, error) {
	grid := []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9}
	best, bestErr := (*HoltWinters)(nil), math.Inf(1)
	for _, a := range grid {
		for _, b := range []float64{0, 0.01, 0.05, 0.1, 0.2} {
			for _, g := range []float64{0.05, 0.1, 0.3, 0.5} {
				m, err := NewHoltWinters(a, b, g, season, train[:min(len(train), 2*season)])
				if err != nil {
					return nil, err
				}
				var sse float64
				for _, x := range train[2*season:] {
					e := x - m.Next()
					sse += e * e
					m.Update(x)
				}
				if sse < bestErr {
					best, bestErr = m, sse
				}
			}
		}
	}
	return best, nil
}

// Backtest compares the next-point forecast of a Holt-Winters model fitted
// on all but the last holdout points with the seasonal-naive forecast (the
// value one season before) over those points; each forecast sees the actual
// values before it, as an hourly run would.
type Backtest struct {
	Points      int     `json:"points"`      // held-out points
	ForecastMAE float64 `json:"forecastMAE"` // mean absolute error of Holt-Winters
	NaiveMAE    float64 `json:"naiveMAE"`    // of the seasonal-naive baseline
	// Use says whether the forecast beat the baseline by ForecastMargin;
	// until it does, the
	// loop runs in forecast-only mode (it records forecasts and acts on
	// none).
	Use bool `json:"use"`
}

// ForecastMargin is by how much (a fraction of the baseline's error) the
// forecast must beat the seasonal-naive baseline to be used: a tie, or a win
// by rounding, keeps the loop in forecast-only mode.
const ForecastMargin = 0.05

// EvaluateForecast backtests xs with the last holdout points held out.
func EvaluateForecast(xs []float64, season, holdout int) (Backtest, *HoltWinters, error) {
	if holdout < 1 || len(xs)-holdout < 3*season {
		return Backtest{}, nil, fmt.Errorf("%w: %d points, %d held out, season %d (need three seasons to fit)", ErrShortSeries, len(xs), holdout, season)
	}
	train, test := xs[:len(xs)-holdout], xs[len(xs)-holdout:]
	m, err := FitHoltWinters(train, season)
	if err != nil {
		return Backtest{}, nil, err
	}
	var fe, ne float64
	for i, x := range test {
		t := len(train) + i
		fe += math.Abs(x - m.Next())
		ne += math.Abs(x - xs[t-season])
		m.Update(x)
	}
	b := Backtest{Points: holdout, ForecastMAE: fe / float64(holdout), NaiveMAE: ne / float64(holdout)}
	b.Use = b.ForecastMAE < b.NaiveMAE*(1-ForecastMargin)
	return b, m, nil
}
