package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestRate(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{time.Minute, "rate(1 minute)"},
		{5 * time.Minute, "rate(5 minutes)"},
		{90 * time.Minute, "rate(90 minutes)"},
		{time.Hour, "rate(1 hour)"},
		{3 * time.Hour, "rate(3 hours)"},
		{48 * time.Hour, "rate(2 days)"},
	} {
		got, err := Rate(tc.d)
		if err != nil || got != tc.want {
			t.Errorf("Rate(%s) = %q, %v; want %q", tc.d, got, err, tc.want)
		}
	}
	for _, d := range []time.Duration{0, 30 * time.Second, 90 * time.Second, -time.Minute} {
		if got, err := Rate(d); err == nil {
			t.Errorf("Rate(%s) = %q, want an error", d, got)
		}
	}
}

func TestCron(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0 9 * * *", "cron(0 9 * * ? *)"},
		{"*/15 * * * *", "cron(*/15 * * * ? *)"},
		{"0 9 * * 1-5", "cron(0 9 ? * 2-6 *)"},
		{"0 0 * * 0", "cron(0 0 ? * 1 *)"},
		{"0 0 * * 7", "cron(0 0 ? * 1 *)"},
		{"0 0 * * 1,3,5", "cron(0 0 ? * 2,4,6 *)"},
		{"0 0 * * MON-FRI", "cron(0 0 ? * MON-FRI *)"},
		{"0 0 * * */2", "cron(0 0 ? * */2 *)"},
		{"30 6 1 * *", "cron(30 6 1 * ? *)"},
	} {
		got, err := Cron(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Cron(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "0 9 * *", "0 9 * * * *", "0 9 1 * 1", "0 0 * * 8", "0 0 * * FUNDAY", "0 0 * * 1-2-3"} {
		if got, err := Cron(in); err == nil {
			t.Errorf("Cron(%q) = %q, want an error", in, got)
		}
	}
}

func TestKeyMatchesTemplate(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.FixedZone("x", 3600))
	// The scheduler fills in the scheduled time as RFC 3339 UTC.
	filled := strings.Replace(KeyTemplate, ScheduledTimeAttr, at.UTC().Format(time.RFC3339), 1)
	if got := Key(at); got != filled {
		t.Fatalf("Key = %q, template filled = %q", got, filled)
	}
	if Key(at) != Key(at.Add(400*time.Millisecond)) {
		t.Fatal("a tick's key depends on sub-second time")
	}
	if Key(at) == Key(at.Add(time.Minute)) {
		t.Fatal("two ticks share a key")
	}
}
