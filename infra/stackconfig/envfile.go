package stackconfig

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// CtxEnvFile names a JSON object of context values, one deployment
// environment's settings (for example environments/prod.json, relative to
// the CDK app's folder). A key given with -c overrides the file's value.
const CtxEnvFile = "envFile"

// WithEnvFile returns lookup extended with the values of the environment
// file that lookup's envFile names; lookup itself when it names none.
func WithEnvFile(lookup func(string) (any, bool)) (func(string) (any, bool), error) {
	v, ok := lookup(CtxEnvFile)
	if !ok {
		return lookup, nil
	}
	path := strings.TrimSpace(fmt.Sprint(v))
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("context %s: %w", CtxEnvFile, err)
	}
	var file map[string]any
	if err := json.Unmarshal(b, &file); err != nil {
		return nil, fmt.Errorf("context %s=%s: want a JSON object of context keys: %w", CtxEnvFile, path, err)
	}
	if _, nested := file[CtxEnvFile]; nested {
		return nil, fmt.Errorf("context %s=%s: an environment file cannot name another", CtxEnvFile, path)
	}
	return func(key string) (any, bool) {
		if v, ok := lookup(key); ok {
			return v, true
		}
		v, ok := file[key]
		return v, ok
	}, nil
}
