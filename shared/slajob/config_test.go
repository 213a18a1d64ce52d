package slajob

import (
	"testing"
	"time"
)

func TestConfigFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cfg, err := ConfigFromEnv(env(map[string]string{
		EnvObjectives:    `{"*":{"p99":"2s"},"billing/payments":{"availability":0.9995,"p50":"200ms"}}`,
		EnvWindowDivisor: "60", EnvMinEvents: "3",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Default.P99 != 2*time.Second || cfg.Default.Availability != 0.999 {
		t.Fatalf("default %+v", cfg.Default)
	}
	p := cfg.Objectives["billing/payments"]
	if p.Availability != 0.9995 || p.P50 != 200*time.Millisecond || p.P99 != 2*time.Second || p.Window != 30*24*time.Hour {
		t.Fatalf("payments %+v", p)
	}
	if cfg.Rules[0].Long != time.Minute || cfg.Rules[0].Factor != 14.4 || cfg.Guard.MinEvents != 3 {
		t.Fatalf("rules %+v guard %+v", cfg.Rules[0], cfg.Guard)
	}
	for name, bad := range map[string]map[string]string{
		"divisor":      {EnvWindowDivisor: "0.5"},
		"min events":   {EnvMinEvents: "-1"},
		"json":         {EnvObjectives: `{"x":`},
		"bare name":    {EnvObjectives: `{"payments":{"availability":0.9995}}`},
		"availability": {EnvObjectives: `{"ns/x":{"availability":1.5}}`},
		"duration":     {EnvObjectives: `{"ns/x":{"p50":"soon"}}`},
		"p99 below":    {EnvObjectives: `{"ns/x":{"p50":"2s","p99":"1s"}}`},
	} {
		if _, err := ConfigFromEnv(env(bad)); err == nil {
			t.Errorf("%s: accepted %v", name, bad)
		}
	}
}
