// Package tunedemo runs the learning loop's proof on the embedded stack: a
// scripted scenario (a dependency slows down and fails, then the volume
// triples, then both recover) played twice on fresh local endpoints, once
// with the loop's kill switch on and once with the loop applying what its
// guardrails admit, measured from the cases' receipts. `make tune-demo`
// runs it (docs/learning.md).
package tunedemo

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/chargeback"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/tuner"
)

// Workflow is the scenario's workflow: one call to the tunable dependency,
// retried on 5xx.
//
//go:embed quote.yaml
var Workflow []byte

// tenant is the scenario's tenant.
const tenant = "demo"

// Phase is a stretch of the scenario: an arrival rate and how the
// dependency behaves.
type Phase struct {
	Name       string
	Duration   time.Duration
	Rate       float64 // start messages per second
	Dependency standin.Tunable
}

// DefaultPhases is the scenario: calm; the dependency slows to two seconds
// and fails three calls in ten; the volume triples on the degraded dependency;
// both recover.
func DefaultPhases() []Phase {
	calm, degraded := standin.Tunable{Delay: 100 * time.Millisecond}, standin.Tunable{Delay: 2 * time.Second, Fail: 0.3}
	return []Phase{
		{Name: "calm", Duration: time.Minute, Rate: 1.1, Dependency: calm},
		{Name: "degraded", Duration: 3 * time.Minute, Rate: 1.1, Dependency: degraded},
		{Name: "surge", Duration: 4 * time.Minute, Rate: 3.3, Dependency: degraded},
		{Name: "recovered", Duration: 2 * time.Minute, Rate: 1.1, Dependency: calm},
	}
}

// Config is one run's setup.
type Config struct {
	TemplatePath string // a template synthesized with the scenario's context (Makefile: tune-demo)
	HostDir      string // host builds of the functions
	WorkDir      string // logs and stack state of the runs
	Phases       []Phase
	// StartConcurrency is the work queue mapping's maximum concurrency when
	// the scenario starts (what an operator had set).
	StartConcurrency int32
	// Instances caps each function's instances in the local Lambda service.
	Instances int
	// Drain bounds the wait for the last cases after the last phase.
	Drain     time.Duration
	Objective Objective
	Progress  io.Writer
}

// Label names a run: loop-on or loop-off (its folder under WorkDir).
func Label(loop bool) string {
	if loop {
		return "loop-on"
	}
	return "loop-off"
}

// Run plays the scenario once on a fresh local endpoint, with the loop on
// or off, and measures it.
func Run(ctx context.Context, c Config, loop bool) (Figures, error) {
	label := Label(loop)
	logf := func(format string, args ...any) { fmt.Fprintf(c.Progress, "["+label+"] "+format+"\n", args...) }
	ep, err := localaws.Start(ctx)
	if err != nil {
		return Figures{}, fmt.Errorf("tune demo: %w", err)
	}
	defer func() { _ = ep.Stop() }()
	cfg, err := ep.Config(ctx)
	if err != nil {
		return Figures{}, err
	}
	dir := filepath.Join(c.WorkDir, label)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Figures{}, err
	}
	env, err := localrun.Up(ctx, localrun.Config{AWS: cfg, TemplatePath: c.TemplatePath, StatePath: filepath.Join(dir, "stack-state.json"),
		OutputsPath: filepath.Join(dir, "outputs.json"), LogDir: filepath.Join(dir, "logs"), HostDir: c.HostDir,
		Concurrency: c.Instances, Logger: slog.New(slog.NewTextHandler(c.Progress, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		return Figures{}, err
	}
	defer func() { _ = env.Close() }()
	logf("stack up on %s (function logs in %s)", ep.URL, filepath.Join(dir, "logs"))
	o := env.Outputs
	ddb, sq := dynamodb.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	lc := lambda.NewFromConfig(cfg, func(opt *lambda.Options) { opt.BaseEndpoint = aws.String(env.Lambda.LambdaEndpoint()) })
	reg := registry.New(ddb, o[stack.OutStateTable])
	e, _, err := reg.Push(ctx, Workflow)
	if err != nil {
		return Figures{}, err
	}
	if err := reg.Share(ctx, e.Namespace, true); err != nil {
		return Figures{}, err
	}
	items := tuner.Items{DB: ddb, Table: o[stack.OutStateTable]}
	sw, err := items.Switches(ctx)
	if err != nil {
		return Figures{}, err
	}
	off := !loop
	sw.KillSwitch = &off
	if err := items.SaveSwitches(ctx, &sw); err != nil {
		return Figures{}, err
	}
	mapping, err := workMapping(ctx, lc, o[stack.OutWorkQueueArn])
	if err != nil {
		return Figures{}, err
	}
	if _, err := lc.UpdateEventSourceMapping(ctx, &lambda.UpdateEventSourceMappingInput{UUID: aws.String(mapping),
		ScalingConfig: &lambdatypes.ScalingConfig{MaximumConcurrency: aws.Int32(c.StartConcurrency)}}); err != nil {
		return Figures{}, fmt.Errorf("tune demo: set the starting concurrency: %w", err)
	}

	// Phases start on a minute boundary, as the loop's windows do.
	start := time.Now().Truncate(time.Minute).Add(time.Minute)
	logf("kill switch %s; max concurrency %d; scenario starts at %s", onOff(off), c.StartConcurrency, start.Format("15:04:05"))
	if err := sleep(ctx, time.Until(start)); err != nil {
		return Figures{}, err
	}
	var (
		mu      sync.Mutex
		samples []Sample
		backlog int64
	)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			v, werr := mappingConcurrency(watchCtx, lc, mapping)
			d, derr := depth(watchCtx, sq, o[stack.OutWorkQueueURL])
			if werr == nil && derr == nil {
				mu.Lock()
				samples = append(samples, Sample{At: time.Since(start), Value: v})
				backlog = max(backlog, d)
				mu.Unlock()
			}
			if sleep(watchCtx, 5*time.Second) != nil {
				return
			}
		}
	}()
	q := queue.NewSender(sq, o[stack.OutWorkQueueURL])
	var cases []localrun.Case
	sent := map[string]time.Time{}
	n := 0
	for _, p := range c.Phases {
		env.Standin.SetTunable(p.Dependency)
		mu.Lock()
		b := backlog
		mu.Unlock()
		logf("%s  phase %-9s %.1f cases/s, dependency %s and failing %.0f %% of calls (most waiting so far %d)",
			fmtOffset(time.Since(start)), p.Name, p.Rate, p.Dependency.Delay, p.Dependency.Fail*100, b)
		end := time.Now().Add(p.Duration)
		due := 0.0
		for tick := time.NewTicker(250 * time.Millisecond); time.Now().Before(end); {
			select {
			case <-ctx.Done():
				tick.Stop()
				return Figures{}, ctx.Err()
			case <-tick.C:
			}
			due += p.Rate / 4
			var batch []localrun.Case
			for ; due >= 1; due-- {
				n++
				key := fmt.Sprintf("tune-%s-%05d", label, n)
				batch = append(batch, localrun.Case{Namespace: e.Namespace, Workflow: e.Name, Tenant: tenant, Key: key,
					ID: message.CaseID(tenant, e.Namespace, e.Name, key), Input: []byte(`{"quoteId":"` + key + `"}`)})
			}
			if len(batch) == 0 {
				continue
			}
			now := time.Now()
			if err := localrun.Submit(ctx, q, batch); err != nil {
				tick.Stop()
				return Figures{}, fmt.Errorf("tune demo: send: %w", err)
			}
			for _, cs := range batch {
				sent[cs.ID] = now
			}
			cases = append(cases, batch...)
		}
	}
	logf("%s  %d cases sent; waiting up to %s for the last to end", fmtOffset(time.Since(start)), len(cases), c.Drain)
	chains := store.NewReceipts(ddb, o[stack.OutReceiptsTable])
	chains.Blobs = objects.NewBlobs(objects.New(objects.NewClient(cfg), o[stack.OutPayloadBucket]), store.NewState(ddb, o[stack.OutStateTable]))
	actx, cancel := context.WithTimeout(ctx, c.Drain)
	if err := localrun.Await(actx, cases, chains, store.NewCases(ddb, o[stack.OutStateTable]), q, nil); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		cancel()
		return Figures{}, err
	}
	cancel()
	stopWatch()
	<-watchDone
	logf("%s  reading %d chains", fmtOffset(time.Since(start)), len(cases))

	ended, priced, err := readCases(ctx, chains, cases, sent)
	if err != nil {
		return Figures{}, err
	}
	f := Measure(ended, c.Objective)
	f.Loop, f.Concurrency, f.MaxBacklog = loop, samples, backlog
	if f.CostPerCase, err = costPerCase(priced); err != nil {
		return Figures{}, err
	}
	if f.DLQ, err = depth(ctx, sq, o[stack.OutDeadLetterURL]); err != nil {
		return Figures{}, err
	}
	if f.Changes, err = changes(ctx, items, chains, start); err != nil {
		return Figures{}, err
	}
	return f, nil
}

// readCases reads every case's chain: its times and outcome, and the
// verified chains' charges.
func readCases(ctx context.Context, chains *store.Receipts, cases []localrun.Case, sent map[string]time.Time) ([]Ended, []chargeback.Case, error) {
	var out []Ended
	var priced []chargeback.Case
	for _, c := range cases {
		rs, items, _, err := chains.StoredChain(ctx, c.ID)
		if err != nil {
			return nil, nil, err
		}
		e := Ended{Sent: sent[c.ID]}
		if len(rs) > 0 && rs[len(rs)-1].Type.Terminal() {
			e.Status, e.Started, e.Ended = rs[len(rs)-1].Type, localrun.At(rs[0]), localrun.At(rs[len(rs)-1])
			if len(receipt.VerifyChain(rs)) == 0 {
				if ch, err := chargeback.FromChain(rs, items); err == nil {
					priced = append(priced, ch)
				}
			}
		}
		out = append(out, e)
	}
	return out, priced, nil
}

// costPerCase prices the cases' receipts with the current price table.
func costPerCase(cases []chargeback.Case) (float64, error) {
	if len(cases) == 0 {
		return 0, nil
	}
	t, err := cost.Load(cost.DefaultVersion)
	if err != nil {
		return 0, err
	}
	r, err := chargeback.Build(t, "", chargeback.ByWorkflow, cases, nil, nil)
	if err != nil {
		return 0, err
	}
	total, n := new(big.Rat), int64(0)
	for _, l := range r.Lines {
		total.Add(total, l.Total())
		n += l.Cases
	}
	v, _ := new(big.Rat).Quo(total, big.NewRat(max(n, 1), 1)).Float64()
	return v, nil
}

// changes reads the system chain and the verdicts of its changes.
func changes(ctx context.Context, items tuner.Items, chains *store.Receipts, start time.Time) ([]Change, error) {
	cs, err := (&tuner.Chain{Store: chains}).Changes(ctx)
	if err != nil {
		return nil, err
	}
	st, err := items.State(ctx)
	if err != nil {
		return nil, err
	}
	verdict := map[string]string{}
	for _, v := range st.Verdicts {
		if v.Kept {
			verdict[v.ChangeID] = "kept"
		} else {
			verdict[v.ChangeID] = "rolled back (" + v.Reason + ")"
		}
	}
	var out []Change
	for _, c := range cs {
		out = append(out, Change{At: c.At.Sub(start), Change: c, Verdict: verdict[c.ID]})
	}
	return out, nil
}

func workMapping(ctx context.Context, lc *lambda.Client, queueArn string) (string, error) {
	out, err := lc.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{EventSourceArn: aws.String(queueArn)})
	if err != nil {
		return "", fmt.Errorf("tune demo: list the work queue's mapping: %w", err)
	}
	if len(out.EventSourceMappings) != 1 {
		return "", fmt.Errorf("tune demo: %d mappings of the work queue, want 1", len(out.EventSourceMappings))
	}
	return aws.ToString(out.EventSourceMappings[0].UUID), nil
}

func mappingConcurrency(ctx context.Context, lc *lambda.Client, uuid string) (int64, error) {
	out, err := lc.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: aws.String(uuid)})
	if err != nil {
		return 0, err
	}
	if out.ScalingConfig == nil {
		return 0, nil
	}
	return int64(aws.ToInt32(out.ScalingConfig.MaximumConcurrency)), nil
}

// depth is the messages waiting in a queue (tuner.SQSDepth reads it).
func depth(ctx context.Context, sq *sqs.Client, url string) (int64, error) {
	waiting, _, err := tuner.SQSDepth{Client: sq, URL: url}.Depth(ctx)
	return waiting, err
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
