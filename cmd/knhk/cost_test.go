package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/big"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knhk/knhk/shared/chargeback"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/costjob"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/stack"
)

// TestCapacityHandComputation: the sample mix is docs/cost.md's worked
// capacity example, and the command prints its hand-computed figures.
func TestCapacityHandComputation(t *testing.T) {
	out, err := execute(t, "", "capacity", "--rate", "1000", "--mix", filepath.Join("..", "..", "events", "capacity", "five-task-mix.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Lambda concurrency 120.0 (mapping maximum concurrency 120)",
		"DynamoDB 7000 write and 1000 read units/s, 2000 SQS requests/s, 7 stream shards",
		"cost $0.000006920 per case, $17936.66 a month",
		"binding first: on-demand write request units per second per table",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if _, err := execute(t, "", "capacity", "--rate", "-1", "--mix", filepath.Join("..", "..", "events", "capacity", "five-task-mix.json")); err == nil {
		t.Error("a negative rate was accepted")
	}
}

// TestCostReadsTheExport: with the cost job's export of a month in the
// chargeback bucket, knhk cost prints it (CSV as exported, the table from
// the JSON); a month without an export is priced from the receipts.
func TestCostReadsTheExport(t *testing.T) {
	ep, outs, outFile := deployForCLI(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := chargeback.Report{Period: "2026-01", By: chargeback.ByTenant, Prices: cost.DefaultVersion, Shared: new(big.Rat), Idle: big.NewRat(1, 1000),
		Lines: []chargeback.Line{{Key: "acme", Cases: 4, Direct: big.NewRat(3, 100), Shared: new(big.Rat), Standard: big.NewRat(1, 10), Express: big.NewRat(1, 100)}}}
	var csvBody bytes.Buffer
	if err := r.WriteCSV(&csvBody); err != nil {
		t.Fatal(err)
	}
	jsonBody, _ := json.Marshal(r)
	bucket := objects.New(objects.NewClient(cfg), outs[stack.OutChargebackBucket])
	for ext, body := range map[string][]byte{"csv": csvBody.Bytes(), "json": jsonBody} {
		if err := bucket.Put(ctx, costjob.ExportKey("2026-01", chargeback.ByTenant, ext), "text/plain", body); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := run(t, "cost", "--by", "tenant", "--month", "2026-01", "--csv", "--outputs", outFile)
	if code != 0 || out != csvBody.String() || !strings.Contains(errOut, "the cost job's export") {
		t.Fatalf("cost --csv: %d %q %q", code, out, errOut)
	}
	out, _, code = run(t, "cost", "--by", "tenant", "--month", "2026-01", "--outputs", outFile)
	if code != 0 || !strings.Contains(out, "acme") || !strings.Contains(out, "$7500.00") {
		t.Fatalf("cost table from the export: %d %q", code, out)
	}
	out, errOut, code = run(t, "cost", "--by", "workflow", "--month", "2026-01", "--outputs", outFile)
	if code != 0 || !strings.Contains(errOut, "no export") || strings.Contains(out, "acme") {
		t.Fatalf("cost without an export: %d %q %q", code, out, errOut)
	}
}
