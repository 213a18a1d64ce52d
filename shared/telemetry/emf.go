package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Limits of the CloudWatch embedded metric format. Flush splits a Metrics
// into several documents to stay within the first two; more dimensions than
// MaxDimensions is an error.
const (
	MaxMetricsPerDocument = 100  // metric definitions in one directive
	MaxValuesPerMetric    = 100  // values of one metric in one document
	MaxDimensions         = 30   // dimension names in one dimension set
	maxNameLen            = 255  // namespace, metric and dimension names
	maxDimensionValueLen  = 1024 // dimension values
)

// Unit is a CloudWatch metric unit.
type Unit string

// The CloudWatch metric units.
const (
	Seconds            Unit = "Seconds"
	Microseconds       Unit = "Microseconds"
	Milliseconds       Unit = "Milliseconds"
	Bytes              Unit = "Bytes"
	Kilobytes          Unit = "Kilobytes"
	Megabytes          Unit = "Megabytes"
	Gigabytes          Unit = "Gigabytes"
	Terabytes          Unit = "Terabytes"
	Bits               Unit = "Bits"
	Kilobits           Unit = "Kilobits"
	Megabits           Unit = "Megabits"
	Gigabits           Unit = "Gigabits"
	Terabits           Unit = "Terabits"
	Percent            Unit = "Percent"
	Count              Unit = "Count"
	BytesPerSecond     Unit = "Bytes/Second"
	KilobytesPerSecond Unit = "Kilobytes/Second"
	MegabytesPerSecond Unit = "Megabytes/Second"
	GigabytesPerSecond Unit = "Gigabytes/Second"
	TerabytesPerSecond Unit = "Terabytes/Second"
	BitsPerSecond      Unit = "Bits/Second"
	KilobitsPerSecond  Unit = "Kilobits/Second"
	MegabitsPerSecond  Unit = "Megabits/Second"
	GigabitsPerSecond  Unit = "Gigabits/Second"
	TerabitsPerSecond  Unit = "Terabits/Second"
	CountPerSecond     Unit = "Count/Second"
	None               Unit = "None"
)

const (
	highResolution     = 1  // StorageResolution of a high-resolution metric
	standardResolution = 60 // StorageResolution of a standard metric (the default, omitted)
)

var validUnits = map[Unit]bool{
	Seconds: true, Microseconds: true, Milliseconds: true, Bytes: true, Kilobytes: true, Megabytes: true,
	Gigabytes: true, Terabytes: true, Bits: true, Kilobits: true, Megabits: true, Gigabits: true, Terabits: true,
	Percent: true, Count: true, BytesPerSecond: true, KilobytesPerSecond: true, MegabytesPerSecond: true,
	GigabytesPerSecond: true, TerabytesPerSecond: true, BitsPerSecond: true, KilobitsPerSecond: true,
	MegabitsPerSecond: true, GigabitsPerSecond: true, TerabitsPerSecond: true, CountPerSecond: true, None: true,
}

// Valid reports whether u is a CloudWatch unit.
func (u Unit) Valid() bool { return validUnits[u] }

// Dimension is one name/value pair of a metric's dimension set.
type Dimension struct {
	Name  string
	Value string
}

// Option configures a Metrics.
type Option func(*Metrics)

// WithClock sets the clock that timestamps flushed documents (default
// time.Now).
func WithClock(now func() time.Time) Option { return func(m *Metrics) { m.now = now } }

// Metrics collects the metric values of one invocation and writes them as
// CloudWatch embedded metric format (EMF) JSON lines. It is safe for
// concurrent use. Invalid input (bad names, units, NaN values) is dropped and
// reported by the next Flush; it never panics.
type Metrics struct {
	mu        sync.Mutex
	namespace string
	now       func() time.Time
	dims      []Dimension
	metrics   []*metric
	byName    map[string]*metric
	props     map[string]any
	propOrder []string
	errs      []error
	buf       bytes.Buffer
}

type metric struct {
	name       string
	unit       Unit
	resolution int
	values     []float64
}

// NewMetrics returns an empty Metrics that publishes to namespace (for KNHK's
// own metrics, Namespace).
func NewMetrics(namespace string, opts ...Option) *Metrics {
	m := &Metrics{namespace: namespace, now: time.Now, byName: make(map[string]*metric), props: make(map[string]any)}
	for _, o := range opts {
		o(m)
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m
}

// Add records one value of a standard-resolution metric. All values of one
// metric name must use the same unit.
func (m *Metrics) Add(name string, unit Unit, value float64) {
	m.add(name, unit, value, standardResolution)
}

// AddHighResolution records one value of a high-resolution (1 second)
// metric. A name must not be used at both resolutions.
func (m *Metrics) AddHighResolution(name string, unit Unit, value float64) {
	m.add(name, unit, value, highResolution)
}

func (m *Metrics) add(name string, unit Unit, value float64, resolution int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkName("metric", name); err != nil {
		m.errs = append(m.errs, err)
		return
	}
	if !unit.Valid() {
		m.errs = append(m.errs, fmt.Errorf("metric %q: invalid unit %q", name, unit))
		return
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		m.errs = append(m.errs, fmt.Errorf("metric %q: value %v is not a finite number", name, value))
		return
	}
	mt, ok := m.byName[name]
	if !ok {
		mt = &metric{name: name, unit: unit, resolution: resolution}
		m.byName[name] = mt
		m.metrics = append(m.metrics, mt)
	}
	if mt.unit != unit || mt.resolution != resolution {
		m.errs = append(m.errs, fmt.Errorf("metric %q: unit %s/resolution %d conflicts with earlier %s/%d",
			name, unit, resolution, mt.unit, mt.resolution))
		return
	}
	mt.values = append(mt.values, value)
}

// SetDimensions replaces the dimension set of every metric flushed from now
// on (it survives Flush). An empty call publishes metrics without dimensions.
// More than MaxDimensions dimensions, empty or duplicate names, or empty
// values are an error and leave the previous set in place.
func (m *Metrics) SetDimensions(dims ...Dimension) error {
	if len(dims) > MaxDimensions {
		return fmt.Errorf("set dimensions: %d dimensions, at most %d allowed", len(dims), MaxDimensions)
	}
	seen := make(map[string]bool, len(dims))
	for _, d := range dims {
		if err := checkName("dimension", d.Name); err != nil {
			return fmt.Errorf("set dimensions: %w", err)
		}
		if seen[d.Name] {
			return fmt.Errorf("set dimensions: duplicate dimension %q", d.Name)
		}
		seen[d.Name] = true
		if d.Value == "" || len(d.Value) > maxDimensionValueLen || !utf8.ValidString(d.Value) {
			return fmt.Errorf("set dimensions: dimension %q: value must be 1 to %d bytes of UTF-8", d.Name, maxDimensionValueLen)
		}
	}
	m.mu.Lock()
	m.dims = append(m.dims[:0:0], dims...)
	m.mu.Unlock()
	return nil
}

// SetProperty adds a top-level member to the documents of the next Flush:
// context searchable in CloudWatch Logs Insights but not a metric (for
// example a case id). value must marshal to JSON. A key equal to a dimension
// or metric name is dropped at Flush with an error.
func (m *Metrics) SetProperty(key string, value any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if key == "" || key == "_aws" || !utf8.ValidString(key) {
		m.errs = append(m.errs, fmt.Errorf("property %q: reserved, empty or not UTF-8", key))
		return
	}
	if _, ok := m.props[key]; !ok {
		m.propOrder = append(m.propOrder, key)
	}
	m.props[key] = value
}

// Flush writes the collected metrics to w as one or more EMF documents, one
// per line, and clears metrics and properties (dimensions are kept). It
// writes nothing when no metric was added. The error joins the problems with
// dropped input since the last Flush and any write error.
func (m *Metrics) Flush(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	errs := m.errs
	defer m.reset()
	if w == nil {
		return errors.Join(append(errs, errors.New("flush metrics: nil writer"))...)
	}
	if err := checkName("namespace", m.namespace); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if len(m.metrics) == 0 {
		return errors.Join(errs...)
	}
	dimNames := make(map[string]bool, len(m.dims))
	for _, d := range m.dims {
		dimNames[d.Name] = true
	}
	metrics := make([]*metric, 0, len(m.metrics))
	for _, mt := range m.metrics {
		if dimNames[mt.name] {
			errs = append(errs, fmt.Errorf("metric %q: name is also a dimension; dropped", mt.name))
			continue
		}
		metrics = append(metrics, mt)
	}
	props, perrs := m.encodeProperties(dimNames)
	errs = append(errs, perrs...)

	ts := m.now().UnixMilli()
	for round := 0; ; round++ {
		lo := round * MaxValuesPerMetric
		var batch []*metric
		for _, mt := range metrics {
			if len(mt.values) > lo {
				batch = append(batch, mt)
			}
		}
		if len(batch) == 0 {
			break
		}
		for start := 0; start < len(batch); start += MaxMetricsPerDocument {
			part := batch[start:min(start+MaxMetricsPerDocument, len(batch))]
			m.buf.Reset()
			m.encode(&m.buf, ts, part, lo, props)
			if _, err := w.Write(m.buf.Bytes()); err != nil {
				return errors.Join(append(errs, fmt.Errorf("write metrics: %w", err))...)
			}
		}
	}
	return errors.Join(errs...)
}

func (m *Metrics) reset() {
	m.metrics = m.metrics[:0]
	clear(m.byName)
	clear(m.props)
	m.propOrder = m.propOrder[:0]
	m.errs = nil
}

// encodedProp is a property ready to be written.
type encodedProp struct {
	key   string
	value []byte
}

func (m *Metrics) encodeProperties(dimNames map[string]bool) ([]encodedProp, []error) {
	var out []encodedProp
	var errs []error
	for _, k := range m.propOrder {
		if dimNames[k] || m.byName[k] != nil {
			errs = append(errs, fmt.Errorf("property %q: name is also a dimension or metric; dropped", k))
			continue
		}
		v, err := json.Marshal(m.props[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("property %q: %w; dropped", k, err))
			continue
		}
		out = append(out, encodedProp{k, v})
	}
	return out, errs
}

// encode writes one EMF document holding, for each metric of part, the
// values from index lo on (at most MaxValuesPerMetric of them).
func (m *Metrics) encode(b *bytes.Buffer, ts int64, part []*metric, lo int, props []encodedProp) {
	b.WriteString(`{"_aws":{"Timestamp":`)
	b.Write(strconv.AppendInt(b.AvailableBuffer(), ts, 10))
	b.WriteString(`,"CloudWatchMetrics":[{"Namespace":`)
	writeString(b, m.namespace)
	b.WriteString(`,"Dimensions":[[`)
	for i, d := range m.dims {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(b, d.Name)
	}
	b.WriteString(`]],"Metrics":[`)
	for i, mt := range part {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"Name":`)
		writeString(b, mt.name)
		b.WriteString(`,"Unit":`)
		writeString(b, string(mt.unit))
		if mt.resolution == highResolution {
			b.WriteString(`,"StorageResolution":1`)
		}
		b.WriteByte('}')
	}
	b.WriteString(`]}]}`)
	for _, d := range m.dims {
		b.WriteByte(',')
		writeString(b, d.Name)
		b.WriteByte(':')
		writeString(b, d.Value)
	}
	for _, mt := range part {
		b.WriteByte(',')
		writeString(b, mt.name)
		b.WriteByte(':')
		vals := mt.values[lo:min(lo+MaxValuesPerMetric, len(mt.values))]
		if len(vals) == 1 {
			writeFloat(b, vals[0])
			continue
		}
		b.WriteByte('[')
		for i, v := range vals {
			if i > 0 {
				b.WriteByte(',')
			}
			writeFloat(b, v)
		}
		b.WriteByte(']')
	}
	for _, p := range props {
		b.WriteByte(',')
		writeString(b, p.key)
		b.WriteByte(':')
		b.Write(p.value)
	}
	b.WriteString("}\n")
}

func writeFloat(b *bytes.Buffer, v float64) {
	b.Write(strconv.AppendFloat(b.AvailableBuffer(), v, 'g', -1, 64))
}

// writeString writes s as a JSON string. Names and values were checked to be
// valid UTF-8; control characters and JSON specials are escaped.
func writeString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

func checkName(kind, name string) error {
	if name == "" || len(name) > maxNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("%s name %q: must be 1 to %d bytes of UTF-8", kind, name, maxNameLen)
	}
	if name == "_aws" {
		return fmt.Errorf("%s name %q is reserved", kind, name)
	}
	return nil
}
