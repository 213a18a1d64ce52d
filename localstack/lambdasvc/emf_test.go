package lambdasvc

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

func TestEMFLinesBecomeMetrics(t *testing.T) {
	h := startHarness(t, onlyQueues)
	h.send(h.physicalID("WorkQueue"), "emf")
	cw := NewCloudWatch(h.cfg)
	dims := []cwtypes.Dimension{{Name: aws.String("Service"), Value: aws.String("fn")}}
	var stats *cloudwatch.GetMetricStatisticsOutput
	h.eventually(30*time.Second, "Latency statistics", func() bool {
		var err error
		stats, err = cw.GetMetricStatistics(context.Background(), &cloudwatch.GetMetricStatisticsInput{
			Namespace: aws.String("KnhkTest"), MetricName: aws.String("Latency"), Dimensions: dims,
			StartTime: aws.Time(time.Now().Add(-time.Hour)), EndTime: aws.Time(time.Now().Add(time.Hour)), Period: aws.Int32(7200),
			Statistics: []cwtypes.Statistic{cwtypes.StatisticSampleCount, cwtypes.StatisticSum, cwtypes.StatisticMaximum},
		})
		return err == nil && len(stats.Datapoints) > 0
	})
	dp := stats.Datapoints[0]
	if aws.ToFloat64(dp.SampleCount) != 2 || aws.ToFloat64(dp.Sum) != 19.5 || aws.ToFloat64(dp.Maximum) != 12.5 {
		t.Errorf("Latency datapoint: count %v sum %v max %v, want 2, 19.5, 12.5", aws.ToFloat64(dp.SampleCount), aws.ToFloat64(dp.Sum), aws.ToFloat64(dp.Maximum))
	}
	out, err := cw.ListMetrics(context.Background(), &cloudwatch.ListMetricsInput{Namespace: aws.String("KnhkTest")})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range out.Metrics {
		names = append(names, aws.ToString(m.MetricName))
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"Handled", "Latency"}) {
		t.Errorf("metrics %v", names)
	}
}

func TestParseEMF(t *testing.T) {
	ts := time.UnixMilli(1700000000000).UTC()
	tests := []struct {
		name    string
		line    string
		isEMF   bool
		wantErr bool
		want    []Metric
	}{
		{name: "plain text", line: "START RequestId: x"},
		{name: "json without _aws", line: `{"level":"info","msg":"hi"}`},
		{name: "two dimension sets", isEMF: true,
			line: `{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["A"],["A","B"]],"Metrics":[{"Name":"M","Unit":"Count"}]}]},"A":"a","B":2,"M":3}`,
			want: []Metric{
				{Namespace: "N", Name: "M", Unit: "Count", Dimensions: map[string]string{"A": "a"}, Values: []float64{3}, Timestamp: ts, StorageResolution: 60},
				{Namespace: "N", Name: "M", Unit: "Count", Dimensions: map[string]string{"A": "a", "B": "2"}, Values: []float64{3}, Timestamp: ts, StorageResolution: 60},
			}},
		{name: "value list, high resolution, no dimensions", isEMF: true,
			line: `{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"N","Metrics":[{"Name":"L","StorageResolution":1}]}]},"L":[1,2,2]}`,
			want: []Metric{{Namespace: "N", Name: "L", Unit: "None", Dimensions: map[string]string{}, Values: []float64{1, 2, 2}, Timestamp: ts, StorageResolution: 1}}},
		{name: "missing value", isEMF: true, wantErr: true,
			line: `{"_aws":{"CloudWatchMetrics":[{"Namespace":"N","Metrics":[{"Name":"M"}]}]}}`},
		{name: "missing dimension", isEMF: true, wantErr: true,
			line: `{"_aws":{"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["D"]],"Metrics":[{"Name":"M"}]}]},"M":1}`},
		{name: "string value", isEMF: true, wantErr: true,
			line: `{"_aws":{"CloudWatchMetrics":[{"Namespace":"N","Metrics":[{"Name":"M"}]}]},"M":"x"}`},
		{name: "no namespace", isEMF: true, wantErr: true,
			line: `{"_aws":{"CloudWatchMetrics":[{"Metrics":[{"Name":"M"}]}]},"M":1}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := ParseEMF([]byte(tc.line))
			if ok != tc.isEMF || (err != nil) != tc.wantErr {
				t.Fatalf("ok=%v err=%v, want ok=%v err=%v", ok, err, tc.isEMF, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d metrics, want %d: %+v", len(got), len(tc.want), got)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.Namespace != w.Namespace || g.Name != w.Name || g.Unit != w.Unit || !slices.Equal(g.Values, w.Values) ||
					!g.Timestamp.Equal(w.Timestamp) || g.StorageResolution != w.StorageResolution || len(g.Dimensions) != len(w.Dimensions) {
					t.Errorf("metric %d = %+v, want %+v", i, g, w)
				}
				for k, v := range w.Dimensions {
					if g.Dimensions[k] != v {
						t.Errorf("dimension %s = %q, want %q", k, g.Dimensions[k], v)
					}
				}
			}
		})
	}
}

func TestToDatumFoldsRepeatedValues(t *testing.T) {
	d := toDatum(Metric{Name: "L", Unit: "Milliseconds", Values: []float64{5, 1, 5, 5}, Dimensions: map[string]string{"B": "2", "A": "1"}, Timestamp: time.Unix(0, 0), StorageResolution: 60})
	if !slices.Equal(d.Values, []float64{5, 1}) || !slices.Equal(d.Counts, []float64{3, 1}) {
		t.Errorf("values %v counts %v", d.Values, d.Counts)
	}
	if aws.ToString(d.Dimensions[0].Name) != "A" || aws.ToString(d.Dimensions[1].Name) != "B" {
		t.Errorf("dimensions not sorted: %v", d.Dimensions)
	}
}

func FuzzParseEMF(f *testing.F) {
	f.Add([]byte(`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["A"]],"Metrics":[{"Name":"M"}]}]},"A":"a","M":[1,2]}`))
	f.Add([]byte(`{"_aws":{}}`))
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, line []byte) {
		ms, ok, err := ParseEMF(line)
		if !ok && (err != nil || len(ms) > 0) {
			t.Fatalf("not EMF but err=%v metrics=%d", err, len(ms))
		}
		for _, m := range ms {
			if m.Namespace == "" || m.Name == "" || len(m.Values) == 0 {
				t.Fatalf("incomplete metric %+v", m)
			}
			_ = toDatum(m)
		}
	})
}

func TestLineWriterKeepsLinesWhole(t *testing.T) {
	var got []string
	sink := &lineSink{w: writerFunc(func(p []byte) (int, error) { got = append(got, string(p)); return len(p), nil })}
	w := &lineWriter{sink: sink}
	for _, chunk := range []string{"ab", "c\nde", "f\n\ng", "h\n"} {
		_, _ = w.Write([]byte(chunk))
	}
	if !slices.Equal(got, []string{"abc\n", "def\n", "\n", "gh\n"}) {
		t.Errorf("lines %q", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
