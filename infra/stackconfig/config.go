// Package stackconfig reads the CDK context that shapes the KNHK stack:
// environment, redrive limit, visibility timeout, checkpoint key alias, the
// functions' sizing and event source mappings, logging, tracing and alarm
// runbooks.
package stackconfig

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knhk/knhk/shared/costjob"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/slajob"
	"github.com/knhk/knhk/shared/tuner"
)

// Context keys read by the app (pass them with `cdk synth -c key=value`).
const (
	CtxEnv                = "env"
	CtxMaxReceiveCount    = "maxReceiveCount"
	CtxVisibilityTimeout  = "visibilityTimeout"
	CtxCheckpointKeyAlias = "checkpointKeyAlias"

	CtxNamePrefix             = "namePrefix"
	CtxFunctionsDir           = "functionsDir"
	CtxExecutorMemory         = "executorMemory"
	CtxExecutorTimeout        = "executorTimeout"
	CtxExecutorBatchSize      = "executorBatchSize"
	CtxExecutorBatchWindow    = "executorBatchWindow"
	CtxExecutorMaxConcurrency = "executorMaxConcurrency"
	CtxExecutorDeadlineMargin = "executorDeadlineMargin"
	CtxVerifierMemory         = "verifierMemory"
	CtxVerifierTimeout        = "verifierTimeout"
	CtxVerifierBatchSize      = "verifierBatchSize"
	CtxVerifierBatchWindow    = "verifierBatchWindow"
	CtxVerifierMaxRetries     = "verifierMaxRetryAttempts"
	CtxVerifierMaxRecordAge   = "verifierMaxRecordAge"
	CtxVerifierParallelism    = "verifierParallelizationFactor"
	CtxCheckpointMinutes      = "checkpointEveryMinutes"
	CtxCheckpointerTimeout    = "checkpointerTimeout"
	CtxSLAObjectives          = "slaObjectives"        // JSON of workflow to objective (see shared/slajob)
	CtxSLAWindowDivisor       = "slaWindowDivisor"     // shortens the burn-rate windows (1: the Workbook's)
	CtxSLAMinEvents           = "slaMinEvents"         // the burn-rate alerts' minimum-events guard
	CtxCostEvery              = "costEvery"            // hours between cost job runs (default 24: daily)
	CtxChargebackExpireDays   = "chargebackExpireDays" // days a chargeback export (and each older version) is kept
	CtxCostConfig             = "costConfig"           // JSON of tenant budgets, legacy per-case costs and migration costs (see shared/costjob)
	CtxTuner                  = "tuner"                // JSON of the learning loop's guardrails (see shared/tuner and docs/learning.md)
	CtxLogRetentionDays       = "logRetentionDays"
	CtxArchiveRetentionDays   = "archiveRetentionDays" // days Object Lock keeps each archive object (default 2557, 7 years)
	CtxArchiveLockMode        = "archiveLockMode"      // compliance or governance (default compliance; governance for dev and local)
	CtxReceiptRetentionDays   = "receiptRetentionDays" // days an archived case's receipts stay in DynamoDB after its end (default 30)
	CtxArchiveMinutes         = "archiveEveryMinutes"  // the archiver's schedule, rate(N minutes)
	CtxArchiverTimeout        = "archiverTimeout"
	CtxLogLevel               = "logLevel"
	CtxRunbookBaseURL         = "runbookBaseUrl"
	CtxCanaryFreshness        = "canaryFreshness" // how long a canary case may take to a verified completion (a Go duration)
	// Alarm notifications: subscriptions of the page and ticket topics.
	CtxAlarmEmail       = "alarmEmail"       // an address subscribed to both topics
	CtxPagerDutyURL     = "pagerDutyUrl"     // a PagerDuty Events v2 HTTPS endpoint subscribed to the page topic
	CtxSlackChannelID   = "slackChannelId"   // with slackWorkspaceId: an AWS Chatbot Slack channel on both topics
	CtxSlackWorkspaceID = "slackWorkspaceId" // the Slack workspace (team) id configured in AWS Chatbot

	// OpenTelemetry: the functions export spans over OTLP/HTTP (see
	// docs/operations.md, Tracing).
	CtxTracing            = "tracing"               // on (default) or off
	CtxOTelEndpoint       = "otelEndpoint"          // OTLP/HTTP base URL (default: the collector extension on localhost)
	CtxOTelSampler        = "otelSampler"           // an OTEL_TRACES_SAMPLER value (default parentbased_always_on)
	CtxOTelSamplerArg     = "otelSamplerArg"        // its argument, e.g. 0.1 for a ratio
	CtxOTelCollectorLayer = "otelCollectorLayerArn" // the ADOT collector layer to add (exports to X-Ray)
	CtxOpenTenants        = "openTenants"
	CtxProducerRoles      = "producerRoles"
)

// DefaultOTelEndpoint is where the collector extension (the ADOT collector
// layer) receives OTLP/HTTP inside the execution environment.
const DefaultOTelEndpoint = "http://localhost:4318"

// Samplers are the OTEL_TRACES_SAMPLER values the Go SDK understands.
var Samplers = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on",
	"parentbased_always_off", "parentbased_traceidratio"}

// VisibilityFactor is how many executor timeouts the work queue's
// visibility timeout must span at least, so that Lambda can retry a batch
// whose invocation was throttled before the message reappears.
const VisibilityFactor = 6

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
	Env             Env
	MaxReceiveCount int
	// VisibilityTimeoutSecs is the work queue's visibility timeout; when not
	// given it is VisibilityFactor times the executor timeout.
	VisibilityTimeoutSecs int
	CheckpointKeyAlias    string

	// NamePrefix prefixes function and alarm names (default knhk-<env>).
	NamePrefix string
	// FunctionsDir holds one folder per function with its bootstrap binary;
	// relative paths are relative to the CDK app's directory.
	FunctionsDir string

	Executor FunctionConfig
	// ExecutorMaxConcurrency caps the executor invocations the work queue's
	// mapping runs at once (SQS allows 2..1000).
	ExecutorMaxConcurrency int
	// ExecutorDeadlineMarginSecs is how long before its timeout the
	// executor stops starting work.
	ExecutorDeadlineMarginSecs int

	Verifier FunctionConfig
	// VerifierMaxRetryAttempts bounds retries of a failing stream batch (-1: until the record expires).
	VerifierMaxRetryAttempts int
	// VerifierMaxRecordAgeSecs drops older stream records to the failure queue (-1: no limit).
	VerifierMaxRecordAgeSecs int
	// VerifierParallelization is the number of concurrent batches per shard;
	// keep 1 so that a case's receipts are verified in order.
	VerifierParallelization int

	// Checkpointer sizes the scheduled checkpointer (batch fields unused);
	// CheckpointEveryMinutes is its schedule, rate(N minutes).
	Checkpointer           FunctionConfig
	CheckpointEveryMinutes int

	// SLA sizes the scheduled SLA job (runs every minute); SLAObjectives,
	// SLAWindowDivisor and SLAMinEvents are its objectives, window scale
	// and guard.
	SLA              FunctionConfig
	SLAObjectives    string
	SLAWindowDivisor int
	SLAMinEvents     int

	// Cost sizes the scheduled cost job; CostEveryHours is its schedule,
	// rate(N hours), and ChargebackExpireDays the lifetime of its exports
	// in the chargeback bucket.
	Cost                 FunctionConfig
	CostEveryHours       int
	ChargebackExpireDays int
	// CostConfig is the cost job's budgets and ROI inputs as JSON
	// (costjob.Config), validated; empty: none.
	CostConfig string
	// Canary sizes the health canary (runs every minute); CanaryFreshness
	// bounds a canary case's submission to its verified completion.
	Canary          FunctionConfig
	CanaryFreshness time.Duration
	// Tuner sizes the learning loop (runs every minute); TunerGuard is its
	// guardrails as JSON (tuner.Config), validated; empty: recommendation
	// only, nothing allowed.
	Tuner      FunctionConfig
	TunerGuard string

	// Archiver sizes the scheduled archiver; ArchiveEveryMinutes is its
	// schedule. ArchiveRetentionDays and ArchiveLockMode are the archive
	// bucket's default Object Lock retention; ReceiptRetentionDays is how
	// long after its end an archived case's receipts stay in DynamoDB.
	Archiver             FunctionConfig
	ArchiveEveryMinutes  int
	ArchiveRetentionDays int
	ArchiveLockMode      LockMode
	ReceiptRetentionDays int

	// AlarmEmail, PagerDutyURL and SlackChannelID with SlackWorkspaceID
	// subscribe to the page and ticket topics ("" for none).
	AlarmEmail       string
	PagerDutyURL     string
	SlackChannelID   string
	SlackWorkspaceID string

	// LogRetentionDays is the functions' log retention (a CloudWatch Logs value).
	LogRetentionDays int
	// LogLevel is the functions' application log level: debug, info, warn or error.
	LogLevel string
	// RunbookBaseURL is prefixed to docs/runbooks file names in alarm
	// descriptions; it ends with a slash.
	RunbookBaseURL string

	// Tracing turns the functions' OpenTelemetry spans on.
	Tracing bool
	// OTelEndpoint, OTelSampler and OTelSamplerArg become the functions'
	// OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER and
	// OTEL_TRACES_SAMPLER_ARG.
	OTelEndpoint, OTelSampler, OTelSamplerArg string
	// OTelCollectorLayerARN, when set, is added to every function as the
	// collector extension that forwards spans to X-Ray.
	OTelCollectorLayerARN string
	// OpenTenants are the tenants every sender the work queue admits may act
	// for without a grant ("*": all); default "default" (docs/security.md).
	OpenTenants []string
	// ProducerRoles are the IAM role ARNs besides the executor's that may
	// send to the work queue. Empty: every principal of the account that
	// IAM allows (the fresh-stack default); set, the queue policy denies
	// everyone else.
	ProducerRoles []string
}

// LockMode is the archive bucket's Object Lock retention mode.
type LockMode string

// The Object Lock modes: in compliance mode no principal, the account's
// root included, can delete an object version or shorten its retention
// before it ends; in governance mode a principal allowed
// s3:BypassGovernanceRetention can (for dev and local stacks, which are
// destroyed).
const (
	LockCompliance LockMode = "COMPLIANCE"
	LockGovernance LockMode = "GOVERNANCE"
)

// FunctionConfig sizes one function and its event source mapping.
type FunctionConfig struct {
	MemoryMB    int
	TimeoutSecs int
	BatchSize   int
	// BatchWindowSecs is the mapping's maximum batching window.
	BatchWindowSecs int
}

// RetentionDays lists the retention periods CloudWatch Logs accepts.
var RetentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// Destroyable reports whether the stack's data may be deleted with it.
func (c Config) Destroyable() bool { return c.Env == EnvLocal || c.Env == EnvDev }

// DefaultConfig is the production configuration.
func DefaultConfig() Config {
	return Config{
		Env:                        EnvProd,
		MaxReceiveCount:            5,
		VisibilityTimeoutSecs:      VisibilityFactor * 60,
		CheckpointKeyAlias:         "alias/knhk/checkpoint",
		NamePrefix:                 "knhk-prod",
		FunctionsDir:               "../build/lambda",
		Executor:                   FunctionConfig{MemoryMB: 512, TimeoutSecs: 60, BatchSize: 10, BatchWindowSecs: 1},
		ExecutorMaxConcurrency:     20,
		ExecutorDeadlineMarginSecs: 5,
		Verifier:                   FunctionConfig{MemoryMB: 256, TimeoutSecs: 60, BatchSize: 100, BatchWindowSecs: 1},
		VerifierMaxRetryAttempts:   5,
		VerifierMaxRecordAgeSecs:   3600,
		VerifierParallelization:    1,
		Checkpointer:               FunctionConfig{MemoryMB: 512, TimeoutSecs: 300},
		CheckpointEveryMinutes:     5,
		SLA:                        FunctionConfig{MemoryMB: 512, TimeoutSecs: 120},
		SLAWindowDivisor:           1,
		SLAMinEvents:               10,
		Cost:                       FunctionConfig{MemoryMB: 512, TimeoutSecs: 300},
		CostEveryHours:             24,
		ChargebackExpireDays:       731,
		Canary:                     FunctionConfig{MemoryMB: 256, TimeoutSecs: 60},
		CanaryFreshness:            2 * time.Minute,
		Tuner:                      FunctionConfig{MemoryMB: 256, TimeoutSecs: 60},
		Archiver:                   FunctionConfig{MemoryMB: 512, TimeoutSecs: 300},
		ArchiveEveryMinutes:        15,
		ArchiveRetentionDays:       2557,
		ArchiveLockMode:            LockCompliance,
		ReceiptRetentionDays:       30,
		LogRetentionDays:           30,
		LogLevel:                   "info",
		RunbookBaseURL:             "docs/runbooks/",
		Tracing:                    true,
		OTelEndpoint:               DefaultOTelEndpoint,
		OTelSampler:                "parentbased_always_on",
		OpenTenants:                []string{"default"},
	}
}

// FromContext builds the configuration from CDK context values. A
// lookup returns (value, true) when the key is set; values may be strings
// (from the command line) or numbers (from cdk.json).
func FromContext(lookup func(key string) (any, bool)) (Config, error) {
	lookup, err := WithEnvFile(lookup)
	if err != nil {
		return Config{}, err
	}
	c := DefaultConfig()
	if v, ok := lookup(CtxEnv); ok {
		switch e := Env(strings.TrimSpace(fmt.Sprint(v))); e {
		case EnvProd, EnvDev, EnvLocal:
			c.Env = e
		default:
			return Config{}, fmt.Errorf("context %s=%q: want prod, dev or local", CtxEnv, e)
		}
	}
	if c.Destroyable() {
		c.LogRetentionDays = 7
		c.ArchiveLockMode = LockGovernance
	}
	c.NamePrefix = "knhk-" + string(c.Env)
	ints := []struct {
		key    string
		dst    *int
		lo, hi int
	}{
		{CtxMaxReceiveCount, &c.MaxReceiveCount, 1, 1000},
		{CtxExecutorMemory, &c.Executor.MemoryMB, 128, 10240},
		{CtxExecutorTimeout, &c.Executor.TimeoutSecs, 1, 900},
		{CtxExecutorBatchSize, &c.Executor.BatchSize, 1, 10000},
		{CtxExecutorBatchWindow, &c.Executor.BatchWindowSecs, 0, 300},
		{CtxExecutorMaxConcurrency, &c.ExecutorMaxConcurrency, 2, 1000},
		{CtxExecutorDeadlineMargin, &c.ExecutorDeadlineMarginSecs, 1, 899},
		{CtxVerifierMemory, &c.Verifier.MemoryMB, 128, 10240},
		{CtxVerifierTimeout, &c.Verifier.TimeoutSecs, 1, 900},
		{CtxVerifierBatchSize, &c.Verifier.BatchSize, 1, 10000},
		{CtxVerifierBatchWindow, &c.Verifier.BatchWindowSecs, 0, 300},
		{CtxVerifierMaxRetries, &c.VerifierMaxRetryAttempts, -1, 10000},
		{CtxVerifierMaxRecordAge, &c.VerifierMaxRecordAgeSecs, -1, 604800},
		{CtxVerifierParallelism, &c.VerifierParallelization, 1, 10},
		{CtxCheckpointMinutes, &c.CheckpointEveryMinutes, 1, 1440},
		{CtxCheckpointerTimeout, &c.Checkpointer.TimeoutSecs, 1, 900},
		{CtxLogRetentionDays, &c.LogRetentionDays, 1, 3653},
		{CtxSLAWindowDivisor, &c.SLAWindowDivisor, 1, 10080},
		{CtxSLAMinEvents, &c.SLAMinEvents, 0, 1000000},
		{CtxCostEvery, &c.CostEveryHours, 1, 744},
		{CtxChargebackExpireDays, &c.ChargebackExpireDays, 1, 3653},
		{CtxArchiveRetentionDays, &c.ArchiveRetentionDays, 1, 36500},
		{CtxReceiptRetentionDays, &c.ReceiptRetentionDays, 1, 3653},
		{CtxArchiveMinutes, &c.ArchiveEveryMinutes, 1, 1440},
		{CtxArchiverTimeout, &c.Archiver.TimeoutSecs, 1, 900},
	}
	for _, in := range ints {
		n, err := intContext(lookup, in.key, *in.dst, in.lo, in.hi)
		if err != nil {
			return Config{}, err
		}
		*in.dst = n
	}
	if err := c.checkRelations(); err != nil {
		return Config{}, err
	}
	// SQS accepts 0..43200 seconds (12 hours); the executor needs at least
	// VisibilityFactor times its timeout.
	minVis := VisibilityFactor * c.Executor.TimeoutSecs
	vis, err := intContext(lookup, CtxVisibilityTimeout, minVis, 0, 43200)
	if err != nil {
		return Config{}, err
	}
	if vis < minVis {
		return Config{}, fmt.Errorf("context %s=%d: the work queue's visibility timeout must be at least %d x %s (%d s) = %d s; raise it or leave it unset to derive it",
			CtxVisibilityTimeout, vis, VisibilityFactor, CtxExecutorTimeout, c.Executor.TimeoutSecs, minVis)
	}
	c.VisibilityTimeoutSecs = vis
	if c.SLAObjectives, err = jsonContext(lookup, CtxSLAObjectives, func(v string) error {
		_, _, err := slajob.ParseObjectives(v)
		return err
	}); err != nil {
		return Config{}, err
	}
	if err := c.canaryFrom(lookup); err != nil {
		return Config{}, err
	}
	if c.CostConfig, err = jsonContext(lookup, CtxCostConfig, func(v string) error {
		_, err := costjob.ParseConfig(v)
		return err
	}); err != nil {
		return Config{}, err
	}
	// The guardrails are checked against the work queue mapping's deployed
	// maximum concurrency, their upper bound.
	if c.TunerGuard, err = jsonContext(lookup, CtxTuner, func(v string) error {
		_, err := tuner.ParseConfig(v, int64(c.ExecutorMaxConcurrency))
		return err
	}); err != nil {
		return Config{}, err
	}
	if err := c.notificationsFrom(lookup); err != nil {
		return Config{}, err
	}
	if v, ok := lookup(CtxArchiveLockMode); ok {
		switch m := LockMode(strings.ToUpper(strings.TrimSpace(fmt.Sprint(v)))); m {
		case LockCompliance, LockGovernance:
			c.ArchiveLockMode = m
		default:
			return Config{}, fmt.Errorf("context %s=%q: want compliance or governance", CtxArchiveLockMode, fmt.Sprint(v))
		}
	}
	if v, ok := lookup(CtxCheckpointKeyAlias); ok {
		a := strings.TrimSpace(fmt.Sprint(v))
		if !validAlias(a) {
			return Config{}, fmt.Errorf("context %s=%q: want alias/NAME with letters, digits, /_- (not alias/aws/)", CtxCheckpointKeyAlias, a)
		}
		c.CheckpointKeyAlias = a
	}
	if v, ok := lookup(CtxNamePrefix); ok {
		p := strings.TrimSpace(fmt.Sprint(v))
		if !validPrefix(p) {
			return Config{}, fmt.Errorf("context %s=%q: want 1..40 letters, digits, - or _", CtxNamePrefix, p)
		}
		c.NamePrefix = p
	}
	if v, ok := lookup(CtxFunctionsDir); ok {
		d := strings.TrimSpace(fmt.Sprint(v))
		if d == "" {
			return Config{}, fmt.Errorf("context %s: want a folder", CtxFunctionsDir)
		}
		c.FunctionsDir = d
	}
	if v, ok := lookup(CtxLogLevel); ok {
		l := strings.ToLower(strings.TrimSpace(fmt.Sprint(v)))
		switch l {
		case "debug", "info", "warn", "error":
			c.LogLevel = l
		default:
			return Config{}, fmt.Errorf("context %s=%q: want debug, info, warn or error", CtxLogLevel, l)
		}
	}
	if v, ok := lookup(CtxRunbookBaseURL); ok {
		u := strings.TrimSpace(fmt.Sprint(v))
		if u == "" || strings.ContainsAny(u, " \t\n\"<>") {
			return Config{}, fmt.Errorf("context %s=%q: want a URL or path without spaces", CtxRunbookBaseURL, u)
		}
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		c.RunbookBaseURL = u
	}
	if err := c.tracingFrom(lookup); err != nil {
		return Config{}, err
	}
	if v, ok := lookup(CtxOpenTenants); ok {
		c.OpenTenants = nil
		for _, t := range list(v) {
			if t != "*" && !message.ValidTenant(t) {
				return Config{}, fmt.Errorf("context %s: %q is not a tenant (1-64 letters, digits, '.', '_' or '-') or *", CtxOpenTenants, t)
			}
			c.OpenTenants = append(c.OpenTenants, t)
		}
	}
	if v, ok := lookup(CtxProducerRoles); ok {
		c.ProducerRoles = nil
		for _, r := range list(v) {
			if !rolePattern.MatchString(r) {
				return Config{}, fmt.Errorf("context %s: %q is not an IAM role ARN", CtxProducerRoles, r)
			}
			c.ProducerRoles = append(c.ProducerRoles, r)
		}
	}
	return c, nil
}

// tracingFrom reads the OpenTelemetry context keys.
func (c *Config) tracingFrom(lookup func(string) (any, bool)) error {
	str := func(key string) (string, bool) {
		v, ok := lookup(key)
		return strings.TrimSpace(fmt.Sprint(v)), ok
	}
	if v, ok := str(CtxTracing); ok {
		switch strings.ToLower(v) {
		case "on", "true":
			c.Tracing = true
		case "off", "false":
			c.Tracing = false
		default:
			return fmt.Errorf("context %s=%q: want on or off", CtxTracing, v)
		}
	}
	if v, ok := str(CtxOTelEndpoint); ok {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("context %s=%q: want an http(s) URL such as %s", CtxOTelEndpoint, v, DefaultOTelEndpoint)
		}
		c.OTelEndpoint = v
	}
	if v, ok := str(CtxOTelSampler); ok {
		if !slices.Contains(Samplers, v) {
			return fmt.Errorf("context %s=%q: want one of %v", CtxOTelSampler, v, Samplers)
		}
		c.OTelSampler = v
	}
	if v, ok := str(CtxOTelSamplerArg); ok {
		if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 || f > 1 {
			return fmt.Errorf("context %s=%q: want a ratio 0..1", CtxOTelSamplerArg, v)
		}
		c.OTelSamplerArg = v
	}
	if v, ok := str(CtxOTelCollectorLayer); ok {
		if parts := strings.Split(v, ":"); len(parts) != 8 || parts[0] != "arn" || parts[2] != "lambda" || parts[5] != "layer" {
			return fmt.Errorf("context %s=%q: want a layer version ARN arn:PARTITION:lambda:REGION:ACCOUNT:layer:NAME:VERSION", CtxOTelCollectorLayer, v)
		}
		c.OTelCollectorLayerARN = v
	}
	return nil
}

var rolePattern = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$`)

// list reads a context list: a JSON array (cdk.json) or a comma-separated
// string (the command line).
func list(v any) []string {
	var parts []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			parts = append(parts, fmt.Sprint(e))
		}
	default:
		parts = strings.Split(fmt.Sprint(v), ",")
	}
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkRelations checks the limits that tie one setting to another.
func (c Config) checkRelations() error {
	if !slices.Contains(RetentionDays, c.LogRetentionDays) {
		return fmt.Errorf("context %s=%d: want one of %v", CtxLogRetentionDays, c.LogRetentionDays, RetentionDays)
	}
	if c.Executor.BatchSize > 10 && c.Executor.BatchWindowSecs < 1 {
		return fmt.Errorf("context %s=%d: batches above 10 need %s of at least 1 s", CtxExecutorBatchSize, c.Executor.BatchSize, CtxExecutorBatchWindow)
	}
	if c.ExecutorDeadlineMarginSecs >= c.Executor.TimeoutSecs {
		return fmt.Errorf("context %s=%d: must be below %s (%d s)", CtxExecutorDeadlineMargin, c.ExecutorDeadlineMarginSecs, CtxExecutorTimeout, c.Executor.TimeoutSecs)
	}
	if a := c.VerifierMaxRecordAgeSecs; a != -1 && a < 60 {
		return fmt.Errorf("context %s=%d: want -1 or 60..604800", CtxVerifierMaxRecordAge, a)
	}
	return nil
}

// validPrefix checks a name prefix: 1..40 of [a-zA-Z0-9_-], short enough
// that function names stay within Lambda's 64 characters.
func validPrefix(p string) bool {
	if p == "" || len(p) > 40 {
		return false
	}
	for _, r := range p {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
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

// canaryFrom reads the canary's freshness bound.
func (c *Config) canaryFrom(lookup func(string) (any, bool)) error {
	v, ok := lookup(CtxCanaryFreshness)
	if !ok {
		return nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(fmt.Sprint(v)))
	if err != nil || d < 30*time.Second || d > time.Hour {
		return fmt.Errorf("context %s=%v: want a duration from 30s to 1h, such as 2m", CtxCanaryFreshness, v)
	}
	c.CanaryFreshness = d
	return nil
}

// jsonContext reads a JSON context value, given as a JSON string or as an
// object in cdk.json, checks it with parse and returns its JSON text ("" when
// unset).
func jsonContext(lookup func(string) (any, bool), key string, parse func(string) error) (string, error) {
	v, ok := lookup(key)
	if !ok {
		return "", nil
	}
	str, isStr := v.(string)
	if !isStr {
		b, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("context %s: %w", key, err)
		}
		str = string(b)
	}
	str = strings.TrimSpace(str)
	if err := parse(str); err != nil {
		return "", fmt.Errorf("context %s: %w", key, err)
	}
	return str, nil
}

// notificationsFrom reads the alarm topics' subscriptions.
func (c *Config) notificationsFrom(lookup func(string) (any, bool)) error {
	get := func(key string) string {
		if v, ok := lookup(key); ok {
			return strings.TrimSpace(fmt.Sprint(v))
		}
		return ""
	}
	c.AlarmEmail, c.PagerDutyURL = get(CtxAlarmEmail), get(CtxPagerDutyURL)
	c.SlackChannelID, c.SlackWorkspaceID = get(CtxSlackChannelID), get(CtxSlackWorkspaceID)
	if e := c.AlarmEmail; e != "" && (!strings.Contains(e, "@") || strings.ContainsAny(e, " ,;")) {
		return fmt.Errorf("context %s=%q: want one e-mail address", CtxAlarmEmail, e)
	}
	if u := c.PagerDutyURL; u != "" && (!strings.HasPrefix(u, "https://") || strings.ContainsAny(u, " ")) {
		return fmt.Errorf("context %s=%q: want an https:// URL (SNS delivers to PagerDuty over TLS only)", CtxPagerDutyURL, u)
	}
	if (c.SlackChannelID == "") != (c.SlackWorkspaceID == "") {
		return fmt.Errorf("context %s and %s go together: set both or neither", CtxSlackChannelID, CtxSlackWorkspaceID)
	}
	return nil
}
