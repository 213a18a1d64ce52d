package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/localstack/lambdasvc"
	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/secrets"
	"github.com/knhk/knhk/shared/slajob"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// Environment variables of the suite.
const (
	envExternal = "KNHK_E2E_EXTERNAL" // "1": run against a deployed stack
	envOutputs  = "KNHK_E2E_OUTPUTS"  // that stack's outputs file (default .local/outputs.json)
	envLoad     = "KNHK_E2E_LOAD"     // "1": run the load measurement
)

// maxReceiveCount is the work queue's redrive setting in the template.
const maxReceiveCount = 5

// suite is the stack under test, shared by every scenario.
var suite struct {
	external bool
	cfg      aws.Config
	res      stack.Resources
	db       *dynamodb.Client
	sqs      *sqs.Client
	sns      *sns.Client
	cw       *cloudwatch.Client
	work     *queue.Sender
	chains   *store.Receipts
	cases    *store.Cases
	findings *store.Findings
	reg      *registry.Registry
	samples  []localrun.Sample
	tenant   string
	run      string // unique per suite run: keys, claim ids and queue names
	env      *localrun.Env
	logDir   string
	tmp      string // self-contained: state, outputs, logs and fixtures
	spans    string // self-contained: the local trace receiver's spans file
	requests string // self-contained: the endpoint's log of traced requests
	endpoint string // self-contained: the local endpoint's URL
	template string // self-contained: the synthesized template
}

func TestMain(m *testing.M) {
	flag.Parse()
	code, err := runSuite(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func runSuite(m *testing.M) (int, error) {
	ctx := context.Background()
	root, err := localaws.RepoRoot()
	if err != nil {
		return 1, err
	}
	samples, err := localrun.LoadSamples(filepath.Join(root, "events"))
	if err != nil {
		return 1, err
	}
	suite.samples = samples
	suite.run = time.Now().UTC().Format("20060102T150405")
	suite.tenant = "e2e-" + suite.run
	if os.Getenv(envExternal) == "1" {
		if err := external(ctx, root); err != nil {
			return 1, err
		}
	} else {
		stop, err := selfContained(ctx, root)
		if err != nil {
			return 1, err
		}
		defer stop()
	}
	if err := publish(ctx); err != nil {
		return 1, err
	}
	code := m.Run()
	if code != 0 && suite.logDir != "" {
		fmt.Fprintf(os.Stderr, "e2e: function logs are in %s\n", suite.logDir)
	}
	return code, nil
}

// selfContained starts a private endpoint and the whole stack on it, and
// returns the function that stops both.
func selfContained(ctx context.Context, root string) (func(), error) {
	tpl := filepath.Join(root, "infra", "cdk.out", "KnhkStack.template.json")
	hostDir := filepath.Join(root, "build", "host")
	for _, p := range []string{tpl, filepath.Join(hostDir, "executor"), filepath.Join(hostDir, "verifier")} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s is missing: run `make build synth`", p)
		}
	}
	tmp, err := os.MkdirTemp("", "knhk-e2e-")
	if err != nil {
		return nil, err
	}
	suite.tmp, suite.template = tmp, tpl
	suite.requests = filepath.Join(tmp, "requests.jsonl")
	os.Setenv(localaws.EnvRequests, suite.requests)
	ep, err := localaws.Start(ctx)
	os.Unsetenv(localaws.EnvRequests)
	if err != nil {
		return nil, fmt.Errorf("start local endpoint: %w", err)
	}
	cfg, err := ep.Config(ctx)
	if err != nil {
		_ = ep.Stop()
		return nil, err
	}
	suite.logDir = filepath.Join(tmp, "logs")
	suite.spans = filepath.Join(tmp, "spans.jsonl")
	suite.endpoint = ep.URL
	// The functions run with the fixture's environment from the start.
	base := filepath.Join(tmp, "fixture-base", filepath.Base(tpl))
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		_ = ep.Stop()
		return nil, err
	}
	if err := writeFixtureTemplate(tpl, base, baseVisibilityTimeout); err != nil {
		_ = ep.Stop()
		return nil, err
	}
	env, err := localrun.Up(ctx, localrun.Config{AWS: cfg, TemplatePath: base,
		StatePath: filepath.Join(tmp, "stack-state.json"), OutputsPath: filepath.Join(tmp, "outputs.json"),
		LogDir: suite.logDir, HostDir: hostDir, SpansPath: suite.spans,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		_ = ep.Stop()
		return nil, err
	}
	suite.env = env
	res, err := stack.Resolve(filepath.Join(tmp, "outputs.json"))
	if err != nil {
		_ = env.Close()
		_ = ep.Stop()
		return nil, err
	}
	bind(cfg, res)
	if err := deployVisibility(ctx, baseVisibilityTimeout); err != nil {
		_ = env.Close()
		_ = ep.Stop()
		return nil, err
	}
	sm := secretsmanager.NewFromConfig(cfg)
	if _, err := localrun.SeedSecrets(ctx, sm, secrets.DefaultPrefix, suite.samples); err != nil {
		_ = env.Close()
		_ = ep.Stop()
		return nil, err
	}
	return func() {
		if err := env.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stop local Lambda service:", err)
		}
		_ = ep.Stop()
		if !keepLogs {
			_ = os.RemoveAll(tmp)
		}
	}, nil
}

// keepLogs is set when a scenario failed, so that the log folder printed
// at the end still exists.
var keepLogs bool

// baseVisibilityTimeout is the work queue's visibility timeout for the
// self-contained suite: the executor's function timeout (60 s) instead of
// the synthesized 360 s (6x, AWS's advice for SQS-triggered functions).
// An invocation that runs out of time on a loaded local endpoint hands its
// unfinished messages back; they should not wait six minutes to be
// received again. Messages are still never received twice while an
// invocation could be working on them.
const baseVisibilityTimeout = 60

// deployVisibility redeploys the self-contained stack from a copy of the
// template whose work queue has the given visibility timeout. This is a
// test fixture: the stack's functions and mappings are unchanged, and the
// provisioner only updates the queue's attribute.
func deployVisibility(ctx context.Context, seconds int) error {
	dir, err := os.MkdirTemp(suite.tmp, "fixture-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fixture := filepath.Join(dir, filepath.Base(suite.template)) // same file name: same stack name
	if err := writeFixtureTemplate(suite.template, fixture, seconds); err != nil {
		return err
	}
	_, err = provision.DeployFile(ctx, suite.cfg, fixture, provision.Options{
		StateFile: filepath.Join(suite.tmp, "stack-state.json"), OutputsFile: filepath.Join(dir, "outputs.json")})
	if err != nil {
		return fmt.Errorf("deploy a template with visibility timeout %d s: %w", seconds, err)
	}
	return nil
}

// withVisibilityTimeout sets the work queue's visibility timeout for one
// test and restores the suite's baseline when it ends.
func withVisibilityTimeout(t *testing.T, seconds int) {
	t.Helper()
	if suite.external {
		t.Fatal("withVisibilityTimeout: only in the self-contained mode")
	}
	if err := deployVisibility(t.Context(), seconds); err != nil {
		t.Fatal(err)
	}
	out, err := suite.sqs.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(suite.res.WorkQueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameVisibilityTimeout}})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Attributes[string(sqstypes.QueueAttributeNameVisibilityTimeout)]; got != strconv.Itoa(seconds) {
		t.Fatalf("work queue visibility timeout %s after deploying the fixture, want %d", got, seconds)
	}
	// SQS applies the visibility timeout in force when a ReceiveMessage call
	// starts; the local Lambda service long-polls for up to 20 s, so a
	// message could still be taken under the old timeout until the polls in
	// flight have returned.
	time.Sleep(21 * time.Second)
	t.Cleanup(func() {
		if err := deployVisibility(context.WithoutCancel(t.Context()), baseVisibilityTimeout); err != nil {
			t.Errorf("restore the visibility timeout: %v", err)
		}
	})
}

// The self-contained suite's SLA job shortens the burn-rate windows sixty
// times (the page rules' hour is a minute) and guards them with fewer
// events, so that a breach pages and recovers within minutes.
const (
	fixtureSLAWindowDivisor = "60"
	fixtureSLAMinEvents     = "5"
)

// writeFixtureTemplate copies the synthesized template, setting the work
// queue's visibility timeout and the SLA job's windows.
func writeFixtureTemplate(src, dst string, seconds int) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var tpl map[string]any
	if err := json.Unmarshal(b, &tpl); err != nil {
		return fmt.Errorf("template %s: %w", src, err)
	}
	resources, _ := tpl["Resources"].(map[string]any)
	found := 0
	for id, r := range resources {
		res, _ := r.(map[string]any)
		props, _ := res["Properties"].(map[string]any)
		if res["Type"] == "AWS::SQS::Queue" && strings.HasPrefix(id, "WorkQueue") && props != nil {
			props["VisibilityTimeout"] = seconds
			found++
		}
	}
	if found != 1 {
		return fmt.Errorf("template %s: want one work queue, found %d", src, found)
	}
	found = 0
	for id, r := range resources {
		res, _ := r.(map[string]any)
		props, _ := res["Properties"].(map[string]any)
		env, _ := props["Environment"].(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		if res["Type"] == "AWS::Lambda::Function" && strings.HasPrefix(id, "Sla") && vars != nil {
			vars[slajob.EnvWindowDivisor] = fixtureSLAWindowDivisor
			vars[slajob.EnvMinEvents] = fixtureSLAMinEvents
			found++
		}
	}
	if found != 1 {
		return fmt.Errorf("template %s: want one SLA function, found %d", src, found)
	}
	out, err := json.Marshal(tpl)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, out, 0o644)
}

// external binds the suite to a deployed stack.
func external(ctx context.Context, root string) error {
	outputs := os.Getenv(envOutputs)
	if outputs == "" {
		outputs = filepath.Join(root, stack.DefaultOutputsFile)
	}
	res, err := stack.Resolve(outputs)
	if err != nil {
		return err
	}
	if res.WorkQueueURL == "" || res.ReceiptsTable == "" || res.StateTable == "" {
		return fmt.Errorf("no stack resources in %s or the environment (set %s)", outputs, envOutputs)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("AWS configuration: %w", err)
	}
	suite.external = true
	bind(cfg, res)
	return nil
}

func bind(cfg aws.Config, res stack.Resources) {
	suite.cfg, suite.res = cfg, res
	suite.db = dynamodb.NewFromConfig(cfg)
	suite.sqs = sqs.NewFromConfig(cfg)
	suite.sns = sns.NewFromConfig(cfg)
	suite.cw = lambdasvc.NewCloudWatch(cfg)
	suite.work = queue.NewSender(suite.sqs, res.WorkQueueURL)
	suite.chains = store.NewReceipts(suite.db, res.ReceiptsTable)
	// Detached payloads as the executor stores them: the payloads bucket,
	// the state table for a stack without one.
	suite.chains.Blobs = store.NewState(suite.db, res.StateTable)
	if res.PayloadBucket != "" {
		suite.chains.Blobs = objects.NewBlobs(objects.New(objects.NewClient(cfg), res.PayloadBucket), store.NewState(suite.db, res.StateTable))
	}
	suite.cases = store.NewCases(suite.db, res.StateTable)
	suite.findings = store.NewFindings(suite.db, res.StateTable)
	suite.reg = registry.New(suite.db, res.StateTable)
}

// publish pushes the suite's own workflows, and in the self-contained mode
// the samples too (a deployed stack has them already).
func publish(ctx context.Context) error {
	var bodies [][]byte
	if !suite.external {
		for _, s := range suite.samples {
			bodies = append(bodies, s.Body)
		}
	}
	own, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range own {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		bodies = append(bodies, b)
	}
	for _, b := range bodies {
		e, _, err := suite.reg.Push(ctx, b)
		if err != nil {
			return fmt.Errorf("publish workflow: %w", err)
		}
		// The suite's tenant runs them (a tenant new with every run).
		if err := suite.reg.Share(ctx, e.Namespace, true); err != nil {
			return err
		}
	}
	return nil
}

// --- helpers shared by the scenarios ---

// ctxFor is a context bounded by d and by the test's own deadline.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func noteFailure(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			keepLogs = true
		}
	})
}

// newCase builds one case of a workflow with a key unique to this run.
func newCase(ns, name, key string, input any) localrun.Case {
	raw, _ := json.Marshal(input)
	key = suite.run + "-" + key
	return localrun.Case{Namespace: ns, Workflow: name, Tenant: suite.tenant, Key: key, Input: raw,
		ID: message.CaseID(suite.tenant, ns, name, key)}
}

// awaitAll waits until every case ended (answering insurance claims'
// adjusters), then reads and verifies every chain.
func awaitAll(t *testing.T, ctx context.Context, cases []localrun.Case) []localrun.Outcome {
	t.Helper()
	if err := localrun.Await(ctx, cases, suite.chains, suite.cases, suite.work, nil); err != nil {
		t.Fatalf("await cases: %v", err)
	}
	outs, err := localrun.Collect(ctx, cases, suite.chains)
	if err != nil {
		t.Fatalf("read chains: %v", err)
	}
	return outs
}

// readChain reads a case's chain and fails the test on any finding.
func readChain(t *testing.T, ctx context.Context, id string) []*receipt.Receipt {
	t.Helper()
	rs, bad, err := suite.chains.Chain(ctx, id)
	if err != nil {
		t.Fatalf("read chain %s: %v", id, err)
	}
	if fs := append(bad, receipt.VerifyChain(rs)...); len(fs) > 0 {
		t.Fatalf("chain %s does not verify: %v", id, fs)
	}
	return rs
}

// identity is what makes an event unique within a case.
type identity struct {
	Type    history.Type
	Key     string
	Attempt int
}

// duplicates lists the event identities that occur more than once.
func duplicates(rs []*receipt.Receipt) []identity {
	seen := map[identity]int{}
	for _, r := range rs {
		seen[identity{r.Type, r.Key, r.Attempt}]++
	}
	var out []identity
	for id, n := range seen {
		if n > 1 {
			out = append(out, id)
		}
	}
	return out
}

// types lists a chain's event types in order.
func types(rs []*receipt.Receipt) []history.Type {
	out := make([]history.Type, len(rs))
	for i, r := range rs {
		out[i] = r.Type
	}
	return out
}

func count(rs []*receipt.Receipt, t history.Type) int {
	return len(slices.DeleteFunc(types(rs), func(x history.Type) bool { return x != t }))
}

// output is the case's output from its terminal receipt.
func output(t *testing.T, rs []*receipt.Receipt) string {
	t.Helper()
	last := rs[len(rs)-1]
	if last.Type != history.CaseCompleted {
		t.Fatalf("case %s ended with %s (%+v), want %s", last.CaseID, last.Type, last.Error, history.CaseCompleted)
	}
	return canonical(t, last.Output)
}

// canonical re-encodes JSON with sorted keys for comparison.
func canonical(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %s: %v", b, err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// poll calls f every interval until it reports done or ctx ends.
func poll(ctx context.Context, interval time.Duration, f func() (bool, error)) error {
	for {
		done, err := f()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
