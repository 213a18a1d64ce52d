package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/store"
)

// TestArchiveRefusedRetry on the local endpoint: `archive refused` lists
// the archiver's refusals soonest retry first (table and JSON);
// `archive retry` makes one due now, so that the archiver's next query of
// due cases returns it, keeping its attempts; a case not refused exits 1.
func TestArchiveRefusedRetry(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	if err := store.CreateTables(ctx, db, "receipts-refused", "state-refused"); err != nil {
		t.Fatal(err)
	}
	refusals := store.NewRefusals(db, "state-refused")
	first := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	later := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC) // far from any run
	for i, id := range []string{"tampered", "mismatch"} {
		if err := refusals.Put(ctx, store.RefusedCase{Tenant: "acme", CaseID: id, HeadSeq: 4, HeadHash: strings.Repeat("a", 64),
			LeafIndex: uint64(i), Checkpoint: 1, Reason: "archive refused: " + id, Attempts: 3 - i, FirstAt: first, LastAt: first,
			NextAt: later.Add(time.Duration(-i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": ep.URL, "AWS_REGION": localaws.Region, "AWS_ACCESS_KEY_ID": "test",
		"AWS_SECRET_ACCESS_KEY": "test", "KNHK_STATE_TABLE": "state-refused"} {
		t.Setenv(k, v)
	}
	noOutputs := filepath.Join(t.TempDir(), "none.json")

	out, errOut, code := run(t, "archive", "refused", "--outputs", noOutputs)
	if code != 0 || !strings.Contains(out, "2 refused") || strings.Index(out, "mismatch") > strings.Index(out, "tampered") {
		t.Fatalf("refused: exit %d %q %q", code, out, errOut)
	}
	out, _, code = run(t, "archive", "refused", "--json", "--outputs", noOutputs)
	var listed []store.RefusedCase
	if err := json.Unmarshal([]byte(out), &listed); code != 0 || err != nil || len(listed) != 2 || listed[0].CaseID != "mismatch" ||
		listed[1].Attempts != 3 || listed[1].Reason != "archive refused: tampered" {
		t.Fatalf("refused --json: exit %d %v %+v", code, err, listed)
	}
	if due, err := refusals.Due(ctx, time.Now(), 10); err != nil || len(due) != 0 {
		t.Fatalf("due before the retry: %+v %v", due, err)
	}
	if out, errOut, code := run(t, "archive", "retry", "tampered", "--outputs", noOutputs); code != 0 || !strings.Contains(out, "case tampered: due") {
		t.Fatalf("retry: exit %d %q %q", code, out, errOut)
	}
	due, err := refusals.Due(ctx, time.Now(), 10)
	if err != nil || len(due) != 1 || due[0].CaseID != "tampered" || due[0].Attempts != 3 || !due[0].NextAt.Before(later) {
		t.Fatalf("due after the retry: %+v %v", due, err)
	}
	if _, _, code := run(t, "archive", "retry", "never-refused", "--outputs", noOutputs); code != 1 {
		t.Fatalf("retry of a case not refused: exit %d, want 1", code)
	}
}
