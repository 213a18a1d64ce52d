package secrets

import (
	"context"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/knhk/knhk/shared/localaws"
)

// counting counts GetSecretValue calls.
type counting struct {
	Client
	n atomic.Int32
}

func (c *counting) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	c.n.Add(1)
	return c.Client.GetSecretValue(ctx, in, opts...)
}

func TestResolveFromSecretsManager(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	for name, value := range map[string]string{
		"knhk/acquirerApiKey":   `{"token":"tok-1"}`,
		"knhk/plainPassword":    `hunter2`,
		"other/acquirerApiKey":  `{"token":"wrong-prefix"}`,
		"knhk/listOfEndpoints":  `["a","b"]`,
		"knhk/quotedJSONString": `"just text"`,
	} {
		if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)}); err != nil {
			t.Fatal(err)
		}
	}
	c := &counting{Client: sm}
	m := New(c, DefaultPrefix, time.Minute)
	names := []string{"acquirerApiKey", "plainPassword", "listOfEndpoints", "quotedJSONString", "missing"}
	got, err := m.Resolve(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"acquirerApiKey":   map[string]any{"token": "tok-1"},
		"plainPassword":    "hunter2",
		"listOfEndpoints":  []any{"a", "b"},
		"quotedJSONString": `"just text"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("resolved %#v, want %#v", got, want)
	}
	// Served from the cache, absences included.
	if _, err := m.Resolve(ctx, names); err != nil || c.n.Load() != int32(len(names)) {
		t.Fatalf("second resolve made %d calls in all, want %d", c.n.Load(), len(names))
	}
	// After the TTL the values are read again.
	m.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, err := m.Resolve(ctx, names[:1]); err != nil || c.n.Load() != int32(len(names))+1 {
		t.Fatalf("expired entry not re-read: %d calls", c.n.Load())
	}
}
