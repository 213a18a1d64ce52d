package lambdasvc

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Timing computes when a schedule fires next.
type Timing interface {
	// Next returns the first firing strictly after t.
	Next(t time.Time) time.Time
}

// ParseSchedule parses an EventBridge schedule expression:
// rate(N minute|minutes|hour|hours|day|days) or a 6-field
// cron(Minutes Hours Day-of-month Month Day-of-week Year), in UTC.
func ParseSchedule(expr string) (Timing, error) {
	expr = strings.TrimSpace(expr)
	switch {
	case strings.HasPrefix(expr, "rate(") && strings.HasSuffix(expr, ")"):
		return parseRate(expr[len("rate(") : len(expr)-1])
	case strings.HasPrefix(expr, "cron(") && strings.HasSuffix(expr, ")"):
		return parseCron(expr[len("cron(") : len(expr)-1])
	}
	return nil, fmt.Errorf("schedule %q: want rate(...) or cron(...)", expr)
}

// rate fires at a fixed interval.
type rate time.Duration

// Next implements Timing.
func (r rate) Next(t time.Time) time.Time { return t.Add(time.Duration(r)) }

func parseRate(s string) (Timing, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return nil, fmt.Errorf("rate(%s): want a value and a unit", s)
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("rate(%s): value must be a positive integer", s)
	}
	units := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}
	unit := f[1]
	if n != 1 {
		if !strings.HasSuffix(unit, "s") {
			return nil, fmt.Errorf("rate(%s): use the plural unit for a value above 1", s)
		}
		unit = strings.TrimSuffix(unit, "s")
	}
	d, ok := units[unit]
	if !ok {
		return nil, fmt.Errorf("rate(%s): unit must be minute(s), hour(s) or day(s)", s)
	}
	return rate(time.Duration(n) * d), nil
}

// cron is a parsed AWS cron expression. Sets are bitmaps over the field's
// values.
type cron struct {
	minutes, hours, doms, months, dows uint64
	years                              map[int]bool // nil: every year
	lastDOM                            bool         // "L" in day-of-month
	nthDOW                             [2]int       // day-of-week#n (weekday 0-6, n); n==0: unused
	anyDOM, anyDOW                     bool
}

var monthNames = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}
var dayNames = map[string]int{"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}

func parseCron(s string) (Timing, error) {
	f := strings.Fields(s)
	if len(f) != 6 {
		return nil, fmt.Errorf("cron(%s): want 6 fields (minutes hours day-of-month month day-of-week year)", s)
	}
	c := &cron{}
	var err error
	if c.minutes, err = parseField(f[0], 0, 59, nil); err != nil {
		return nil, fmt.Errorf("cron(%s) minutes: %w", s, err)
	}
	if c.hours, err = parseField(f[1], 0, 23, nil); err != nil {
		return nil, fmt.Errorf("cron(%s) hours: %w", s, err)
	}
	if (f[2] == "?") == (f[4] == "?") {
		return nil, fmt.Errorf("cron(%s): exactly one of day-of-month and day-of-week must be ?", s)
	}
	switch {
	case f[2] == "?":
		c.anyDOM = true
	case f[2] == "L":
		c.lastDOM = true
	default:
		if strings.ContainsAny(f[2], "LW") {
			return nil, fmt.Errorf("cron(%s) day-of-month: only a plain L is supported locally", s)
		}
		if c.doms, err = parseField(f[2], 1, 31, nil); err != nil {
			return nil, fmt.Errorf("cron(%s) day-of-month: %w", s, err)
		}
	}
	if c.months, err = parseField(f[3], 1, 12, monthNames); err != nil {
		return nil, fmt.Errorf("cron(%s) month: %w", s, err)
	}
	switch {
	case f[4] == "?":
		c.anyDOW = true
	case strings.Contains(f[4], "#"):
		d, n, _ := strings.Cut(f[4], "#")
		day, err1 := fieldValue(d, dayNames)
		nth, err2 := strconv.Atoi(n)
		if err1 != nil || err2 != nil || day < 1 || day > 7 || nth < 1 || nth > 5 {
			return nil, fmt.Errorf("cron(%s) day-of-week: bad %q", s, f[4])
		}
		c.nthDOW = [2]int{day - 1, nth}
	default:
		if strings.Contains(f[4], "L") && f[4] != "L" {
			return nil, fmt.Errorf("cron(%s) day-of-week: nL is not supported locally", s)
		}
		field := f[4]
		if field == "L" {
			field = "7"
		}
		if c.dows, err = parseField(field, 1, 7, dayNames); err != nil {
			return nil, fmt.Errorf("cron(%s) day-of-week: %w", s, err)
		}
	}
	if f[5] != "*" {
		c.years = map[int]bool{}
		for _, part := range strings.Split(f[5], ",") {
			lo, hi, step, err := parseRange(part, 1970, 2199, nil)
			if err != nil {
				return nil, fmt.Errorf("cron(%s) year: %w", s, err)
			}
			for y := lo; y <= hi; y += step {
				c.years[y] = true
			}
		}
	}
	return c, nil
}

// parseField parses a comma list of *, n, a-b, with optional /step, into a
// bitmap of values (all below 64).
func parseField(s string, lo, hi int, names map[string]int) (uint64, error) {
	var set uint64
	for _, part := range strings.Split(s, ",") {
		a, b, step, err := parseRange(part, lo, hi, names)
		if err != nil {
			return 0, err
		}
		for v := a; v <= b; v += step {
			set |= 1 << uint(v)
		}
	}
	return set, nil
}

func parseRange(part string, lo, hi int, names map[string]int) (int, int, int, error) {
	rng, stepS, hasStep := strings.Cut(part, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepS)
		if err != nil || n <= 0 {
			return 0, 0, 0, fmt.Errorf("bad step %q", part)
		}
		step = n
	}
	a, b := lo, hi
	switch {
	case rng == "*":
	case strings.Contains(rng, "-"):
		x, y, _ := strings.Cut(rng, "-")
		var err error
		if a, err = fieldValue(x, names); err != nil {
			return 0, 0, 0, err
		}
		if b, err = fieldValue(y, names); err != nil {
			return 0, 0, 0, err
		}
	default:
		v, err := fieldValue(rng, names)
		if err != nil {
			return 0, 0, 0, err
		}
		a, b = v, v
		if hasStep {
			b = hi
		}
	}
	if a < lo || b > hi || a > b {
		return 0, 0, 0, fmt.Errorf("%q out of range %d-%d", part, lo, hi)
	}
	return a, b, step, nil
}

func fieldValue(s string, names map[string]int) (int, error) {
	if v, ok := names[strings.ToUpper(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("bad value %q", s)
	}
	return v, nil
}

func has(set uint64, v int) bool { return set&(1<<uint(v)) != 0 }

func (c *cron) dayMatches(d time.Time) bool {
	if c.years != nil && !c.years[d.Year()] {
		return false
	}
	if !has(c.months, int(d.Month())) {
		return false
	}
	switch {
	case c.lastDOM:
		return d.AddDate(0, 0, 1).Day() == 1
	case !c.anyDOM:
		return has(c.doms, d.Day())
	case c.nthDOW[1] > 0:
		return int(d.Weekday()) == c.nthDOW[0] && (d.Day()-1)/7+1 == c.nthDOW[1]
	default:
		return has(c.dows, int(d.Weekday())+1)
	}
}

// Next returns the first matching minute after t (UTC), or the zero time
// when none comes within the supported years.
func (c *cron) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	for i := 0; i < 366*230; i++ {
		if day.Year() > 2199 {
			break
		}
		if c.dayMatches(day) {
			for h := 0; h < 24; h++ {
				if !has(c.hours, h) {
					continue
				}
				for m := 0; m < 60; m++ {
					if !has(c.minutes, m) {
						continue
					}
					at := day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
					if !at.Before(t) {
						return at
					}
				}
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return time.Time{}
}
