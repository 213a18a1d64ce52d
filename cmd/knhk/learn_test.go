package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/shared/learn"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/tuner"
)

type cliMapping struct{ s tuner.MappingSettings }

func (m *cliMapping) Settings(context.Context) (tuner.MappingSettings, error) { return m.s, nil }
func (m *cliMapping) Set(_ context.Context, k learn.SettingKind, v int64) error {
	if k == learn.MaxConcurrency {
		m.s.MaxConcurrency = v
	}
	return nil
}

type cliQueue struct{}

func (cliQueue) Depth(context.Context) (int64, int64, error) { return 0, 0, nil }

// TestLearnCommands runs the loop in recommendation-only mode on a local
// stack's tables, then shows, approves and rejects its recommendations
// and sets the kill switch with `knhk learn`.
func TestLearnCommands(t *testing.T) {
	ep := localaws.StartT(t)
	outs := provision.DeployForTest(t, ep)
	outFile := filepath.Join(t.TempDir(), "outputs.json")
	b, _ := json.Marshal(outs)
	if err := os.WriteFile(outFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": ep.URL, "AWS_REGION": localaws.Region,
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ddb := dynamodb.NewFromConfig(cfg)
	state, receipts := outs[stack.OutStateTable], outs[stack.OutReceiptsTable]
	slis := store.NewSLIs(ddb, state)
	now := time.Now().UTC().Truncate(time.Minute)
	var bs []*sla.Bucket
	for m := now.Add(-5 * time.Minute); m.Before(now); m = m.Add(time.Minute) {
		bk := sla.NewBucket("orders/place", m)
		for range 30 {
			_ = bk.Observe(sla.Completed, 2*time.Second) // p99 above the 1 s objective
		}
		bs = append(bs, bk)
	}
	if err := slis.PutBuckets(ctx, "cli", bs); err != nil {
		t.Fatal(err)
	}
	p, err := tuner.ParseConfig(`{"allow":["maxConcurrency"]}`, 10)
	if err != nil {
		t.Fatal(err)
	}
	mapping := &cliMapping{s: tuner.MappingSettings{MaxConcurrency: 8, BatchSize: 10}}
	clock := now
	job, err := tuner.New(p, tuner.Deps{Buckets: slis, Lease: store.NewLeases(ddb, state), Mapping: mapping, Queue: cliQueue{},
		Items: tuner.Items{DB: ddb, Table: state}, Chain: &tuner.Chain{Store: store.NewReceipts(ddb, receipts)}, Reserved: 10,
		Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := job.Run(ctx)
	if err != nil || len(res.Open) != 1 {
		t.Fatalf("recommendation-only run: %+v, %v", res, err)
	}
	id := res.Open[0].ID

	out, errOut, code := run(t, "learn", "--outputs", outFile)
	if code != 0 {
		t.Fatalf("learn: %d %q", code, errOut)
	}
	for _, want := range []string{"kill switch off, recommendation only", "maxConcurrency:work", id, "8 → 4", "concurrency-gradient", "P99ms 20"} {
		if !strings.Contains(out, want) {
			t.Errorf("learn output lacks %q:\n%s", want, out)
		}
	}
	if _, _, code := run(t, "learn", "apply", "nope", "--outputs", outFile); code != 1 {
		t.Errorf("apply of an unknown id exited %d, want 1", code)
	}
	if _, _, code := run(t, "learn", "kill-switch", "maybe", "--outputs", outFile); code != 2 {
		t.Errorf("kill-switch maybe exited %d, want 2", code)
	}
	if out, errOut, code := run(t, "learn", "apply", id, "--outputs", outFile); code != 0 || !strings.Contains(out, "approved") {
		t.Fatalf("apply: %d %q %q", code, out, errOut)
	}
	clock = clock.Add(time.Minute)
	if res, err = job.Run(ctx); err != nil || len(res.Applied) != 1 || mapping.s.MaxConcurrency != 6 {
		t.Fatalf("run after approval: %+v, %v", res, err)
	}
	out, _, code = run(t, "learn", "--json", "--outputs", outFile)
	var v learnView
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil {
		t.Fatalf("learn --json: %d %v %q", code, err, out)
	}
	if v.Knowledge["maxConcurrency:work"] != 6 || len(v.Changes) != 1 || v.Changes[0].ID != id || len(v.Decisions) != 1 || v.Decisions[0].Outcome != "applied" {
		t.Fatalf("learn view after the change: %+v", v)
	}
	if out, _, code := run(t, "learn", "kill-switch", "on", "--outputs", outFile); code != 0 || out != "kill-switch on\n" {
		t.Fatalf("kill-switch on: %d %q", code, out)
	}
	clock = clock.Add(10 * time.Minute)
	if res, err = job.Run(ctx); err != nil || !res.KillSwitch || len(res.Applied)+len(res.RolledBack) != 0 {
		t.Fatalf("run with the kill switch on: %+v, %v", res, err)
	}
	if out, _, _ := run(t, "learn", "--outputs", outFile); !strings.Contains(out, "kill switch on") || !strings.Contains(out, "operator switches: kill switch on") {
		t.Errorf("learn output after kill-switch on:\n%s", out)
	}
}
