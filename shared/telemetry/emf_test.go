package telemetry

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var fixed = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestMetrics() *Metrics {
	return NewMetrics(Namespace, WithClock(func() time.Time { return fixed }))
}

func flushDocs(t *testing.T, m *Metrics) ([]emfDoc, error) {
	t.Helper()
	var buf bytes.Buffer
	ferr := m.Flush(&buf)
	docs, err := parseEMF(buf.Bytes())
	if err != nil {
		t.Fatalf("output breaks the EMF rules: %v\n%s", err, buf.String())
	}
	return docs, ferr
}

func TestFlushWritesOneValidDocument(t *testing.T) {
	m := newTestMetrics()
	if err := m.SetDimensions(Dimension{DimFunction, "executor"}, Dimension{DimWorkflow, "claims"}); err != nil {
		t.Fatal(err)
	}
	m.Add(TasksExecuted, Count, 1)
	m.Add(TaskDuration, Milliseconds, 12.5)
	m.Add(TaskDuration, Milliseconds, 7)
	m.AddHighResolution(AppendConflicts, Count, 2)
	m.SetProperty("caseId", "c-1")
	m.SetProperty("attempt", 3)
	docs, err := flushDocs(t, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("%d documents, want 1", len(docs))
	}
	d := docs[0]
	if d.Namespace != "KNHK" || d.Timestamp != fixed.UnixMilli() {
		t.Fatalf("namespace %q timestamp %d", d.Namespace, d.Timestamp)
	}
	if fmt.Sprint(d.Dimensions) != "[[Function Workflow]]" || d.Members["Function"] != "executor" || d.Members["Workflow"] != "claims" {
		t.Fatalf("dimensions %v members %v", d.Dimensions, d.Members)
	}
	want := []emfMetric{{TasksExecuted, "Count", 0}, {TaskDuration, "Milliseconds", 0}, {AppendConflicts, "Count", 1}}
	if !slices.Equal(d.Metrics, want) {
		t.Fatalf("metrics %v, want %v", d.Metrics, want)
	}
	if got := d.values(TaskDuration); !slices.Equal(got, []float64{12.5, 7}) {
		t.Fatalf("TaskDuration values %v", got)
	}
	if _, isArray := d.Members[TasksExecuted].([]any); isArray {
		t.Fatal("a single value should be written as a number")
	}
	if d.Members["caseId"] != "c-1" || fmt.Sprint(d.Members["attempt"]) != "3" {
		t.Fatalf("properties missing: %v", d.Members)
	}
}

func TestFlushSplitsAtTheLimits(t *testing.T) {
	tests := []struct {
		name     string
		metrics  int // distinct metrics
		values   int // values per metric
		extra    int // one more metric with this many values (0: none)
		wantDocs int
	}{
		{"under the limits", 100, 100, 0, 1},
		{"101 metrics", 101, 1, 0, 2},
		{"250 metrics", 250, 1, 0, 3},
		{"101 values", 1, 101, 0, 2},
		{"250 values and a small metric", 1, 250, 1, 3},
		{"150 metrics of 150 values", 150, 150, 0, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMetrics()
			want := map[string][]float64{}
			for i := range tc.metrics {
				name := fmt.Sprintf("M%03d", i)
				for v := range tc.values {
					m.Add(name, Count, float64(v))
					want[name] = append(want[name], float64(v))
				}
			}
			for v := range tc.extra {
				m.Add("Extra", Milliseconds, float64(v))
				want["Extra"] = append(want["Extra"], float64(v))
			}
			docs, err := flushDocs(t, m)
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) != tc.wantDocs {
				t.Fatalf("%d documents, want %d: %v", len(docs), tc.wantDocs, docs)
			}
			got := map[string][]float64{}
			for _, d := range docs {
				for _, md := range d.Metrics {
					got[md.Name] = append(got[md.Name], d.values(md.Name)...)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatal("values lost, duplicated or reordered across documents")
			}
		})
	}
}

func TestSetDimensions(t *testing.T) {
	dims := func(n int) []Dimension {
		out := make([]Dimension, n)
		for i := range out {
			out[i] = Dimension{fmt.Sprintf("D%02d", i), "v"}
		}
		return out
	}
	tests := []struct {
		name    string
		dims    []Dimension
		wantErr string
	}{
		{"none", nil, ""},
		{"thirty", dims(30), ""},
		{"thirty-one", dims(31), "at most 30"},
		{"duplicate", []Dimension{{"A", "1"}, {"A", "2"}}, "duplicate"},
		{"empty name", []Dimension{{"", "1"}}, "dimension name"},
		{"reserved name", []Dimension{{"_aws", "1"}}, "reserved"},
		{"empty value", []Dimension{{"A", ""}}, "value"},
		{"long value", []Dimension{{"A", strings.Repeat("x", 1025)}}, "value"},
		{"invalid UTF-8", []Dimension{{"A", "\xff"}}, "UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMetrics()
			if err := m.SetDimensions(Dimension{"Keep", "me"}); err != nil {
				t.Fatal(err)
			}
			err := m.SetDimensions(tc.dims...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			m.Add("X", Count, 1)
			docs, _ := flushDocs(t, m)
			names := docs[0].Dimensions[0]
			switch {
			case tc.wantErr != "" && !slices.Equal(names, []string{"Keep"}):
				t.Fatalf("a rejected set replaced the previous one: %v", names)
			case tc.wantErr == "" && len(names) != len(tc.dims):
				t.Fatalf("dimension set %v, want %d names", names, len(tc.dims))
			}
		})
	}
}

func TestInvalidInputIsDroppedAndReported(t *testing.T) {
	m := newTestMetrics()
	if err := m.SetDimensions(Dimension{"Function", "f"}); err != nil {
		t.Fatal(err)
	}
	m.Add("Good", Count, 1)
	m.Add("NaN", Count, math.NaN())
	m.Add("Inf", Count, math.Inf(1))
	m.Add("", Count, 1)
	m.Add("BadUnit", Unit("Parsecs"), 1)
	m.Add("Good", Seconds, 2)                 // unit conflict
	m.AddHighResolution("Good", Count, 3)     // resolution conflict
	m.Add(strings.Repeat("n", 256), Count, 1) // too long
	m.Add("Function", Count, 1)               // collides with a dimension
	m.SetProperty("Good", "x")                // collides with a metric
	m.SetProperty("_aws", 1)                  // reserved
	m.SetProperty("ch", make(chan int))       // not JSON
	m.SetProperty("fine", []string{"a"})
	docs, err := flushDocs(t, m)
	if err == nil {
		t.Fatal("Flush returned no error for dropped input")
	}
	for _, frag := range []string{`"NaN"`, `"Inf"`, `metric name ""`, "Parsecs", "conflicts", `"Function"`, `property "Good"`, `"_aws"`, `"ch"`} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("error does not mention %s: %v", frag, err)
		}
	}
	if len(docs) != 1 || len(docs[0].Metrics) != 1 || docs[0].Metrics[0].Name != "Good" {
		t.Fatalf("docs %v, want only Good", docs)
	}
	if got := docs[0].values("Good"); !slices.Equal(got, []float64{1}) {
		t.Fatalf("Good values %v, want [1]", got)
	}
	if docs[0].Members["Function"] != "f" || docs[0].Members["fine"] == nil || docs[0].Members["ch"] != nil {
		t.Fatalf("members %v", docs[0].Members)
	}
	// The errors were reported once; the next flush starts clean.
	m.Add("Good", Count, 1)
	if _, err := flushDocs(t, m); err != nil {
		t.Fatalf("errors carried over: %v", err)
	}
}

func TestFlushResetsAndKeepsDimensions(t *testing.T) {
	m := newTestMetrics()
	_ = m.SetDimensions(Dimension{"Function", "f"})
	m.Add("A", Count, 1)
	m.SetProperty("p", 1)
	if _, err := flushDocs(t, m); err != nil {
		t.Fatal(err)
	}
	docs, err := flushDocs(t, m)
	if err != nil || len(docs) != 0 {
		t.Fatalf("second flush wrote %v (err %v), want nothing", docs, err)
	}
	m.Add("B", Count, 2)
	docs, _ = flushDocs(t, m)
	if len(docs) != 1 || docs[0].Members["Function"] != "f" || docs[0].Members["p"] != nil || docs[0].Members["A"] != nil {
		t.Fatalf("after reset: %v %v", docs, docs[0].Members)
	}
}

func TestNamesAreEscaped(t *testing.T) {
	m := NewMetrics("ns \"q\"")
	_ = m.SetDimensions(Dimension{"dim\\x", "va\"l\n"})
	m.Add("metric \"with\" quotes\t", Count, 1)
	m.SetProperty("prop\u0001", "v")
	docs, err := flushDocs(t, m)
	if err != nil {
		t.Fatal(err)
	}
	d := docs[0]
	if d.Namespace != "ns \"q\"" || d.Members["dim\\x"] != "va\"l\n" || d.Members["prop\u0001"] != "v" {
		t.Fatalf("escaping lost content: %v", d.Members)
	}
	if got := d.values("metric \"with\" quotes\t"); !slices.Equal(got, []float64{1}) {
		t.Fatalf("values %v", got)
	}
}

func TestInvalidNamespace(t *testing.T) {
	m := NewMetrics("")
	m.Add("A", Count, 1)
	var buf bytes.Buffer
	if err := m.Flush(&buf); err == nil || buf.Len() != 0 {
		t.Fatalf("empty namespace: err %v, output %q", err, buf.String())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestFlushReportsWriteErrors(t *testing.T) {
	m := newTestMetrics()
	m.Add("A", Count, 1)
	if err := m.Flush(failingWriter{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err %v, want the write error", err)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestConcurrentUse(t *testing.T) {
	m := newTestMetrics()
	var out lockedBuffer
	const goroutines, perG = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				m.Add(fmt.Sprintf("M%d", i%5), Count, 1)
				if i%50 == 0 {
					m.SetProperty(fmt.Sprintf("g%d", g), i)
					_ = m.SetDimensions(Dimension{"Function", "f"})
				}
				if i%100 == 0 {
					if err := m.Flush(&out); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := m.Flush(&out); err != nil {
		t.Fatal(err)
	}
	docs, err := parseEMF(out.b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, d := range docs {
		for _, md := range d.Metrics {
			for _, v := range d.values(md.Name) {
				total += v
			}
		}
	}
	if total != goroutines*perG {
		t.Fatalf("flushed %v values, want %d", total, goroutines*perG)
	}
}

// TestPropertyRandomMetrics adds random metrics and values and checks that the
// output always passes the EMF validator and carries every value exactly
// once, in order.
func TestPropertyRandomMetrics(t *testing.T) {
	units := []Unit{Count, Milliseconds, Bytes, Percent, None}
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 3))
		m := newTestMetrics()
		nd := rng.IntN(MaxDimensions + 1)
		dims := make([]Dimension, nd)
		for i := range dims {
			dims[i] = Dimension{fmt.Sprintf("D%d", i), fmt.Sprint(rng.IntN(9) + 1)}
		}
		if err := m.SetDimensions(dims...); err != nil {
			t.Fatal(err)
		}
		want := map[string][]float64{}
		nm := 1 + rng.IntN(260)
		for range 1 + rng.IntN(3000) {
			i := rng.IntN(nm)
			name := fmt.Sprintf("M%d", i)
			v := rng.NormFloat64() * 1e6
			if i%7 == 0 {
				m.AddHighResolution(name, units[i%len(units)], v)
			} else {
				m.Add(name, units[i%len(units)], v)
			}
			want[name] = append(want[name], v)
		}
		docs, err := flushDocs(t, m)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]float64{}
		for _, d := range docs {
			if len(d.Dimensions[0]) != nd {
				t.Fatalf("seed %d: dimension set %v", seed, d.Dimensions)
			}
			for _, md := range d.Metrics {
				got[md.Name] = append(got[md.Name], d.values(md.Name)...)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("seed %d: values differ after the round trip", seed)
		}
	}
}

// FuzzMetrics feeds arbitrary names and values; whatever is written must pass
// the EMF validator and nothing may panic.
func FuzzMetrics(f *testing.F) {
	f.Add("ns", "Metric", "Count", 1.5, "Dim", "val", "prop", "pv")
	f.Add("KNHK", "a\"b", "Bytes/Second", -0.0, "", "", "_aws", "")
	f.Add("\xff", "M", "None", math.MaxFloat64, "D", "\x00", "p\n", "\u2028")
	f.Fuzz(func(t *testing.T, ns, name, unit string, v float64, dim, dimVal, prop, propVal string) {
		m := NewMetrics(ns)
		_ = m.SetDimensions(Dimension{dim, dimVal})
		m.Add(name, Unit(unit), v)
		m.Add(name+"2", Count, v)
		m.SetProperty(prop, propVal)
		var buf bytes.Buffer
		_ = m.Flush(&buf)
		if _, err := parseEMF(buf.Bytes()); err != nil {
			t.Fatalf("invalid EMF: %v\n%s", err, buf.String())
		}
	})
}

func BenchmarkAddFlush(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("%d-values", n), func(b *testing.B) {
			m := NewMetrics(Namespace)
			_ = m.SetDimensions(Dimension{DimFunction, "executor"})
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				for i := range n {
					m.Add(TaskDuration, Milliseconds, float64(i))
					if i%10 == 0 {
						m.Add(TasksExecuted, Count, 1)
					}
				}
				buf.Reset()
				if err := m.Flush(&buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestFlushToNilWriter(t *testing.T) {
	m := newTestMetrics()
	m.Add("A", Count, 1)
	if err := m.Flush(nil); err == nil {
		t.Fatal("nil writer accepted")
	}
}
