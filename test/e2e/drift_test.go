package e2e

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// TestServedStackSurvivesEndpointReset (self-contained: a private endpoint
// and stack) serves a stack as a serving `knhk run` does, empties the
// endpoint under it (as a restart of the endpoint would), and checks that
// the loss is noticed in one line, the stack is deployed again, and a case
// started afterwards completes and is verified from the new table's stream.
func TestServedStackSurvivesEndpointReset(t *testing.T) {
	noteFailure(t)
	if suite.external || suite.env == nil {
		t.Skip("needs the self-contained suite's template and builds")
	}
	ctx := ctxFor(t, 4*time.Minute)
	ep := localaws.StartT(t)
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	up := localrun.Config{AWS: cfg, TemplatePath: suite.template, StatePath: filepath.Join(dir, "stack-state.json"),
		OutputsPath: filepath.Join(dir, "outputs.json"), LogDir: filepath.Join(dir, "logs"),
		HostDir: filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(suite.template))), "build", "host"), Concurrency: 1,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	env, err := localrun.Up(ctx, up)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join("testdata", "five-tasks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	publish := func(e *localrun.Env) error {
		reg := registry.New(db, e.Outputs[stack.OutStateTable])
		w, _, err := reg.Push(ctx, body)
		if err != nil {
			return err
		}
		return reg.Share(ctx, w.Namespace, true)
	}
	if err := publish(env); err != nil {
		t.Fatal(err)
	}
	if why, err := localrun.Drift(ctx, db, env.Lambda.Stack()); err != nil || why != "" {
		t.Fatalf("drift of a freshly deployed stack: %q, %v", why, err)
	}

	notes := make(chan string, 8)
	served := make(chan *localrun.Env, 1)
	kctx, stop := context.WithCancel(ctx)
	kept := make(chan error, 1)
	go func() {
		last, err := localrun.Keep(kctx, up, env, 200*time.Millisecond, func(l string) { notes <- l }, func(e *localrun.Env) error {
			served <- e
			return publish(e)
		})
		if last != nil {
			_ = last.Close()
		}
		kept <- err
	}()
	t.Cleanup(func() {
		stop()
		if err := <-kept; err != nil {
			t.Errorf("keep: %v", err)
		}
	})
	if err := ep.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	var next *localrun.Env
	select {
	case next = <-served:
	case <-ctx.Done():
		t.Fatal("the lost stack was not deployed again")
	}
	select {
	case line := <-notes:
		if !strings.Contains(line, "is gone from the endpoint") || !strings.Contains(line, "deployed the stack again") {
			t.Errorf("note %q, want the loss and the redeploy in one line", line)
		}
	case <-ctx.Done():
		t.Fatal("no note of the redeploy")
	}

	o := next.Outputs
	c := localrun.Case{Namespace: "e2e", Workflow: "five-tasks", Tenant: suite.tenant, Key: suite.run + "-after-reset",
		Input: []byte(`{"qty":2,"unitPrice":5}`)}
	c.ID = message.CaseID(c.Tenant, c.Namespace, c.Workflow, c.Key)
	q := queue.NewSender(sqs.NewFromConfig(cfg), o[stack.OutWorkQueueURL])
	chains := store.NewReceipts(db, o[stack.OutReceiptsTable])
	cases := store.NewCases(db, o[stack.OutStateTable])
	if err := localrun.Submit(ctx, q, []localrun.Case{c}); err != nil {
		t.Fatal(err)
	}
	if err := localrun.Await(ctx, []localrun.Case{c}, chains, cases, q, nil); err != nil {
		t.Fatal(err)
	}
	rs, _, err := chains.Chain(ctx, c.ID)
	if err != nil || len(rs) == 0 {
		t.Fatalf("chain after the redeploy: %d receipts, %v", len(rs), err)
	}
	head := rs[len(rs)-1]
	// The verifier reads the new table's stream: the case's verified
	// position reaches its head.
	if err := poll(ctx, 250*time.Millisecond, func() (bool, error) {
		ws, err := cases.Watermarks(ctx, []string{c.ID})
		return err == nil && ws[c.ID].Seq == head.Seq && ws[c.ID].Hash == head.Hash, err
	}); err != nil {
		t.Fatalf("the verifier never reached the head of a case started after the redeploy: %v", err)
	}
}
