package lambdasvc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// Metric is one metric datum extracted from an embedded metric format
// (EMF) log line.
type Metric struct {
	Namespace  string
	Name       string
	Unit       string
	Dimensions map[string]string
	Values     []float64
	Timestamp  time.Time
	// StorageResolution is 1 for high-resolution metrics, else 60.
	StorageResolution int
}

type emfDoc struct {
	AWS *struct {
		Timestamp         *float64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name              string `json:"Name"`
				Unit              string `json:"Unit"`
				StorageResolution int    `json:"StorageResolution"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
}

// ParseEMF extracts the metrics of an EMF log line as CloudWatch Logs does:
// every metric of every directive, once per dimension set, with values taken
// from the document's members. ok is false when the line is not an EMF
// document; err reports a document that is EMF but malformed.
func ParseEMF(line []byte) (metrics []Metric, ok bool, err error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' || !bytes.Contains(line, []byte(`"_aws"`)) {
		return nil, false, nil
	}
	var doc emfDoc
	if json.Unmarshal(line, &doc) != nil || doc.AWS == nil || doc.AWS.CloudWatchMetrics == nil {
		return nil, false, nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(line, &members); err != nil {
		return nil, true, fmt.Errorf("emf: %w", err)
	}
	ts := time.Now().UTC()
	if doc.AWS.Timestamp != nil {
		ts = time.UnixMilli(int64(*doc.AWS.Timestamp)).UTC()
	}
	for _, d := range doc.AWS.CloudWatchMetrics {
		if d.Namespace == "" {
			return nil, true, fmt.Errorf("emf: directive without Namespace")
		}
		sets := d.Dimensions
		if len(sets) == 0 {
			sets = [][]string{nil}
		}
		for _, m := range d.Metrics {
			if m.Name == "" {
				return nil, true, fmt.Errorf("emf: metric without Name")
			}
			values, err := emfValues(members[m.Name])
			if err != nil {
				return nil, true, fmt.Errorf("emf: metric %s: %w", m.Name, err)
			}
			res := m.StorageResolution
			if res != 1 {
				res = 60
			}
			for _, set := range sets {
				dims := map[string]string{}
				for _, name := range set {
					var v any
					if err := json.Unmarshal(members[name], &v); err != nil || v == nil {
						return nil, true, fmt.Errorf("emf: dimension %s has no value", name)
					}
					dims[name] = scalar(v)
				}
				unit := m.Unit
				if unit == "" {
					unit = "None"
				}
				metrics = append(metrics, Metric{Namespace: d.Namespace, Name: m.Name, Unit: unit, Dimensions: dims,
					Values: values, Timestamp: ts, StorageResolution: res})
			}
		}
	}
	return metrics, true, nil
}

func emfValues(raw json.RawMessage) ([]float64, error) {
	if raw == nil {
		return nil, fmt.Errorf("no value in the document")
	}
	var one float64
	if json.Unmarshal(raw, &one) == nil {
		return []float64{one}, nil
	}
	var many []float64
	if err := json.Unmarshal(raw, &many); err != nil || len(many) == 0 {
		return nil, fmt.Errorf("value is not a number or a list of numbers")
	}
	for _, v := range many {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("value is not finite")
		}
	}
	return many, nil
}

// toDatum converts a metric to a PutMetricData datum, folding repeated
// values into Values/Counts.
func toDatum(m Metric) cwtypes.MetricDatum {
	d := cwtypes.MetricDatum{MetricName: aws.String(m.Name), Unit: cwtypes.StandardUnit(m.Unit),
		Timestamp: aws.Time(m.Timestamp), StorageResolution: aws.Int32(int32(m.StorageResolution))}
	names := make([]string, 0, len(m.Dimensions))
	for k := range m.Dimensions {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		d.Dimensions = append(d.Dimensions, cwtypes.Dimension{Name: aws.String(k), Value: aws.String(m.Dimensions[k])})
	}
	counts := map[float64]float64{}
	var order []float64
	for _, v := range m.Values {
		if counts[v] == 0 {
			order = append(order, v)
		}
		counts[v]++
	}
	for _, v := range order {
		d.Values = append(d.Values, v)
		d.Counts = append(d.Counts, counts[v])
	}
	return d
}

// metricPutter is the CloudWatch call the forwarder needs.
type metricPutter interface {
	PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// forwarder batches metrics per namespace into PutMetricData calls.
type forwarder struct {
	cw       metricPutter
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	pending  map[string][]cwtypes.MetricDatum
	kick     chan struct{}
	sent     int64
}

// maxDatums is the PutMetricData limit of metric data per request.
const maxDatums = 1000

// putMetricTimeout bounds one PutMetricData call.
const putMetricTimeout = 10 * time.Second

func newForwarder(cw metricPutter, log *slog.Logger, interval time.Duration) *forwarder {
	return &forwarder{cw: cw, log: log, interval: interval, pending: map[string][]cwtypes.MetricDatum{}, kick: make(chan struct{}, 1)}
}

func (f *forwarder) add(ms ...Metric) {
	f.mu.Lock()
	full := false
	for _, m := range ms {
		f.pending[m.Namespace] = append(f.pending[m.Namespace], toDatum(m))
		full = full || len(f.pending[m.Namespace]) >= maxDatums
	}
	f.mu.Unlock()
	if full {
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
}

// run flushes periodically until ctx ends, then once more.
func (f *forwarder) run(ctx context.Context) {
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			f.flush(context.WithoutCancel(ctx))
			return
		case <-t.C:
		case <-f.kick:
		}
		f.flush(ctx)
	}
}

func (f *forwarder) flush(ctx context.Context) {
	f.mu.Lock()
	pending := f.pending
	f.pending = map[string][]cwtypes.MetricDatum{}
	f.mu.Unlock()
	for ns, data := range pending {
		for len(data) > 0 {
			n := min(len(data), maxDatums)
			// A put in flight when the service stops is finished, not
			// cancelled: cancelled, its metrics could be lost (or, re-sent,
			// counted twice, when the endpoint had stored them).
			putCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), putMetricTimeout)
			_, err := f.cw.PutMetricData(putCtx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(ns), MetricData: data[:n]})
			cancel()
			if err != nil {
				f.log.Warn("put metric data", "namespace", ns, "metrics", n, "err", err)
			} else {
				f.mu.Lock()
				f.sent += int64(n)
				f.mu.Unlock()
			}
			data = data[n:]
		}
	}
}

// lineSink writes a function's log lines to its log file and forwards EMF
// lines as metrics.
type lineSink struct {
	mu  sync.Mutex
	w   interface{ Write([]byte) (int, error) }
	fwd *forwarder
	log *slog.Logger
	fn  string
}

func (s *lineSink) line(b []byte) {
	s.mu.Lock()
	_, _ = s.w.Write(b)
	s.mu.Unlock()
	if s.fwd == nil {
		return
	}
	ms, ok, err := ParseEMF(b)
	if !ok {
		return
	}
	if err != nil {
		s.log.Warn("malformed EMF line", "function", s.fn, "err", err)
		return
	}
	s.fwd.add(ms...)
}

// lineWriter splits one process stream into whole lines for a sink, so lines
// of concurrent instances never interleave.
type lineWriter struct {
	sink *lineSink
	buf  []byte
}

// Write buffers p and passes every complete line to the sink.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.sink.line(w.buf[:i+1])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 256<<10 { // an unterminated giant line: pass it on
		w.sink.line(append(w.buf, '\n'))
		w.buf = nil
	}
	return len(p), nil
}
