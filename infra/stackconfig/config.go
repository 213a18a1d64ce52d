// Package stackconfig reads the CDK context that shapes the KNHK stack:
// environment, redrive limit, visibility timeout and checkpoint key alias.
package stackconfig

import (
	"fmt"
	"strconv"
	"strings"
)

// Context keys read by the app (pass them with `cdk synth -c key=value`).
const (
	CtxEnv                = "env"
	CtxMaxReceiveCount    = "maxReceiveCount"
	CtxVisibilityTimeout  = "visibilityTimeout"
	CtxCheckpointKeyAlias = "checkpointKeyAlias"
)

// Env names a deployment environment.
type Env string

// Deployment environments. Local and dev stacks are destroyable; prod
// retains its data and keys.
const (
	EnvProd  Env = "prod"
	EnvDev   Env = "dev"
	EnvLocal Env = "local"
)

// Config is everything the stack's shape depends on.
type Config struct {
	Env                   Env
	MaxReceiveCount       int
	VisibilityTimeoutSecs int
	CheckpointKeyAlias    string
}

// Destroyable reports whether the stack's data may be deleted with it.
func (c Config) Destroyable() bool { return c.Env == EnvLocal || c.Env == EnvDev }

// DefaultConfig is the production configuration.
func DefaultConfig() Config {
	return Config{
		Env:                   EnvProd,
		MaxReceiveCount:       5,
		VisibilityTimeoutSecs: 360,
		CheckpointKeyAlias:    "alias/knhk/checkpoint",
	}
}

// FromContext builds the configuration from CDK context values. A
// lookup returns (value, true) when the key is set; values may be strings
// (from the command line) or numbers (from cdk.json).
func FromContext(lookup func(key string) (any, bool)) (Config, error) {
	c := DefaultConfig()
	if v, ok := lookup(CtxEnv); ok {
		switch e := Env(strings.TrimSpace(fmt.Sprint(v))); e {
		case EnvProd, EnvDev, EnvLocal:
			c.Env = e
		default:
			return Config{}, fmt.Errorf("context %s=%q: want prod, dev or local", CtxEnv, e)
		}
	}
	var err error
	if c.MaxReceiveCount, err = intContext(lookup, CtxMaxReceiveCount, c.MaxReceiveCount, 1, 1000); err != nil {
		return Config{}, err
	}
	// SQS accepts 0..43200 seconds (12 hours).
	if c.VisibilityTimeoutSecs, err = intContext(lookup, CtxVisibilityTimeout, c.VisibilityTimeoutSecs, 0, 43200); err != nil {
		return Config{}, err
	}
	if v, ok := lookup(CtxCheckpointKeyAlias); ok {
		a := strings.TrimSpace(fmt.Sprint(v))
		if !validAlias(a) {
			return Config{}, fmt.Errorf("context %s=%q: want alias/NAME with letters, digits, /_- (not alias/aws/)", CtxCheckpointKeyAlias, a)
		}
		c.CheckpointKeyAlias = a
	}
	return c, nil
}

func intContext(lookup func(string) (any, bool), key string, def, lo, hi int) (int, error) {
	v, ok := lookup(key)
	if !ok {
		return def, nil
	}
	var n int
	switch x := v.(type) {
	case float64:
		if x != float64(int(x)) {
			return 0, fmt.Errorf("context %s=%v: want an integer", key, x)
		}
		n = int(x)
	case int:
		n = x
	default:
		p, err := strconv.Atoi(strings.TrimSpace(fmt.Sprint(v)))
		if err != nil {
			return 0, fmt.Errorf("context %s=%v: want an integer: %w", key, v, err)
		}
		n = p
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("context %s=%d: want %d..%d", key, n, lo, hi)
	}
	return n, nil
}

// validAlias checks a KMS alias name as KMS does: "alias/" followed by 1..250
// of [a-zA-Z0-9/_-], and not in the reserved "alias/aws/" space.
func validAlias(a string) bool {
	name, ok := strings.CutPrefix(a, "alias/")
	if !ok || name == "" || len(a) > 256 || strings.HasPrefix(name, "aws/") {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '/', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}
