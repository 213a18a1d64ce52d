// Package secrets resolves the secrets a workflow declares under use.secrets
// from AWS Secrets Manager, caching values for a while per execution
// environment.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// DefaultPrefix is prepended to a secret's DSL name to form its Secrets
// Manager name: `acquirerApiKey` is read from `knhk/acquirerApiKey`.
const DefaultPrefix = "knhk/"

// Client is the part of the Secrets Manager API the resolver uses.
type Client interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

type entry struct {
	value any
	found bool
	at    time.Time
}

// Manager resolves secrets by name.
type Manager struct {
	client Client
	prefix string
	ttl    time.Duration
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]entry
}

// New returns a resolver reading `prefix+name`, caching each value (or its
// absence) for ttl.
func New(client Client, prefix string, ttl time.Duration) *Manager {
	return &Manager{client: client, prefix: prefix, ttl: ttl, now: time.Now, cache: map[string]entry{}}
}

// Resolve returns the values of the named secrets. A secret stored as a JSON
// object or array is given to expressions as that structure, anything else
// as a string. Secrets that do not exist are left out, so that a workflow
// using one faults with the DSL's authentication error naming it.
func (m *Manager) Resolve(ctx context.Context, names []string) (map[string]any, error) {
	out := make(map[string]any, len(names))
	for _, name := range names {
		v, ok, err := m.get(ctx, name)
		if err != nil {
			return nil, err
		}
		if ok {
			out[name] = v
		}
	}
	return out, nil
}

func (m *Manager) get(ctx context.Context, name string) (any, bool, error) {
	m.mu.Lock()
	e, hit := m.cache[name]
	m.mu.Unlock()
	if hit && m.now().Sub(e.at) < m.ttl {
		return e.value, e.found, nil
	}
	id := m.prefix + name
	res, err := m.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &id})
	var nf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		e = entry{at: m.now()}
	case err != nil:
		return nil, false, fmt.Errorf("read secret %s: %w", id, err)
	default:
		e = entry{value: decode(res), found: true, at: m.now()}
	}
	m.mu.Lock()
	m.cache[name] = e
	m.mu.Unlock()
	return e.value, e.found, nil
}

func decode(res *secretsmanager.GetSecretValueOutput) any {
	if res.SecretString == nil {
		return string(res.SecretBinary)
	}
	var v any
	if err := json.Unmarshal([]byte(*res.SecretString), &v); err == nil {
		switch v.(type) {
		case map[string]any, []any:
			return v
		}
	}
	return *res.SecretString
}
