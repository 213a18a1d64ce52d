package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/sla"
)

func TestParseWindow(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "6h": 6 * time.Hour, "1d12h": 36 * time.Hour, "5m": 5 * time.Minute} {
		if got, err := parseWindow(in); err != nil || got != want {
			t.Errorf("parseWindow(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "-1d", "30s", "x", "3dd"} {
		if _, err := parseWindow(bad); err == nil {
			t.Errorf("parseWindow(%q) accepted", bad)
		}
	}
}

func TestPrintReports(t *testing.T) {
	end := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	b := sla.NewBucket("orders", end.Add(-time.Minute))
	for i := range 100 {
		o := sla.Completed
		if i < 20 {
			o = sla.PlatformFaulted
		}
		_ = b.Observe(o, 2*time.Second)
	}
	r, err := sla.Compute("orders", sla.DefaultObjective(), []*sla.Bucket{b}, end, sla.WorkbookRules(), sla.Guard{MinEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printReports(&out, []sla.Report{r})
	for _, want := range []string{"orders", "availability 80.000%", "80 of 100 cases good", "LATENCY BREACH", "page-1h", "FIRING"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
