package lambdasvc

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

func scheduledEvents(obs []observation) []events.CloudWatchEvent {
	var out []events.CloudWatchEvent
	for _, o := range obs {
		var ev events.CloudWatchEvent
		if json.Unmarshal(o.Event, &ev) == nil && ev.Source == "aws.events" {
			out = append(out, ev)
		}
	}
	return out
}

func TestScheduleFiresWithEventBridgeShape(t *testing.T) {
	h := startHarness(t, func(s *Stack, c *Config) {
		s.Queues, s.Streams = nil, nil
		c.FireAtStart = true
		c.ScheduleSpeedup = 60 // rate(1 minute) fires every second
	})
	h.eventually(30*time.Second, "two scheduled events", func() bool { return len(scheduledEvents(h.observations())) >= 2 })
	evs := scheduledEvents(h.observations())
	sch := h.stack.Schedules[0]
	for _, ev := range evs {
		if ev.DetailType != "Scheduled Event" || ev.Version != "0" || ev.ID == "" || ev.Region != "us-east-1" || ev.AccountID != h.stack.Account ||
			len(ev.Resources) != 1 || ev.Resources[0] != sch.RuleARN || string(ev.Detail) != "{}" || ev.Time.IsZero() {
			t.Errorf("scheduled event %+v", ev)
		}
	}
	if evs[0].ID == evs[1].ID {
		t.Errorf("two firings share the id %s", evs[0].ID)
	}
	if !evs[1].Time.After(evs[0].Time) {
		t.Errorf("second firing time %v is not after the first %v", evs[1].Time, evs[0].Time)
	}
}

func TestInvokeDirectly(t *testing.T) {
	h := startHarness(t, func(s *Stack, c *Config) { s.Queues, s.Streams, s.Schedules = nil, nil, nil })
	res, err := h.svc.Invoke(context.Background(), "SvcTest-Fn", []byte(`{"hello":"world"}`))
	if err != nil || res.Failed() || string(res.Payload) != `{"ok":"true"}` {
		t.Errorf("Invoke = %s, %+v, %v", res.Payload, res, err)
	}
	res, err = h.svc.Invoke(context.Background(), "SvcTest-Fn", []byte(`{"Records":[{"eventSource":"aws:sqs","messageId":"m","body":"error"}]}`))
	if err != nil || !res.Failed() || res.FunctionError != "Unhandled" {
		t.Errorf("failing Invoke = %s, %+v, %v", res.Payload, res, err)
	}
	if _, err := h.svc.Invoke(context.Background(), "nope", nil); err == nil {
		t.Error("unknown function invoked")
	}
}

func TestParseSchedule(t *testing.T) {
	base := time.Date(2026, 11, 27, 10, 30, 15, 0, time.UTC) // a Friday
	tests := []struct {
		expr string
		want time.Time
	}{
		{"rate(1 minute)", base.Add(time.Minute)},
		{"rate(5 minutes)", base.Add(5 * time.Minute)},
		{"rate(2 hours)", base.Add(2 * time.Hour)},
		{"rate(1 day)", base.Add(24 * time.Hour)},
		{"cron(0 12 * * ? *)", time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)},
		{"cron(15 10 * * ? *)", time.Date(2026, 11, 28, 10, 15, 0, 0, time.UTC)},
		{"cron(0/15 * * * ? *)", time.Date(2026, 11, 27, 10, 45, 0, 0, time.UTC)},
		{"cron(0 18 ? * MON-FRI *)", time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC)},
		{"cron(0 8 ? * SAT,SUN *)", time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)},
		{"cron(0 0 1 * ? *)", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"cron(0 0 L * ? *)", time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)},
		{"cron(0 9 ? * 2#1 *)", time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)},
		{"cron(30 1 1 JAN ? 2027-2030)", time.Date(2027, 1, 1, 1, 30, 0, 0, time.UTC)},
		{"cron(0 0 29 2 ? *)", time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"cron(0 0 1 1 ? 2020)", time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			s, err := ParseSchedule(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Next(base); !got.Equal(tc.want) {
				t.Errorf("Next = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseScheduleRejects(t *testing.T) {
	for _, expr := range []string{
		"", "every 5 minutes", "rate(0 minutes)", "rate(5 minute)", "rate(1 minutes)", "rate(5 weeks)", "rate(x minutes)",
		"cron(* * * * *)", "cron(0 12 * * * *)", "cron(0 12 ? * ? *)", "cron(60 * * * ? *)", "cron(0 24 * * ? *)",
		"cron(0 0 32 * ? *)", "cron(0 0 ? 13 MON *)", "cron(0 0 ? * 8 *)", "cron(0 0 LW * ? *)", "cron(0 0 ? * 2#6 *)",
		"cron(*/0 * * * ? *)", "cron(5-1 * * * ? *)",
	} {
		if _, err := ParseSchedule(expr); err == nil {
			t.Errorf("%q accepted", expr)
		}
	}
}

// FuzzParseSchedule checks that no expression panics and that Next always
// moves forward.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"rate(5 minutes)", "cron(0/15 * * * ? *)", "cron(0 9 ? * 2#1 *)", "cron(0 0 L * ? *)", "cron(1-5/2 0 1,15 JAN-MAR ? 2030)"} {
		f.Add(s)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := ParseSchedule(expr)
		if err != nil {
			return
		}
		if n := s.Next(base); !n.IsZero() && !n.After(base) {
			t.Fatalf("%q: Next(%v) = %v", expr, base, n)
		}
	})
}
