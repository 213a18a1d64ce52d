package engine

import (
	"context"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/history"
)

// TestTimerFiresFromRecordedDueTime pins that a TimerFired stimulus is a
// claim: before the due time the history recorded for the timer it records
// nothing and asks for the timer again at the recorded due time; at or after
// it, the timer fires once.
func TestTimerFiresFromRecordedDueTime(t *testing.T) {
	waitWF := header + "do:\n  - pause:\n      wait: PT10M\n  - after:\n      set:\n        done: true\n"
	deadlineWF := header + "timeout:\n  after:\n    days: 5\ndo:\n  - hear:\n      listen:\n        to:\n          one:\n            with:\n              type: never\n"
	tests := []struct {
		name     string
		src      string
		timer    string
		due      time.Duration // from t0
		at       time.Duration // the stimulus's claimed time, from t0
		fires    bool
		terminal Status
	}{
		{"10-minute wait, forged time far in the past", waitWF, "/0", 10 * time.Minute, -24 * time.Hour, false, StatusRunning},
		{"10-minute wait, fired at once", waitWF, "/0", 10 * time.Minute, 0, false, StatusRunning},
		{"10-minute wait, one nanosecond early", waitWF, "/0", 10 * time.Minute, 10*time.Minute - 1, false, StatusRunning},
		{"10-minute wait, due", waitWF, "/0", 10 * time.Minute, 10 * time.Minute, true, StatusCompleted},
		{"10-minute wait, late", waitWF, "/0", 10 * time.Minute, time.Hour, true, StatusCompleted},
		{"5-day deadline, fired after a minute", deadlineWF, "~timeout", 5 * 24 * time.Hour, time.Minute, false, StatusRunning},
		{"5-day deadline, one day early", deadlineWF, "~timeout", 5 * 24 * time.Hour, 4 * 24 * time.Hour, false, StatusRunning},
		{"5-day deadline, due", deadlineWF, "~timeout", 5 * 24 * time.Hour, 5 * 24 * time.Hour, true, StatusFaulted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(load(t, tc.src))
			if err != nil {
				t.Fatal(err)
			}
			st := NewState()
			ctx := context.Background()
			dec, err := p.Decide(ctx, st, Start{CaseID: "c", Time: t0}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			want := t0.Add(tc.due)
			if tm := st.Timers[tc.timer]; tm == nil || !tm.Due.Equal(want) {
				t.Fatalf("timer %s recorded as %+v, want due %s (effects %+v)", tc.timer, tm, want, dec.Effects)
			}
			dec, err = p.Decide(ctx, st, TimerFired{ID: tc.timer, Time: t0.Add(tc.at)}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			fired := false
			for _, e := range dec.Events {
				if e.Type == history.TimerFired && e.Key == tc.timer {
					fired = true
				}
			}
			if fired != tc.fires || st.Timers[tc.timer].Fired != tc.fires {
				t.Fatalf("fired %v (events %v), want %v", fired, dec.Events, tc.fires)
			}
			if st.Status != tc.terminal {
				t.Fatalf("status %s, want %s", st.Status, tc.terminal)
			}
			if tc.fires {
				return
			}
			if len(dec.Events) != 0 {
				t.Fatalf("an early timer recorded %v", dec.Events)
			}
			if len(dec.Effects) != 1 || dec.Effects[0].Kind != EffectTimer || dec.Effects[0].ID != tc.timer || !dec.Effects[0].Due.Equal(want) {
				t.Fatalf("effects %+v, want the timer again at its recorded due time %s", dec.Effects, want)
			}
			// A second early claim changes nothing either; the due one fires.
			if dec, _ := p.Decide(ctx, st, TimerFired{ID: tc.timer, Time: t0.Add(tc.at)}, Options{}); len(dec.Events) != 0 {
				t.Fatalf("a repeated early timer recorded %v", dec.Events)
			}
			if dec, _ := p.Decide(ctx, st, TimerFired{ID: tc.timer, Time: want}, Options{}); len(dec.Events) == 0 || !st.Timers[tc.timer].Fired {
				t.Fatalf("the due timer did not fire: %v", dec.Events)
			}
		})
	}
}

// TestRetryDelayFiresFromRecordedDueTime: a retry's backoff timer is a
// recorded due time too; a claimed early time does not start the retry.
func TestRetryDelayFiresFromRecordedDueTime(t *testing.T) {
	src := header + `do:
  - charge:
      try:
        - call:
            call: http
            with:
              method: post
              endpoint: https://pay.example/charge
      catch:
        retry:
          delay:
            minutes: 10
          limit:
            attempt:
              count: 3
`
	p, err := Compile(load(t, src))
	if err != nil {
		t.Fatal(err)
	}
	st := NewState()
	ctx := context.Background()
	dec, _ := p.Decide(ctx, st, Start{CaseID: "c", Time: t0}, Options{})
	if len(dec.Effects) != 1 || dec.Effects[0].Kind != EffectHTTP {
		t.Fatalf("effects %+v, want one call", dec.Effects)
	}
	dec, _ = p.Decide(ctx, st, EffectResult{ID: dec.Effects[0].ID, Error: &history.Error{Type: ErrCommunication, Status: 503}, Time: t0}, Options{})
	var timer Effect
	for _, e := range dec.Effects {
		if e.Kind == EffectTimer {
			timer = e
		}
	}
	if timer.ID == "" || timer.Due.Before(t0.Add(10*time.Minute)) {
		t.Fatalf("effects %+v, want a retry timer due after 10 minutes", dec.Effects)
	}
	dec, _ = p.Decide(ctx, st, TimerFired{ID: timer.ID, Time: t0.Add(time.Second)}, Options{})
	if len(dec.Events) != 0 || len(dec.Effects) != 1 || dec.Effects[0].Kind != EffectTimer || !dec.Effects[0].Due.Equal(timer.Due) {
		t.Fatalf("early retry timer: events %v effects %+v, want only the timer again at %s", dec.Events, dec.Effects, timer.Due)
	}
	dec, _ = p.Decide(ctx, st, TimerFired{ID: timer.ID, Time: timer.Due}, Options{})
	if len(dec.Effects) != 1 || dec.Effects[0].Kind != EffectHTTP {
		t.Fatalf("due retry timer: effects %+v, want the call again", dec.Effects)
	}
}
