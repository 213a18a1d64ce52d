// Command executor is the SQS-triggered Lambda that advances workflow cases:
// it reads configuration, builds its dependencies once per execution
// environment and hands batches to the executor package.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/knhk/knhk/shared/alert"
	"github.com/knhk/knhk/shared/breaker"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/executor"
	"github.com/knhk/knhk/shared/handler"
	"github.com/knhk/knhk/shared/hostmap"
	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/secrets"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
	"github.com/knhk/knhk/shared/tenancy"
	"github.com/knhk/knhk/shared/tuner"
	"github.com/knhk/knhk/shared/workflow/engine/grpccall"
)

func main() {
	fn, h, err := build(context.Background())
	if err != nil {
		// Init failures surface as the function's init error.
		fmt.Fprintln(os.Stderr, "executor init:", err)
		os.Exit(1)
	}
	handler.Start(fn, h)
}

// settings are the executor's environment.
type settings struct {
	receipts, state, queueURL, topic string
	payloadBucket                    string
	secretsPrefix                    string
	cfg                              executor.Config
	breaker                          breaker.Config
	hosts                            hostmap.Map
	level                            slog.Level
	latestTTL                        time.Duration
	grantsTTL                        time.Duration
}

func readSettings(getenv func(string) string) (settings, error) {
	s := settings{
		receipts: getenv("KNHK_RECEIPTS_TABLE"),
		state:    getenv("KNHK_STATE_TABLE"),
		queueURL: getenv("KNHK_WORK_QUEUE_URL"),
		topic:    getenv("KNHK_ALERTS_TOPIC_ARN"),
		cfg:      executor.DefaultConfig(),
		// Optional: inputs sent by reference (docs/messages.md).
		payloadBucket: getenv(stack.EnvName(stack.OutPayloadBucket)),
		// A push or rollback reaches new cases within this time.
		latestTTL: 2 * time.Second,
		// A grant or revocation reaches every executor within this time.
		grantsTTL: 5 * time.Second,
	}
	// Tenants every admitted sender may act for (docs/security.md).
	s.cfg.Tenancy.Open = tenancy.ParseOpen(getenv("KNHK_OPEN_TENANTS"))
	s.secretsPrefix = secrets.DefaultPrefix
	if v := getenv("KNHK_SECRETS_PREFIX"); v != "" {
		s.secretsPrefix = v
	}
	for name, v := range map[string]string{"KNHK_RECEIPTS_TABLE": s.receipts, "KNHK_STATE_TABLE": s.state, "KNHK_WORK_QUEUE_URL": s.queueURL} {
		if v == "" {
			return s, fmt.Errorf("%s is not set", name)
		}
	}
	if v := getenv("KNHK_MAX_RECEIVE_COUNT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return s, fmt.Errorf("KNHK_MAX_RECEIVE_COUNT=%q: want a positive integer", v)
		}
		s.cfg.MaxReceiveCount = n
	}
	if v := getenv("KNHK_DEADLINE_MARGIN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return s, fmt.Errorf("KNHK_DEADLINE_MARGIN=%q: want a duration such as 5s", v)
		}
		s.cfg.Margin = d
	}
	if v := getenv("KNHK_LATEST_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return s, fmt.Errorf("KNHK_LATEST_TTL=%q: want a duration such as 2s (0 reads the latest pointer for every start)", v)
		}
		s.latestTTL = d
	}
	if v := getenv("KNHK_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return s, fmt.Errorf("KNHK_WORKERS=%q: want a positive integer", v)
		}
		s.cfg.Workers = n
	}
	// Header names redacted from receipts besides redact.DefaultHeaders.
	for _, h := range strings.Split(getenv("KNHK_SENSITIVE_HEADERS"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			s.cfg.Engine.SensitiveHeaders = append(s.cfg.Engine.SensitiveHeaders, h)
		}
	}
	if v := getenv("KNHK_FAN_OUT"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return s, fmt.Errorf("KNHK_FAN_OUT=%q: want true or false", v)
		}
		s.cfg.FanOut = b
	}
	var err error
	// Local runs route the samples' hosts to stand-in services.
	if s.hosts, err = hostmap.Parse(getenv("KNHK_HTTP_HOST_MAP")); err != nil {
		return s, fmt.Errorf("KNHK_HTTP_HOST_MAP: %w", err)
	}
	if s.breaker, err = breaker.ConfigFrom("HTTP", getenv); err != nil {
		return s, err
	}
	if s.level, err = telemetry.ParseLevel(getenv("LOG_LEVEL")); err != nil {
		return s, err
	}
	return s, nil
}

func build(ctx context.Context) (handler.Function, handler.Func[events.SQSEvent, events.SQSEventResponse], error) {
	var fn handler.Function
	s, err := readSettings(os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fn, nil, fmt.Errorf("aws config: %w", err)
	}
	tracing, err := telemetry.SetupTracing(ctx, "executor", os.Getenv)
	if err != nil {
		return fn, nil, err
	}
	tracing.InstrumentAWS(&awsCfg)
	meter.Install(&awsCfg)
	log := telemetry.NewLogger(os.Stdout, s.level)
	metrics := telemetry.NewMetrics(telemetry.Namespace)
	if err := metrics.SetDimensions(telemetry.Dimension{Name: telemetry.DimFunction, Value: "executor"}); err != nil {
		return fn, nil, err
	}
	s.breaker.OnStateChange = func(host string, from, to breaker.State) {
		log.Warn("circuit breaker state changed", "host", host, "from", from.String(), "to", to.String())
		if to == breaker.Open {
			metrics.Add(telemetry.BreakerOpened, telemetry.Count, 1)
		}
	}
	// The executor's own principal: its role session's UserId is the
	// SenderId of every continuation it sends.
	id, err := sts.NewFromConfig(awsCfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return handler.Function{}, nil, fmt.Errorf("caller identity: %w", err)
	}
	s.cfg.Tenancy.Self = tenancy.Principal(aws.ToString(id.UserId))
	s.breaker.OnReject = func(string) { metrics.Add(telemetry.BreakerRejected, telemetry.Count, 1) }
	// The learning loop's breaker threshold overrides, read from the state
	// table at most every 30 s (docs/learning.md).
	overrides := &tuner.OverrideReader{}
	s.breaker.Threshold = overrides.BreakerThreshold
	breakers := breaker.NewSet(s.breaker)
	transport := tracing.HTTPTransport(breakers.Transport(meter.Transport{Base: s.hosts.Transport(http.DefaultTransport.(*http.Transport))}),
		func(host string) string { return breakers.State(host).String() })
	ddb := dynamodb.NewFromConfig(awsCfg)
	overrides.Items = tuner.Items{DB: ddb, Table: s.state}
	grants := store.NewGrants(ddb, s.state)
	grants.TTL = s.grantsTTL
	reg := registry.New(ddb, s.state, registry.LatestTTL(s.latestTTL))
	receipts := store.NewReceipts(ddb, s.receipts)
	cases := store.NewCases(ddb, s.state)
	// Detached payloads go to the payloads bucket (blobs/<sha256>), read
	// back from the state table when written there before the move; a
	// stack without the bucket keeps them in the state table.
	receipts.Blobs = cases.State
	var payloads executor.Payloads
	if s.payloadBucket != "" {
		bucket := objects.New(objects.NewClient(awsCfg), s.payloadBucket)
		payloads = objects.NewPayloads(bucket)
		receipts.Blobs = objects.NewBlobs(bucket, cases.State)
	}
	x := executor.New(s.cfg, executor.Deps{
		Payloads:    payloads,
		Chains:      receipts,
		Descriptors: reg,
		Grants:      grants,
		Namespaces:  reg,
		Sender:      queue.NewSender(sqs.NewFromConfig(awsCfg), s.queueURL),
		Cases:       cases,
		Alerts:      alert.NewSNS(sns.NewFromConfig(awsCfg), s.topic),
		Secrets:     secrets.New(secretsmanager.NewFromConfig(awsCfg), s.secretsPrefix, 5*time.Minute),
		HTTP:        &http.Client{Timeout: 30 * time.Second, Transport: transport},
		// gRPC targets share the HTTP hosts' breakers (keyed host:port).
		GRPC:    &grpccall.Client{Breakers: breakers},
		Log:     log,
		Metrics: metrics,
		SLIs:    store.NewSLIs(ddb, s.state),
	})
	handle := func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		if err := overrides.Refresh(ctx); err != nil {
			log.WarnContext(ctx, "tuner overrides not read; the last ones stay in force", "error", err.Error())
		}
		return x.Handle(ctx, ev)
	}
	return handler.Function{Name: "executor", Log: log, Metrics: metrics, Tracing: tracing,
		Overhead: handler.Overhead{Sink: store.NewOverheads(ddb, s.state), Class: cost.Shared, CaseMetered: true, Every: handler.BusyOverheadEvery},
	}, handle, nil
}
