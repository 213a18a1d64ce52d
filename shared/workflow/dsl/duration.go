package dsl

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"time"
)

// errCalendar reports years or months, which have no fixed length.
var errCalendar = errors.New("unsupported: years and months have no fixed length; use weeks, days or smaller units")

// ParseISODuration parses an ISO 8601 duration as the DSL writes them
// (PnW, PnDTnHnMnS, with optional decimal fractions, e.g. PT1M30S, P1DT2H,
// PT0.5S). Years and months are rejected: they have no fixed length.
func ParseISODuration(s string) (time.Duration, error) {
	if len(s) < 2 || s[0] != 'P' {
		return 0, fmt.Errorf("invalid ISO 8601 duration %q", s)
	}
	// Units in the order they must appear; date part then time part.
	type unit struct {
		designator byte
		timePart   bool
		size       time.Duration // 0 for calendar units
	}
	units := []unit{
		{'Y', false, 0}, {'M', false, 0}, {'W', false, 7 * 24 * time.Hour}, {'D', false, 24 * time.Hour},
		{'H', true, time.Hour}, {'M', true, time.Minute}, {'S', true, time.Second},
	}
	total := new(big.Rat)
	next, inTime, sawAny, sawTimeUnit, calendar := 0, false, false, false, false
	i := 1
	for i < len(s) {
		if s[i] == 'T' {
			if inTime || i+1 >= len(s) || s[i+1] < '0' || s[i+1] > '9' {
				return 0, fmt.Errorf("invalid ISO 8601 duration %q", s)
			}
			inTime = true
			for next < len(units) && !units[next].timePart {
				next++
			}
			i++
			continue
		}
		// Number: digits with an optional fraction.
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return 0, fmt.Errorf("invalid ISO 8601 duration %q", s)
		}
		if i < len(s) && s[i] == '.' {
			i++
			fs := i
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				i++
			}
			if i == fs {
				return 0, fmt.Errorf("invalid ISO 8601 duration %q", s)
			}
		}
		if i >= len(s) {
			return 0, fmt.Errorf("invalid ISO 8601 duration %q: number without unit", s)
		}
		num, ok := new(big.Rat).SetString(s[start:i])
		if !ok {
			return 0, fmt.Errorf("invalid ISO 8601 duration %q", s)
		}
		d := s[i]
		i++
		for next < len(units) && (units[next].designator != d || units[next].timePart != inTime) {
			next++
		}
		if next == len(units) {
			return 0, fmt.Errorf("invalid ISO 8601 duration %q: unit %q out of place", s, d)
		}
		u := units[next]
		next++
		sawAny = true
		if inTime {
			sawTimeUnit = true
		}
		if u.size == 0 {
			calendar = true
			continue
		}
		total.Add(total, num.Mul(num, new(big.Rat).SetInt64(int64(u.size))))
	}
	if !sawAny || (inTime && !sawTimeUnit) {
		return 0, fmt.Errorf("invalid ISO 8601 duration %q", s)
	}
	if calendar {
		return 0, errCalendar
	}
	return ratDuration(total)
}

// ratDuration converts nanoseconds held as a rational to a Duration,
// truncating sub-nanosecond fractions and rejecting overflow.
func ratDuration(r *big.Rat) (time.Duration, error) {
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if !n.IsInt64() || n.Int64() > math.MaxInt64 {
		return 0, errors.New("duration too long")
	}
	return time.Duration(n.Int64()), nil
}

// inlineDuration adds up an inline duration object's fields.
func inlineDuration(days, hours, minutes, seconds, millis int64) (time.Duration, error) {
	total := new(big.Int)
	for _, p := range []struct {
		n    int64
		unit time.Duration
	}{{days, 24 * time.Hour}, {hours, time.Hour}, {minutes, time.Minute}, {seconds, time.Second}, {millis, time.Millisecond}} {
		if p.n < 0 {
			return 0, errors.New("duration fields must not be negative")
		}
		total.Add(total, new(big.Int).Mul(big.NewInt(p.n), big.NewInt(int64(p.unit))))
	}
	if !total.IsInt64() {
		return 0, errors.New("duration too long")
	}
	return time.Duration(total.Int64()), nil
}
