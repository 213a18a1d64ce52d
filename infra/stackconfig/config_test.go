package stackconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func lookupOf(m map[string]any) func(string) (any, bool) {
	return func(k string) (any, bool) { v, ok := m[k]; return v, ok }
}

// with returns the default configuration changed by f.
func with(f func(*Config)) Config {
	c := DefaultConfig()
	f(&c)
	return c
}

func TestFromContext(t *testing.T) {
	tests := []struct {
		name    string
		ctx     map[string]any
		want    Config
		wantErr string
	}{
		{name: "defaults", ctx: nil, want: DefaultConfig()},
		{name: "local from command line", ctx: map[string]any{"env": "local", "maxReceiveCount": "3", "executorTimeout": "20", "visibilityTimeout": "150"},
			want: with(func(c *Config) {
				c.Env, c.NamePrefix, c.LogRetentionDays, c.ArchiveLockMode = EnvLocal, "knhk-local", 7, LockGovernance
				c.MaxReceiveCount, c.Executor.TimeoutSecs, c.VisibilityTimeoutSecs = 3, 20, 150
			})},
		{name: "numbers from cdk.json", ctx: map[string]any{"env": "dev", "maxReceiveCount": float64(7), "visibilityTimeout": float64(720)},
			want: with(func(c *Config) {
				c.Env, c.NamePrefix, c.LogRetentionDays, c.ArchiveLockMode = EnvDev, "knhk-dev", 7, LockGovernance
				c.MaxReceiveCount, c.VisibilityTimeoutSecs = 7, 720
			})},
		{name: "archive retention", ctx: map[string]any{"archiveRetentionDays": "3653", "archiveLockMode": "governance", "receiptRetentionDays": 7,
			"archiveEveryMinutes": "5", "archiverTimeout": "600"},
			want: with(func(c *Config) {
				c.ArchiveRetentionDays, c.ArchiveLockMode, c.ReceiptRetentionDays, c.ArchiveEveryMinutes, c.Archiver.TimeoutSecs = 3653, LockGovernance, 7, 5, 600
			})},
		{name: "dev stack in compliance mode", ctx: map[string]any{"env": "dev", "archiveLockMode": "COMPLIANCE"},
			want: with(func(c *Config) {
				c.Env, c.NamePrefix, c.LogRetentionDays, c.ArchiveLockMode = EnvDev, "knhk-dev", 7, LockCompliance
			})},
		{name: "unknown lock mode", ctx: map[string]any{"archiveLockMode": "legal"}, wantErr: "want compliance or governance"},
		{name: "receipt retention zero", ctx: map[string]any{"receiptRetentionDays": "0"}, wantErr: "want 1..3653"},
		{name: "visibility derived from executor timeout", ctx: map[string]any{"executorTimeout": "90"},
			want: with(func(c *Config) { c.Executor.TimeoutSecs, c.VisibilityTimeoutSecs = 90, 540 })},
		{name: "tracing settings", ctx: map[string]any{"tracing": "on", "otelEndpoint": "https://collector.example:4318", "otelSampler": "parentbased_traceidratio",
			"otelSamplerArg": "0.1", "otelCollectorLayerArn": "arn:aws:lambda:eu-west-1:123456789012:layer:collector:2"},
			want: with(func(c *Config) {
				c.OTelEndpoint, c.OTelSampler, c.OTelSamplerArg = "https://collector.example:4318", "parentbased_traceidratio", "0.1"
				c.OTelCollectorLayerARN = "arn:aws:lambda:eu-west-1:123456789012:layer:collector:2"
			})},
		{name: "tracing off", ctx: map[string]any{"tracing": "off"}, want: with(func(c *Config) { c.Tracing = false })},
		{name: "bad tracing", ctx: map[string]any{"tracing": "sometimes"}, wantErr: "want on or off"},
		{name: "bad endpoint", ctx: map[string]any{"otelEndpoint": "localhost:4318"}, wantErr: "want an http(s) URL"},
		{name: "bad sampler", ctx: map[string]any{"otelSampler": "xray"}, wantErr: "want one of"},
		{name: "bad sampler arg", ctx: map[string]any{"otelSamplerArg": "2"}, wantErr: "want a ratio"},
		{name: "bad layer", ctx: map[string]any{"otelCollectorLayerArn": "arn:aws:lambda:eu-west-1:1:function:x"}, wantErr: "want a layer version ARN"},
		{name: "tenants and producers from the command line", ctx: map[string]any{"openTenants": " acme,*", "producerRoles": "arn:aws:iam::123456789012:role/ingest, arn:aws:iam::123456789012:role/path/ops"},
			want: with(func(c *Config) {
				c.OpenTenants = []string{"acme", "*"}
				c.ProducerRoles = []string{"arn:aws:iam::123456789012:role/ingest", "arn:aws:iam::123456789012:role/path/ops"}
			})},
		{name: "no open tenant, roles from cdk.json", ctx: map[string]any{"openTenants": "", "producerRoles": []any{"arn:aws:iam::123456789012:role/ingest"}},
			want: with(func(c *Config) {
				c.OpenTenants, c.ProducerRoles = nil, []string{"arn:aws:iam::123456789012:role/ingest"}
			})},
		{name: "custom alias", ctx: map[string]any{"checkpointKeyAlias": "alias/acme/knhk-ckpt"},
			want: with(func(c *Config) { c.CheckpointKeyAlias = "alias/acme/knhk-ckpt" })},
		{name: "functions and mappings", ctx: map[string]any{
			"functionsDir": "/opt/knhk/lambda", "namePrefix": "acme-knhk", "executorMemory": "1024", "executorBatchSize": "50",
			"executorBatchWindow": "2", "executorMaxConcurrency": "100", "executorDeadlineMargin": "8", "verifierMemory": 512,
			"verifierTimeout": "30", "verifierBatchSize": "500", "verifierBatchWindow": "3", "verifierMaxRetryAttempts": "-1", "verifierMaxRecordAge": "-1",
			"verifierParallelizationFactor": "2", "logRetentionDays": "90", "logLevel": "DEBUG", "runbookBaseUrl": "https://runbooks.example/knhk",
		}, want: with(func(c *Config) {
			c.FunctionsDir, c.NamePrefix = "/opt/knhk/lambda", "acme-knhk"
			c.Executor = FunctionConfig{MemoryMB: 1024, TimeoutSecs: 60, BatchSize: 50, BatchWindowSecs: 2}
			c.ExecutorMaxConcurrency, c.ExecutorDeadlineMarginSecs = 100, 8
			c.Verifier = FunctionConfig{MemoryMB: 512, TimeoutSecs: 30, BatchSize: 500, BatchWindowSecs: 3}
			c.VerifierMaxRetryAttempts, c.VerifierMaxRecordAgeSecs, c.VerifierParallelization = -1, -1, 2
			c.LogRetentionDays, c.LogLevel, c.RunbookBaseURL = 90, "debug", "https://runbooks.example/knhk/"
		})},
		{name: "visibility below six timeouts", ctx: map[string]any{"visibilityTimeout": "359"}, wantErr: "must be at least 6 x executorTimeout (60 s) = 360 s"},
		{name: "visibility below six custom timeouts", ctx: map[string]any{"executorTimeout": "120", "visibilityTimeout": "360"}, wantErr: "= 720 s"},
		{name: "max concurrency below SQS minimum", ctx: map[string]any{"executorMaxConcurrency": "1"}, wantErr: "want 2..1000"},
		{name: "max concurrency above SQS maximum", ctx: map[string]any{"executorMaxConcurrency": "1001"}, wantErr: "want 2..1000"},
		{name: "large batch without window", ctx: map[string]any{"executorBatchSize": "11", "executorBatchWindow": "0"}, wantErr: "need executorBatchWindow"},
		{name: "verifier window above five minutes", ctx: map[string]any{"verifierBatchWindow": "301"}, wantErr: "want 0..300"},
		{name: "margin not below timeout", ctx: map[string]any{"executorTimeout": "5", "executorDeadlineMargin": "5", "visibilityTimeout": "30"}, wantErr: "must be below executorTimeout"},
		{name: "retention not offered by logs", ctx: map[string]any{"logRetentionDays": "10"}, wantErr: "want one of"},
		{name: "record age below a minute", ctx: map[string]any{"verifierMaxRecordAge": "30"}, wantErr: "want -1 or 60..604800"},
		{name: "parallelization above ten", ctx: map[string]any{"verifierParallelizationFactor": "11"}, wantErr: "want 1..10"},
		{name: "memory below minimum", ctx: map[string]any{"executorMemory": "64"}, wantErr: "want 128..10240"},
		{name: "timeout above 15 minutes", ctx: map[string]any{"verifierTimeout": "901"}, wantErr: "want 1..900"},
		{name: "unknown log level", ctx: map[string]any{"logLevel": "verbose"}, wantErr: "want debug, info, warn or error"},
		{name: "prefix with dot", ctx: map[string]any{"namePrefix": "knhk.prod"}, wantErr: "want 1..40 letters"},
		{name: "runbook base with space", ctx: map[string]any{"runbookBaseUrl": "docs/run books"}, wantErr: "without spaces"},
		{name: "empty functions dir", ctx: map[string]any{"functionsDir": " "}, wantErr: "want a folder"},
		{name: "open tenant with a space", ctx: map[string]any{"openTenants": "acme corp"}, wantErr: "is not a tenant"},
		{name: "producer that is not a role", ctx: map[string]any{"producerRoles": "arn:aws:iam::123456789012:user/bob"}, wantErr: "is not an IAM role ARN"},
		{name: "unknown env", ctx: map[string]any{"env": "staging"}, wantErr: "want prod, dev or local"},
		{name: "receive count zero", ctx: map[string]any{"maxReceiveCount": "0"}, wantErr: "want 1..1000"},
		{name: "receive count too large", ctx: map[string]any{"maxReceiveCount": 1001}, wantErr: "want 1..1000"},
		{name: "receive count not a number", ctx: map[string]any{"maxReceiveCount": "five"}, wantErr: "want an integer"},
		{name: "fractional visibility", ctx: map[string]any{"visibilityTimeout": 1.5}, wantErr: "want an integer"},
		{name: "visibility above 12h", ctx: map[string]any{"visibilityTimeout": "43201"}, wantErr: "want 0..43200"},
		{name: "alias without prefix", ctx: map[string]any{"checkpointKeyAlias": "knhk/checkpoint"}, wantErr: "want alias/NAME"},
		{name: "reserved alias", ctx: map[string]any{"checkpointKeyAlias": "alias/aws/knhk"}, wantErr: "want alias/NAME"},
		{name: "alias with space", ctx: map[string]any{"checkpointKeyAlias": "alias/knhk ckpt"}, wantErr: "want alias/NAME"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromContext(lookupOf(tc.ctx))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDestroyable(t *testing.T) {
	for env, want := range map[Env]bool{EnvProd: false, EnvDev: true, EnvLocal: true} {
		if got := (Config{Env: env}).Destroyable(); got != want {
			t.Errorf("%s: Destroyable = %v, want %v", env, got, want)
		}
	}
}

// FuzzFromContext checks that any command-line context either yields a
// configuration inside the documented bounds or an error, never a panic.
func FuzzFromContext(f *testing.F) {
	f.Add("local", "5", "360", "alias/knhk/checkpoint", "60", "20", "7")
	f.Add("prod", "-1", "1e3", "alias/", "0", "1", "10")
	f.Fuzz(func(t *testing.T, env, mrc, vis, alias, timeout, conc, retention string) {
		c, err := FromContext(lookupOf(map[string]any{
			"env": env, "maxReceiveCount": mrc, "visibilityTimeout": vis, "checkpointKeyAlias": alias,
			"executorTimeout": timeout, "executorMaxConcurrency": conc, "logRetentionDays": retention,
		}))
		if err != nil {
			return
		}
		if c.MaxReceiveCount < 1 || c.MaxReceiveCount > 1000 || c.VisibilityTimeoutSecs > 43200 || !validAlias(c.CheckpointKeyAlias) ||
			c.VisibilityTimeoutSecs < VisibilityFactor*c.Executor.TimeoutSecs || c.Executor.TimeoutSecs < 1 || c.Executor.TimeoutSecs > 900 ||
			c.ExecutorMaxConcurrency < 2 || c.ExecutorMaxConcurrency > 1000 || !slices.Contains(RetentionDays, c.LogRetentionDays) {
			t.Fatalf("out-of-bounds config accepted: %+v", c)
		}
	})
}

func TestEnvFileValuesAndOverrides(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "env.json")
	if err := os.WriteFile(file, []byte(`{"env": "dev", "executorMemory": 1024, "openTenants": ["acme", "globex"], "logLevel": "debug"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := FromContext(lookupOf(map[string]any{CtxEnvFile: file, CtxLogLevel: "warn"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Env != EnvDev || c.Executor.MemoryMB != 1024 || len(c.OpenTenants) != 2 || c.LogLevel != "warn" {
		t.Errorf("from the file with -c logLevel=warn: env %s, memory %d, open tenants %v, log level %s", c.Env, c.Executor.MemoryMB, c.OpenTenants, c.LogLevel)
	}
	for name, body := range map[string]string{"not an object": `[1]`, "nested": `{"envFile": "x.json"}`, "bad value": `{"executorMemory": 1}`} {
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := FromContext(lookupOf(map[string]any{CtxEnvFile: file})); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := FromContext(lookupOf(map[string]any{CtxEnvFile: filepath.Join(dir, "missing.json")})); err == nil {
		t.Error("a missing environment file was accepted")
	}
}

func TestCanaryAndNotificationsContext(t *testing.T) {
	good := map[string]any{CtxCanaryFreshness: "90s", CtxAlarmEmail: "oncall@example.com",
		CtxPagerDutyURL: "https://events.pagerduty.com/integration/k/enqueue", CtxSlackChannelID: "C1", CtxSlackWorkspaceID: "T1"}
	c, err := FromContext(lookupOf(good))
	if err != nil || c.CanaryFreshness.String() != "1m30s" || c.AlarmEmail != "oncall@example.com" ||
		c.PagerDutyURL == "" || c.SlackChannelID != "C1" || c.SlackWorkspaceID != "T1" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []map[string]any{
		{CtxCanaryFreshness: "10s"}, {CtxCanaryFreshness: "2h"}, {CtxCanaryFreshness: "soon"},
		{CtxAlarmEmail: "nobody"}, {CtxAlarmEmail: "a@example.com,b@example.com"},
		{CtxPagerDutyURL: "http://events.pagerduty.com/x"},
		{CtxSlackChannelID: "C1"}, {CtxSlackWorkspaceID: "T1"},
	} {
		if _, err := FromContext(lookupOf(bad)); err == nil {
			t.Errorf("context %v accepted", bad)
		}
	}
}

func TestCostConfigContext(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"string", ` {"budgets":{"acme":"120.50"}} `, `{"budgets":{"acme":"120.50"}}`},
		{"cdk.json object", map[string]any{"budgets": map[string]any{"acme": "10"}, "roiMonths": 24}, `{"budgets":{"acme":"10"},"roiMonths":24}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromContext(lookupOf(map[string]any{CtxCostConfig: tc.v}))
			if err != nil || c.CostConfig != tc.want {
				t.Fatalf("CostConfig %q, %v; want %q", c.CostConfig, err, tc.want)
			}
		})
	}
	if c, err := FromContext(lookupOf(nil)); err != nil || c.CostConfig != "" {
		t.Errorf("default CostConfig %q, %v; want none", c.CostConfig, err)
	}
	for _, bad := range []any{`{"budgets":{"acme":"-1"}}`, `{"budgets":{"acme":"ten"}}`, `{"budgets":`, `{"budget":{}}`} {
		if _, err := FromContext(lookupOf(map[string]any{CtxCostConfig: bad})); err == nil {
			t.Errorf("context %s=%v accepted", CtxCostConfig, bad)
		}
	}
}

func TestSLAObjectivesContext(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"string", ` {"billing/payments":{"availability":0.9995}} `, `{"billing/payments":{"availability":0.9995}}`},
		{"cdk.json object", map[string]any{"*": map[string]any{"p99": "2s"}}, `{"*":{"p99":"2s"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromContext(lookupOf(map[string]any{CtxSLAObjectives: tc.v}))
			if err != nil || c.SLAObjectives != tc.want {
				t.Fatalf("SLAObjectives %q, %v; want %q", c.SLAObjectives, err, tc.want)
			}
		})
	}
	for _, bad := range []any{`{"payments":{"availability":0.9995}}`, `{"billing/":{}}`, `{"a/b/c":{}}`, `{"payments":`, `{"payments":{"availability":1.5}}`, `{"payments":{"p99":"soon"}}`, `["payments"]`} {
		if _, err := FromContext(lookupOf(map[string]any{CtxSLAObjectives: bad})); err == nil {
			t.Errorf("context %s=%v accepted", CtxSLAObjectives, bad)
		}
	}
}

func TestTunerContext(t *testing.T) {
	c, err := FromContext(lookupOf(map[string]any{CtxTuner: map[string]any{"enabled": true, "allow": []any{"maxConcurrency"}}}))
	if err != nil || c.TunerGuard != `{"allow":["maxConcurrency"],"enabled":true}` {
		t.Fatalf("TunerGuard %q, %v", c.TunerGuard, err)
	}
	if c, err := FromContext(lookupOf(nil)); err != nil || c.TunerGuard != "" {
		t.Errorf("default TunerGuard %q, %v; want none (recommendation only)", c.TunerGuard, err)
	}
	for _, bad := range []map[string]any{
		{CtxTuner: `{"allow":["speed"]}`},
		{CtxTuner: `{"enabled":"yes"}`},
		{CtxTuner: `{"killSwitches":true}`},
		// The bounds may not exceed the mapping's deployed maximum.
		{CtxTuner: `{"bounds":{"maxConcurrency":{"min":2,"max":40}}}`, CtxExecutorMaxConcurrency: 20},
	} {
		if _, err := FromContext(lookupOf(bad)); err == nil {
			t.Errorf("context %v accepted", bad)
		}
	}
	if _, err := FromContext(lookupOf(map[string]any{CtxTuner: `{"bounds":{"maxConcurrency":{"min":2,"max":40}}}`, CtxExecutorMaxConcurrency: 50})); err != nil {
		t.Errorf("bounds within a raised maximum refused: %v", err)
	}
}
