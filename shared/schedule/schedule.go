// Package schedule turns a workflow's start schedule (the DSL's
// schedule.every and schedule.cron) into EventBridge Scheduler expressions,
// and derives the idempotency key of a scheduled start from its scheduled
// time, so that a retried delivery of one tick opens the same case.
package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ScheduledTimeAttr is the EventBridge Scheduler context attribute that the
// scheduler replaces with the tick's scheduled time in a target's input.
const ScheduledTimeAttr = "<aws.scheduler.scheduled-time>"

// keyPrefix starts the idempotency key of every scheduled start.
const keyPrefix = "schedule/"

// KeyTemplate is the idempotency key a schedule's target input carries:
// EventBridge Scheduler fills in the scheduled time of each tick.
const KeyTemplate = keyPrefix + ScheduledTimeAttr

// Key is the idempotency key of the start scheduled at t (UTC, seconds), the
// same value KeyTemplate becomes when the scheduler fills it in.
func Key(t time.Time) string {
	return keyPrefix + t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// Rate renders an interval as rate(N unit), in the largest unit that
// divides it. EventBridge Scheduler counts in whole minutes, so an interval
// under a minute or not a whole number of minutes is an error.
func Rate(d time.Duration) (string, error) {
	if d < time.Minute || d%time.Minute != 0 {
		return "", fmt.Errorf("schedule.every %s: must be a whole number of minutes, at least one (EventBridge Scheduler's resolution)", d)
	}
	n, unit := int64(d/time.Minute), "minute"
	switch {
	case d%(24*time.Hour) == 0:
		n, unit = int64(d/(24*time.Hour)), "day"
	case d%time.Hour == 0:
		n, unit = int64(d/time.Hour), "hour"
	}
	if n != 1 {
		unit += "s"
	}
	return fmt.Sprintf("rate(%d %s)", n, unit), nil
}

// Cron renders a five-field cron expression (minute hour day-of-month month
// day-of-week, day-of-week 0-7 with 0 and 7 Sunday) as EventBridge's
// six-field cron(...), whose day-of-week counts 1-7 from Sunday and whose
// day-of-month or day-of-week must be "?". An expression restricting both
// days is an error: EventBridge cannot express it.
func Cron(expr string) (string, error) {
	f := strings.Fields(expr)
	if len(f) != 5 {
		return "", fmt.Errorf("schedule.cron %q: want 5 fields (minute hour day-of-month month day-of-week)", expr)
	}
	dom, dow := f[2], f[4]
	switch {
	case dow == "*" || dow == "?":
		dow = "?"
	case dom == "*" || dom == "?":
		dom = "?"
		d, err := weekdays(dow)
		if err != nil {
			return "", fmt.Errorf("schedule.cron %q: %w", expr, err)
		}
		dow = d
	default:
		return "", fmt.Errorf("schedule.cron %q: restricts both day-of-month and day-of-week, which EventBridge cannot schedule", expr)
	}
	return fmt.Sprintf("cron(%s %s %s %s %s *)", f[0], f[1], dom, f[3], dow), nil
}

// weekdays shifts the numeric days of a day-of-week field from 0-7 (Sunday
// 0 or 7) to EventBridge's 1-7 (Sunday 1); names and step sizes stay.
func weekdays(field string) (string, error) {
	parts := strings.Split(field, ",")
	for i, p := range parts {
		rng, step, hasStep := strings.Cut(p, "/")
		ends := strings.Split(rng, "-")
		if len(ends) > 2 {
			return "", fmt.Errorf("day-of-week %q: bad range", p)
		}
		for j, e := range ends {
			if e == "*" {
				continue
			}
			n, err := strconv.Atoi(e)
			if err != nil {
				if _, ok := dayNames[strings.ToUpper(e)]; ok {
					continue
				}
				return "", fmt.Errorf("day-of-week %q: %q is not a day", p, e)
			}
			if n < 0 || n > 7 {
				return "", fmt.Errorf("day-of-week %q: %d is outside 0-7", p, n)
			}
			ends[j] = strconv.Itoa(n%7 + 1)
		}
		parts[i] = strings.Join(ends, "-")
		if hasStep {
			parts[i] += "/" + step
		}
	}
	return strings.Join(parts, ","), nil
}

var dayNames = map[string]bool{"SUN": true, "MON": true, "TUE": true, "WED": true, "THU": true, "FRI": true, "SAT": true}
