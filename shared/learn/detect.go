// Package learn is the functional core of KNHK's tuning loop (MAPE-K): robust
// anomaly detection over per-task metric series, a next-hour volume forecast
// that is used only when it beats a seasonal-naive baseline, the plan rules
// that turn observations into recommendations with their evidence and
// expected effect, and the guardrails that bound every change and make every
// rollback exact. It reads no clock, calls no AWS service and draws no random
// number: the shell (package tuner) feeds it observations and applies what it
// admits.
package learn

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Kind is what an anomaly looks like.
type Kind int

// The kinds of anomaly the detector reports.
const (
	// Spike is a short excursion: the point is far from its baseline, the
	// recent level is not.
	Spike Kind = iota + 1
	// Shift is a sudden, sustained change of level.
	Shift
	// Drift is a slow change of level that builds up over many points.
	Drift
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case Spike:
		return "spike"
	case Shift:
		return "shift"
	case Drift:
		return "drift"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// DetectorConfig tunes a Detector. Zero fields take the defaults noted.
type DetectorConfig struct {
	// Window is the rolling baseline's length in points (default 60).
	Window int
	// Season is the seasonal period in points (0: no seasonality). With a
	// season, a point is compared with the median of the same phase over the
	// last Seasons periods, so a daily peak is not an anomaly.
	Season int
	// Seasons is how many past periods form the seasonal expectation
	// (default 3).
	Seasons int
	// PointZ is the robust z-score (residual over 1.4826·MAD) beyond which a
	// single point is anomalous (default 6).
	PointZ float64
	// LevelZ is the z-score of the median of the last Level points beyond
	// which the level has moved (default 5).
	LevelZ float64
	// Level is how many recent points the level test takes the median of
	// (default 7).
	Level int
	// MinScale floors the residual scale, so that a series that is constant
	// in its baseline (a failure rate of 0) does not make every change
	// infinitely anomalous (default 1e-9).
	MinScale float64
	// Adapt is how many consecutive anomalous points are held out of the
	// baseline before the new level is accepted as normal (default: the
	// longer of Window and Seasons·Season).
	Adapt int
}

func (c DetectorConfig) withDefaults() DetectorConfig {
	if c.Window <= 0 {
		c.Window = 60
	}
	if c.Seasons <= 0 {
		c.Seasons = 3
	}
	if c.PointZ <= 0 {
		c.PointZ = 6
	}
	if c.LevelZ <= 0 {
		c.LevelZ = 5
	}
	if c.Level <= 0 {
		c.Level = 7
	}
	if c.MinScale <= 0 {
		c.MinScale = 1e-9
	}
	if c.Adapt <= 0 {
		c.Adapt = max(c.Window, c.Seasons*c.Season)
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c DetectorConfig) Validate() error {
	if c.Season < 0 || c.Window < 0 || c.Level < 0 || c.Adapt < 0 || c.Seasons < 0 {
		return errors.New("learn: detector lengths must not be negative")
	}
	if math.IsNaN(c.PointZ) || math.IsNaN(c.LevelZ) || math.IsNaN(c.MinScale) {
		return errors.New("learn: detector thresholds must be numbers")
	}
	return nil
}

// Anomaly is one point the detector flagged.
type Anomaly struct {
	Index    int     `json:"index"`    // position in the series
	Kind     Kind    `json:"kind"`     // what it looks like
	Value    float64 `json:"value"`    // the observed value
	Expected float64 `json:"expected"` // the baseline's expectation
	Score    float64 `json:"score"`    // robust z-score of the test that fired
}

// Detector flags anomalous points of one metric series (one task's p99
// latency or failure rate per minute). It is fed one point at a time; its
// memory is bounded by the baseline it keeps. A Detector is not safe for
// concurrent use.
type Detector struct {
	cfg DetectorConfig
	// hist holds accepted values (anomalous points replaced by their
	// expectation until Adapt of them in a row make the new level normal);
	// raw holds the observed values of the same positions.
	hist, raw []float64
	// resid holds the residuals of accepted points (the spread's baseline);
	// obs the residuals of every recent point (the level test's input).
	resid, obs []float64
	n          int // points seen
	run        int // consecutive anomalous points
	gray       int // consecutive grey points (see Observe)
	// pointSeen says whether the current anomaly began with a point beyond
	// PointZ (a shift) or built up under it (a drift).
	pointSeen bool
}

// NewDetector returns a detector with cfg (defaults filled in).
func NewDetector(cfg DetectorConfig) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Detector{cfg: cfg.withDefaults()}, nil
}

func (d *Detector) keep() int { return max(d.cfg.Window, d.cfg.Seasons*d.cfg.Season) + d.cfg.Adapt + 1 }

// need is how many values the expectation needs.
func (d *Detector) need() int {
	if d.cfg.Season > 0 {
		return d.cfg.Seasons * d.cfg.Season
	}
	return d.cfg.Level
}

// expect is the baseline's value for the next point.
func (d *Detector) expect() float64 {
	h := d.hist
	if d.cfg.Season > 0 && len(h) >= d.cfg.Seasons*d.cfg.Season {
		vs := make([]float64, 0, d.cfg.Seasons)
		for k := 1; k <= d.cfg.Seasons; k++ {
			vs = append(vs, h[len(h)-k*d.cfg.Season])
		}
		return median(vs)
	}
	w := min(d.cfg.Window, len(h))
	return median(h[len(h)-w:])
}

// scale is the residual spread of the baseline: 1.4826 times the median
// absolute residual (residuals are deviations from the expectation, centred
// on 0 by construction; centring them on their own median would let a slow
// drift hide in the centre), floored by MinScale.
func (d *Detector) scale() float64 {
	w := min(d.cfg.Window, len(d.resid))
	r := d.resid[len(d.resid)-w:]
	dev := make([]float64, len(r))
	for i, v := range r {
		dev[i] = math.Abs(v)
	}
	return max(1.4826*median(dev), d.cfg.MinScale)
}

// Observe feeds the next point and returns the anomaly it is, if any. A NaN
// or infinite value is refused with an error and changes nothing.
func (d *Detector) Observe(v float64) (Anomaly, bool, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Anomaly{}, false, fmt.Errorf("learn: point %d is not a finite number", d.n)
	}
	idx := d.n
	d.n++
	if len(d.hist) < d.need() {
		d.accept(v, 0, false)
		return Anomaly{}, false, nil
	}
	exp := d.expect()
	if len(d.resid) < d.cfg.Window {
		// Warming up: the spread's baseline is still being learnt.
		d.accept(v, v-exp, true)
		return Anomaly{}, false, nil
	}
	scale := d.scale()
	res := v - exp
	z := res / scale
	// The level test: the median residual of the last Level points
	// (including this one) against the residuals' spread; a median of m
	// points has about 1.25/√m the spread of one.
	recent := append(d.recentResiduals(d.cfg.Level-1), res)
	lz := median(recent) / (scale * 1.2533 / math.Sqrt(float64(len(recent))))
	a := Anomaly{Index: idx, Value: v, Expected: exp}
	switch {
	case math.Abs(z) >= d.cfg.PointZ && math.Abs(lz) < d.cfg.LevelZ && d.run == 0:
		a.Kind, a.Score = Spike, z
		d.pointSeen = true
	case math.Abs(lz) >= d.cfg.LevelZ || (d.run > 0 && math.Abs(z) >= d.cfg.LevelZ):
		a.Score = lz
		if d.run == 0 {
			d.pointSeen = math.Abs(z) >= d.cfg.PointZ
		}
		if d.pointSeen || math.Abs(z) >= d.cfg.PointZ {
			a.Kind = Shift
			d.pointSeen = true
		} else {
			a.Kind = Drift
		}
	case math.Abs(z) >= d.cfg.PointZ:
		a.Kind, a.Score = Spike, z
	default:
		d.run = 0
		d.pointSeen = false
		if math.Abs(lz) < d.cfg.LevelZ/2 && math.Abs(z) < d.cfg.PointZ/2 {
			d.gray = 0
			d.accept(v, res, true)
			return Anomaly{}, false, nil
		}
		// A grey point: not anomalous, but not plainly normal either. The
		// spread does not learn from it (else a slow drift would widen the
		// spread as fast as it moves and never show); if grey points last,
		// the spread is relearnt from scratch.
		d.gray++
		d.hist = append(d.hist, v)
		d.raw = append(d.raw, v)
		d.obs = append(d.obs, res)
		if d.gray >= d.cfg.Adapt {
			d.rebase()
			d.gray = 0
		}
		d.trim()
		return Anomaly{}, false, nil
	}
	d.run++
	if d.run >= d.cfg.Adapt {
		// The anomaly has lasted: it is the new normal. Re-baseline on the
		// observed values.
		d.rebase()
		d.run = 0
		d.pointSeen = false
	} else {
		d.hold(v, exp)
	}
	return a, true, nil
}

// recentResiduals returns up to n observed residuals of the points just
// before this one, anomalous ones included, so a level that moved shows.
func (d *Detector) recentResiduals(n int) []float64 {
	out := make([]float64, 0, n+1)
	return append(out, d.obs[max(0, len(d.obs)-n):]...)
}

func (d *Detector) accept(v, res float64, withResid bool) {
	d.hist = append(d.hist, v)
	d.raw = append(d.raw, v)
	if withResid {
		d.resid = append(d.resid, res)
		d.obs = append(d.obs, res)
	}
	d.trim()
}

func (d *Detector) hold(v, exp float64) {
	d.hist = append(d.hist, exp)
	d.raw = append(d.raw, v)
	d.obs = append(d.obs, v-exp)
	d.trim()
}

// rebase replaces the held-out values by the observed ones and restarts the
// residual baseline: the level that lasted is the new normal.
func (d *Detector) rebase() {
	copy(d.hist, d.raw)
	d.resid = d.resid[:0]
	d.obs = d.obs[:0]
}

func (d *Detector) trim() {
	if k := d.keep(); len(d.hist) > 2*k {
		d.hist = slices.Clone(d.hist[len(d.hist)-k:])
		d.raw = slices.Clone(d.raw[len(d.raw)-k:])
	}
	if w := d.cfg.Window; len(d.resid) > 4*w {
		d.resid = slices.Clone(d.resid[len(d.resid)-w:])
	}
	if l := d.cfg.Level; len(d.obs) > 4*l {
		d.obs = slices.Clone(d.obs[len(d.obs)-l:])
	}
}

// Detect runs a fresh detector over a whole series.
func Detect(cfg DetectorConfig, xs []float64) ([]Anomaly, error) {
	d, err := NewDetector(cfg)
	if err != nil {
		return nil, err
	}
	var out []Anomaly
	for _, x := range xs {
		a, ok, err := d.Observe(x)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, a)
		}
	}
	return out, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// RateFloor is the MinScale for a failure-rate series: the binomial standard
// error of a rate p over n calls per point, below which a change of the rate
// is noise however quiet the baseline was. A rate of 0 is floored at one
// failure in n.
func RateFloor(p float64, n int) float64 {
	if n <= 0 {
		return 1
	}
	p = min(max(p, 1/float64(n)), 1)
	return math.Sqrt(p * (1 - p) / float64(n))
}
