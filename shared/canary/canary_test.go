package canary

import (
	"testing"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/sla"
)

func TestJudge(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	p := Probe{CaseID: "c1", Submitted: t0}
	done := func(typ history.Type, seq int64, at time.Time) *receipt.Receipt {
		return &receipt.Receipt{Seq: seq, Type: typ, Started: at}
	}
	ended := receipt.Watermark{Seq: 3, Ended: 3}
	tests := []struct {
		name     string
		w        receipt.Watermark
		terminal *receipt.Receipt
		findings []receipt.Finding
		now      time.Time
		decided  bool
		ok       bool
		latency  time.Duration
		outcome  sla.Outcome // of a decided probe, as the canary's SLI counts it
	}{
		{"completed and verified in time", ended, done(history.CaseCompleted, 3, t0.Add(800*time.Millisecond)), nil, t0.Add(time.Minute), true, true, 800 * time.Millisecond, sla.Completed},
		{"not yet verified, still fresh", receipt.Watermark{Seq: 1}, nil, nil, t0.Add(time.Minute), false, false, 0, 0},
		{"ended but the verifier has not passed the terminal", receipt.Watermark{Seq: 2, Ended: 0}, nil, nil, t0.Add(2 * time.Minute), false, false, 0, 0},
		{"not verified past the freshness bound", receipt.Watermark{Seq: 2}, nil, nil, t0.Add(2*time.Minute + time.Second), true, false, 0, sla.TimedOut},
		{"never seen", receipt.Watermark{Seq: -1}, nil, nil, t0.Add(3 * time.Minute), true, false, 0, sla.TimedOut},
		{"faulted", ended, done(history.CaseFaulted, 3, t0.Add(time.Second)), nil, t0.Add(time.Minute), true, false, 0, sla.PlatformFaulted},
		{"completed too late", ended, done(history.CaseCompleted, 3, t0.Add(3*time.Minute)), nil, t0.Add(4 * time.Minute), true, false, 3 * time.Minute, sla.TimedOut},
		{"a finding spoils a completed case", ended, done(history.CaseCompleted, 3, t0.Add(time.Second)),
			[]receipt.Finding{{Kind: receipt.Malformed, CaseID: "c1", Seq: 2}}, t0.Add(time.Minute), true, false, 0, sla.PlatformFaulted},
		{"the terminal read is not the watermark's", ended, done(history.CaseCompleted, 2, t0.Add(time.Second)), nil, t0.Add(time.Minute), true, false, 0, sla.PlatformFaulted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(p, tc.w, tc.terminal, tc.findings, tc.now, DefaultFreshness)
			if v.Decided != tc.decided || v.OK != tc.ok || v.Latency != tc.latency {
				t.Fatalf("verdict %+v, want decided %v ok %v latency %s", v, tc.decided, tc.ok, tc.latency)
			}
			if v.Decided && !v.OK && v.Reason == "" {
				t.Fatal("a failed probe must say why")
			}
			if v.Decided && v.Outcome != tc.outcome {
				t.Fatalf("outcome %v, want %v (reason %q)", v.Outcome, tc.outcome, v.Reason)
			}
		})
	}
}

func TestParseFreshness(t *testing.T) {
	for in, want := range map[string]time.Duration{"": DefaultFreshness, "90s": 90 * time.Second, "5m": 5 * time.Minute} {
		if got, err := ParseFreshness(in); err != nil || got != want {
			t.Errorf("ParseFreshness(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"0s", "-1m", "two minutes"} {
		if _, err := ParseFreshness(in); err == nil {
			t.Errorf("ParseFreshness(%q) accepted", in)
		}
	}
}
