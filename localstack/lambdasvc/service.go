// Package lambdasvc is the local Lambda service: it runs each function's
// real bootstrap binary under the AWS Lambda Runtime Interface Emulator and
// plays the part of the stack's event source mappings (SQS queues,
// DynamoDB streams) and scheduled rules against a local AWS endpoint, as
// the synthesized template configures them. Function output goes to one log
// file per function; embedded metric format lines are forwarded to the
// local CloudWatch API.
package lambdasvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/alarmeval"
	"github.com/knhk/knhk/shared/localaws"
)

// RIEEnv names the environment variable that points at the emulator binary.
const RIEEnv = "KNHK_RIE"

// DefaultRIE is the emulator's path relative to the repository root.
const DefaultRIE = ".local/bin/aws-lambda-rie"

// Config configures the service.
type Config struct {
	// TemplatePath and StatePath locate the synthesized template and the
	// provision state file; Stack, when set, is used instead.
	TemplatePath, StatePath string
	Stack                   *Stack
	// StackOptions say where function binaries are found.
	StackOptions StackOptions
	// AWS is the configuration for the service's own calls; its
	// BaseEndpoint is also given to the functions as AWS_ENDPOINT_URL.
	AWS aws.Config
	// RIE is the emulator binary (default: FindRIE).
	RIE string
	// LogDir receives <function>.log (default .local/logs).
	LogDir string
	// DefaultConcurrency applies to SQS mappings without
	// ScalingConfig.MaximumConcurrency (default 2); MaxConcurrency caps
	// every mapping (default 10).
	DefaultConcurrency, MaxConcurrency int
	// MaxWait is the SQS long-poll wait in seconds (default and at most 20).
	MaxWait int
	// StreamPollInterval is the pause between empty GetRecords calls
	// (default 250ms, Lambda's four polls a second).
	StreamPollInterval time.Duration
	// RetryDelay is the pause before retrying a failed stream batch
	// (default 1s).
	RetryDelay time.Duration
	// MetricsInterval is how often EMF metrics are flushed (default 5s);
	// IteratorAgeInterval how often stream IteratorAge is published
	// (default 60s).
	MetricsInterval, IteratorAgeInterval time.Duration
	// AlarmInterval is how often the stack's alarms are evaluated, as
	// CloudWatch would, on the endpoint that does not (default 5s; negative:
	// never).
	AlarmInterval time.Duration
	// ScheduleSpeedup divides schedule intervals (default 1); FireAtStart
	// fires every schedule once when the service starts.
	ScheduleSpeedup float64
	FireAtStart     bool
	// PositionsPath is the JSON file where stream mappings keep the last
	// sequence number they handled per shard, so that a restarted service
	// resumes there (default: stream-positions.json beside StatePath; none
	// when StatePath is empty).
	PositionsPath string
	// Env adds variables to every function's environment.
	Env map[string]string
	// Override sets variables in every function's environment over the
	// template's (the local trace receiver's endpoint replaces the
	// collector's).
	Override map[string]string
	// Logger receives the service's own logs (default: discard).
	Logger *slog.Logger
}

// Service is the running local Lambda service.
type Service struct {
	cfg   Config
	stack *Stack
	log   *slog.Logger
	mu    sync.Mutex
	pools map[string]*pool
	fwd   *forwarder
	sqs   *sqs.Client
	ages  *iteratorAges
	pos   *positions
	// api serves the queue mappings' Lambda API on lambda (Run closes it).
	api    *lambdaAPI
	live   map[string]*liveMapping // by mapping logical id
	lambda net.Listener
}

// FindRIE locates the emulator: $KNHK_RIE, else DefaultRIE under the
// repository root (the directory holding go.mod above the working
// directory).
func FindRIE() (string, error) {
	if p := os.Getenv(RIEEnv); p != "" {
		return p, nil
	}
	root, err := localaws.RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, DefaultRIE)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("emulator not found at %s: run `make deps` (or set %s)", p, RIEEnv)
	}
	return p, nil
}

// New validates cfg and reads the stack; Run starts it.
func New(cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AWS.Region == "" {
		return nil, errors.New("lambdasvc: AWS config has no region")
	}
	if cfg.AWS.BaseEndpoint == nil || *cfg.AWS.BaseEndpoint == "" {
		return nil, errors.New("lambdasvc: AWS config has no endpoint: the service only runs against a local endpoint")
	}
	if cfg.RIE == "" {
		p, err := FindRIE()
		if err != nil {
			return nil, fmt.Errorf("lambdasvc: %w", err)
		}
		cfg.RIE = p
	}
	if cfg.LogDir == "" {
		cfg.LogDir = filepath.Join(".local", "logs")
	}
	if cfg.PositionsPath == "" && cfg.StatePath != "" {
		cfg.PositionsPath = filepath.Join(filepath.Dir(cfg.StatePath), "stream-positions.json")
	}
	if cfg.DefaultConcurrency <= 0 {
		cfg.DefaultConcurrency = 2
	}
	if cfg.MaxConcurrency <= 0 {
		cfg.MaxConcurrency = 10
	}
	if cfg.MaxWait <= 0 || cfg.MaxWait > 20 {
		cfg.MaxWait = 20
	}
	if cfg.StreamPollInterval <= 0 {
		cfg.StreamPollInterval = 250 * time.Millisecond
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Second
	}
	if cfg.AlarmInterval == 0 {
		cfg.AlarmInterval = 5 * time.Second
	}
	if cfg.MetricsInterval <= 0 {
		cfg.MetricsInterval = 5 * time.Second
	}
	if cfg.IteratorAgeInterval <= 0 {
		cfg.IteratorAgeInterval = time.Minute
	}
	if cfg.ScheduleSpeedup <= 0 {
		cfg.ScheduleSpeedup = 1
	}
	st := cfg.Stack
	if st == nil {
		if cfg.StackOptions.HostDir == "" {
			if root, err := localaws.RepoRoot(); err == nil {
				cfg.StackOptions.HostDir = filepath.Join(root, "build", "host")
			}
		}
		var err error
		if st, err = LoadStack(cfg.TemplatePath, cfg.StatePath, cfg.StackOptions); err != nil {
			return nil, fmt.Errorf("lambdasvc: %w", err)
		}
	}
	pos, err := loadPositions(cfg.PositionsPath)
	if err != nil {
		return nil, fmt.Errorf("lambdasvc: %w", err)
	}
	s := &Service{cfg: cfg, stack: st, log: cfg.Logger, pools: map[string]*pool{}, sqs: sqs.NewFromConfig(cfg.AWS), pos: pos,
		api: &lambdaAPI{now: time.Now}, live: map[string]*liveMapping{}}
	for _, m := range st.Queues {
		l := newLiveMapping(st.Name, m, st.Functions[m.Function].ARN, time.Now())
		s.api.mappings = append(s.api.mappings, l)
		s.live[m.LogicalID] = l
	}
	if s.lambda, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("lambdasvc: Lambda API listener: %w", err)
	}
	return s, nil
}

// LambdaEndpoint is the address of the service's Lambda API, which lists,
// reads and updates the stack's SQS event source mappings; the functions
// reach it through AWS_ENDPOINT_URL_LAMBDA.
func (s *Service) LambdaEndpoint() string { return "http://" + s.lambda.Addr().String() }

// Stack returns what the service runs.
func (s *Service) Stack() *Stack { return s.stack }

// Status reports every function's instances and counters, by name.
func (s *Service) Status() []FunctionStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]FunctionStatus, 0, len(s.pools))
	for _, p := range s.pools {
		out = append(out, p.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Invoke runs one synchronous invocation of a function by name, as
// Lambda's Invoke API with the RequestResponse type does. It fails when the
// service is not running or the function is unknown.
func (s *Service) Invoke(ctx context.Context, function string, payload []byte) (Result, error) {
	s.mu.Lock()
	p := s.pools[function]
	s.mu.Unlock()
	if p == nil {
		return Result{}, fmt.Errorf("lambdasvc: function %s is not running", function)
	}
	return p.invoke(ctx, payload)
}

// FunctionAccessKey is the access key id a function signs with. Each
// function has its own, so the local endpoint reports it as a sender of its
// own (SQS SenderId, STS UserId), as a function's role session is on AWS.
func FunctionAccessKey(function string) string { return "lambda-" + function }

// functionEnv is the environment of a function's emulator process: the
// template's variables, then the reserved ones Lambda sets.
func (s *Service) functionEnv(f *Function) []string {
	env := map[string]string{}
	for k, v := range s.cfg.Env {
		env[k] = v
	}
	for k, v := range f.Env {
		env[k] = v
	}
	for k, v := range s.cfg.Override {
		env[k] = v
	}
	reserved := map[string]string{
		"PATH":                            os.Getenv("PATH"),
		"TZ":                              ":UTC",
		"LANG":                            "en_US.UTF-8",
		"AWS_REGION":                      s.stack.Region,
		"AWS_DEFAULT_REGION":              s.stack.Region,
		"AWS_ENDPOINT_URL":                aws.ToString(s.cfg.AWS.BaseEndpoint),
		"AWS_ACCESS_KEY_ID":               FunctionAccessKey(f.Name),
		"AWS_SECRET_ACCESS_KEY":           "test",
		"AWS_LAMBDA_FUNCTION_NAME":        f.Name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(f.MemorySize),
		"AWS_LAMBDA_FUNCTION_TIMEOUT":     strconv.Itoa(f.Timeout),
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + f.Name,
		"AWS_LAMBDA_LOG_STREAM_NAME":      "local",
		"AWS_EXECUTION_ENV":               "AWS_Lambda_provided.al2023",
		"LAMBDA_TASK_ROOT":                filepath.Dir(f.Binary),
		"_HANDLER":                        "bootstrap",
	}
	if s.lambda != nil {
		reserved[EnvLambdaEndpoint] = s.LambdaEndpoint()
	}
	for k, v := range reserved {
		env[k] = v
	}
	// The emulator switches to its multi-concurrency mode when this is set.
	delete(env, "AWS_LAMBDA_MAX_CONCURRENCY")
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// concurrency is the number of instances and pollers a queue mapping gets
// now: its maximum concurrency as last set, else the default, within the
// service's limit.
func (s *Service) concurrency(m QueueMapping) int {
	n := m.MaxConcurrency
	if l := s.live[m.LogicalID]; l != nil {
		n = int(l.concurrency.Load())
	}
	if n <= 0 {
		n = s.cfg.DefaultConcurrency
	}
	return min(n, s.cfg.MaxConcurrency)
}

// Run starts the functions and the triggers and blocks until ctx ends. It
// then stops polling, lets in-flight invocations finish (bounded by the
// function timeout), stops the emulator instances it started and flushes
// metrics.
func (s *Service) Run(ctx context.Context) error {
	api := &http.Server{Handler: s.api, ReadHeaderTimeout: 10 * time.Second}
	defer api.Close()
	go func() { _ = api.Serve(s.lambda) }()
	if err := os.MkdirAll(s.cfg.LogDir, 0o755); err != nil {
		return fmt.Errorf("lambdasvc: log dir: %w", err)
	}
	s.fwd = newForwarder(NewCloudWatch(s.cfg.AWS), s.log, s.cfg.MetricsInterval)
	fwdCtx, stopFwd := context.WithCancel(context.WithoutCancel(ctx))
	fwdDone := make(chan struct{})
	go func() { s.fwd.run(fwdCtx); close(fwdDone) }()
	alarmsDone := make(chan struct{})
	if s.cfg.AlarmInterval > 0 {
		ev := &alarmeval.Evaluator{CW: NewCloudWatch(s.cfg.AWS), SNS: sns.NewFromConfig(s.cfg.AWS), Region: s.cfg.AWS.Region, Log: s.log}
		go func() { ev.Run(fwdCtx, s.cfg.AlarmInterval); close(alarmsDone) }()
	} else {
		close(alarmsDone)
	}
	s.ages = &iteratorAges{ages: map[string]time.Duration{}}

	// Instances per function: enough for its triggers, and one for direct
	// invocations of a function without any.
	// Queue mappings get room for the service's limit, started as far as
	// their concurrency asks: a mapping update may raise it later.
	want, eager := map[string]int{}, map[string]int{}
	for name := range s.stack.Functions {
		want[name] = 0
	}
	for _, m := range s.stack.Queues {
		want[m.Function] += s.cfg.MaxConcurrency
		eager[m.Function] += s.concurrency(m)
	}
	for _, m := range s.stack.Streams {
		want[m.Function]++
	}
	for _, sc := range s.stack.Schedules {
		for _, fn := range sc.Targets {
			want[fn] = max(want[fn], 1)
		}
	}
	for name, n := range want {
		want[name] = max(n, 1)
	}
	var files []*os.File
	cleanup := func() {
		s.mu.Lock()
		pools := make([]*pool, 0, len(s.pools))
		for _, p := range s.pools {
			pools = append(pools, p)
		}
		s.mu.Unlock()
		var wg sync.WaitGroup
		for _, p := range pools {
			wg.Go(p.stop)
		}
		wg.Wait()
		stopFwd()
		<-fwdDone
		<-alarmsDone
		for _, f := range files {
			f.Close()
		}
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		f := s.stack.Functions[name]
		lf, err := os.OpenFile(filepath.Join(s.cfg.LogDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			cleanup()
			return fmt.Errorf("lambdasvc: log file: %w", err)
		}
		files = append(files, lf)
		sink := &lineSink{w: lf, fwd: s.fwd, log: s.log, fn: name}
		e := eager[name]
		if e == 0 {
			e = want[name]
		}
		p := newPool(f, s.cfg.RIE, s.functionEnv(f), sink, want[name], e)
		s.mu.Lock()
		s.pools[name] = p
		s.mu.Unlock()
		if err := p.start(ctx); err != nil {
			cleanup()
			if ctx.Err() != nil {
				return nil // stopped while starting: what the caller asked for
			}
			return fmt.Errorf("lambdasvc: start %s: %w", name, err)
		}
		s.log.Info("function started", "function", name, "instances", p.eager, "upTo", cap(p.idle), "binary", f.Binary)
	}

	var wg sync.WaitGroup
	for _, m := range s.stack.Queues {
		url, err := queueURL(ctx, s.sqs, m.QueueARN)
		if err != nil {
			s.log.Error("queue mapping not started", "mapping", m.LogicalID, "err", err)
			continue
		}
		qm := newQueueMetrics(url, s.fwd.add)
		q := &queuePoller{m: m, live: s.live[m.LogicalID], url: url, region: s.stack.Region, sqs: s.sqs, fn: s.pools[m.Function], log: s.log,
			maxWait: int32(s.cfg.MaxWait), metrics: qm}
		q.limit = func() int { return s.concurrency(m) }
		wg.Go(func() { qm.run(ctx, s.cfg.MetricsInterval) })
		wg.Go(func() { q.run(ctx, s.cfg.MaxConcurrency); qm.flush(true) })
	}
	streams := dynamodbstreams.NewFromConfig(s.cfg.AWS)
	for _, m := range s.stack.Streams {
		sp := &streamPoller{m: m, fn: s.pools[m.Function], functionARN: s.stack.Functions[m.Function].ARN,
			streams: streams, sqs: s.sqs, log: s.log, region: s.stack.Region,
			poll: s.cfg.StreamPollInterval, retryDelay: s.cfg.RetryDelay, ages: s.ages, positions: s.pos}
		wg.Go(func() { sp.run(ctx) })
	}
	for _, sc := range s.stack.Schedules {
		sr := &scheduler{s: sc, region: s.stack.Region, account: s.stack.Account, log: s.log,
			speedup: s.cfg.ScheduleSpeedup, fireAtStart: s.cfg.FireAtStart, pools: s.pools}
		wg.Go(func() { sr.run(ctx) })
	}
	if len(s.stack.Streams) > 0 {
		cw := NewCloudWatch(s.cfg.AWS)
		wg.Go(func() { s.ages.publish(ctx, cw, s.cfg.IteratorAgeInterval, s.log) })
	}
	<-ctx.Done()
	// In-flight invocations may finish, within their functions' timeout;
	// after that the instances are stopped under them.
	triggers := make(chan struct{})
	go func() { wg.Wait(); close(triggers) }()
	select {
	case <-triggers:
	case <-time.After(s.drainLimit()):
		s.log.Warn("invocations still running at shutdown: stopping their instances")
	}
	cleanup()
	<-triggers
	return nil
}

// drainLimit bounds the wait for in-flight invocations at shutdown: the
// longest function timeout plus a margin for the emulator.
func (s *Service) drainLimit() time.Duration {
	longest := 0
	for _, f := range s.stack.Functions {
		longest = max(longest, f.Timeout)
	}
	return time.Duration(longest)*time.Second + 10*time.Second
}

// queueURL finds a queue's URL from its ARN.
func queueURL(ctx context.Context, c *sqs.Client, arn string) (string, error) {
	parts := splitARN(arn)
	if parts == nil {
		return "", fmt.Errorf("bad queue ARN %q", arn)
	}
	out, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
	if err != nil {
		return "", fmt.Errorf("queue %s: %w", arn, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

func splitARN(arn string) []string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[5] == "" {
		return nil
	}
	return parts
}
