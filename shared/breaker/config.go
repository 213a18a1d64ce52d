package breaker

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// Defaults applied to zero fields of a Config.
const (
	DefaultFailureThreshold = 5                // consecutive failures that open a closed breaker
	DefaultOpenInterval     = 30 * time.Second // time an open breaker rejects before probing
	DefaultSuccessThreshold = 2                // consecutive probe successes that close a half-open breaker
)

// Config holds the parameters of a breaker. The zero value is usable: every
// zero field takes its default.
type Config struct {
	// FailureThreshold is N: a closed breaker opens after N consecutive
	// failures. Default DefaultFailureThreshold.
	FailureThreshold int
	// OpenInterval is how long an open breaker rejects calls before it lets a
	// probe through. Default DefaultOpenInterval.
	OpenInterval time.Duration
	// SuccessThreshold is M: a half-open breaker closes after M consecutive
	// successful probes (one at a time). Default DefaultSuccessThreshold.
	SuccessThreshold int
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
	// OnStateChange, if set, is called after every state change with the
	// breaker's key and the old and new states. Calls for one breaker come one
	// at a time, in order. It may read the breaker's State but must not make
	// calls through the breaker.
	OnStateChange func(key string, from, to State)
	// OnReject, if set, is called with the breaker's key every time the
	// Set's Transport rejects a request without sending it.
	OnReject func(key string)
	// IsFailure tells whether an error returned by a call counts as a
	// failure. Default: any non-nil error except context.Canceled.
	IsFailure func(error) bool
	// Threshold, if set, is asked for a key's failure threshold at each
	// failure; a result of 0 or less keeps FailureThreshold. It must not
	// block (an override read from memory).
	Threshold func(key string) int
}

func (c Config) withDefaults() Config {
	if c.FailureThreshold <= 0 {
		c.FailureThreshold = DefaultFailureThreshold
	}
	if c.OpenInterval <= 0 {
		c.OpenInterval = DefaultOpenInterval
	}
	if c.SuccessThreshold <= 0 {
		c.SuccessThreshold = DefaultSuccessThreshold
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.IsFailure == nil {
		c.IsFailure = defaultIsFailure
	}
	return c
}

// Environment variable suffixes read by ConfigFromEnv.
const (
	EnvFailureThreshold = "FAILURE_THRESHOLD" // integer >= 1
	EnvOpenInterval     = "OPEN_INTERVAL"     // Go duration, e.g. 30s
	EnvSuccessThreshold = "SUCCESS_THRESHOLD" // integer >= 1
)

// ConfigFromEnv reads a Config from the environment variables prefix +
// "_" + EnvFailureThreshold, EnvOpenInterval and EnvSuccessThreshold (for
// example BREAKER_FAILURE_THRESHOLD with prefix "BREAKER"). Unset or empty
// variables leave the default in place; malformed or non-positive values are
// an error.
func ConfigFromEnv(prefix string) (Config, error) { return ConfigFrom(prefix, os.Getenv) }

// ConfigFrom is ConfigFromEnv over any variable source.
func ConfigFrom(prefix string, getenv func(string) string) (Config, error) {
	lookup := func(name string) (string, bool) {
		v := getenv(name)
		return v, v != ""
	}
	name := func(suffix string) string {
		if prefix == "" {
			return suffix
		}
		return prefix + "_" + suffix
	}
	var c Config
	if v, ok := lookup(name(EnvFailureThreshold)); ok {
		n, err := positiveInt(v)
		if err != nil {
			return Config{}, fmt.Errorf("breaker config %s: %w", name(EnvFailureThreshold), err)
		}
		c.FailureThreshold = n
	}
	if v, ok := lookup(name(EnvSuccessThreshold)); ok {
		n, err := positiveInt(v)
		if err != nil {
			return Config{}, fmt.Errorf("breaker config %s: %w", name(EnvSuccessThreshold), err)
		}
		c.SuccessThreshold = n
	}
	if v, ok := lookup(name(EnvOpenInterval)); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return Config{}, fmt.Errorf("breaker config %s: %w", name(EnvOpenInterval), err)
		}
		if d <= 0 {
			return Config{}, fmt.Errorf("breaker config %s: %q is not positive", name(EnvOpenInterval), v)
		}
		c.OpenInterval = d
	}
	return c.withDefaults(), nil
}

func positiveInt(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("not an integer: %w", err)
	}
	if n < 1 {
		return 0, fmt.Errorf("%d is not positive", n)
	}
	return n, nil
}
