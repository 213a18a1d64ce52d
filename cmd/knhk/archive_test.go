package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/merkle"
	"github.com/knhk/knhk/shared/signer"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// archivedCase builds an ended case's archive object signed by key.
func archivedCase(t *testing.T, key *signer.Local, caseID string, ended time.Time) []byte {
	t.Helper()
	var rs []*receipt.Receipt
	var prev *receipt.Receipt
	for i, ev := range []history.Event{
		{Type: history.CaseStarted, Input: json.RawMessage(`{}`), Started: ended.Add(-time.Second), Genesis: &history.Genesis{Tenant: "acme", Namespace: "ns",
			Workflow: "wf", Version: "1", DescriptorHash: fmt.Sprintf("%064x", 7)}},
		{Type: history.CaseCompleted, Output: json.RawMessage(`{"ok":true}`), Started: ended},
	} {
		r, err := receipt.New(prev, "acme", caseID, ev)
		if err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
		rs, prev = append(rs, r), r
	}
	cp, err := checkpoint.Create(context.Background(), []merkle.Head{{Tenant: "acme", CaseID: caseID, Seq: prev.Seq, Hash: prev.Hash}}, "p", ended, key)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cp.Proof(caseID)
	pub, _ := key.PublicKey(context.Background())
	a, err := archive.New(rs, nil, p, cp.Head, pub)
	if err != nil {
		t.Fatal(err)
	}
	data, err := archive.Encode(a)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestArchiveListHoldVerify on the deployed local stack: `archive list`
// lists by end time what the index holds, `archive hold` puts the indexed
// version on legal hold and `--release` takes it off, a case not archived
// exits 1, and `archive verify` checks an object offline (exit 3 when one
// byte changed).
func TestArchiveListHoldVerify(t *testing.T) {
	ep, outs, outFile := deployForCLI(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bucket := objects.NewVersioned(objects.NewClient(cfg), outs[stack.OutArchiveBucket])
	idx := store.NewArchives(dynamodb.NewFromConfig(cfg), outs[stack.OutStateTable])
	key, err := signer.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	for i, id := range []string{"arch-1", "arch-2", "arch-3"} {
		data := archivedCase(t, key, id, t0.Add(time.Duration(i)*24*time.Hour))
		a, _ := archive.Decode(data)
		s, err := archive.Summarize(a, data)
		if err != nil {
			t.Fatal(err)
		}
		if s.VersionID, err = bucket.Put(ctx, s.Key, archive.ContentType, data); err != nil {
			t.Fatal(err)
		}
		if _, err := idx.Record(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, id+".json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	out, errOut, code := run(t, "archive", "list", "--from", "2026-05-01", "--to", "2026-05-03", "--json", "--outputs", outFile)
	if code != 0 {
		t.Fatalf("list: %d %s", code, errOut)
	}
	var listed []archive.Summary
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 2 || listed[0].CaseID != "arch-1" || listed[1].CaseID != "arch-2" {
		t.Fatalf("list [05-01, 05-03): %v %s", err, out)
	}
	if out, _, code := run(t, "archive", "list", "--from", "2026-05-03T00:00:00Z", "--to", "2026-06-01", "--outputs", outFile); code != 0 || !strings.Contains(out, "arch-3") || !strings.Contains(out, "1 archived") {
		t.Fatalf("list table: %d %s", code, out)
	}
	if _, _, code := run(t, "archive", "list", "--from", "2026-05-03", "--to", "2026-05-01", "--outputs", outFile); code != 2 {
		t.Fatalf("from after to: exit %d", code)
	}

	if out, errOut, code := run(t, "archive", "hold", "arch-2", "--outputs", outFile); code != 0 || !strings.Contains(out, "on legal hold") {
		t.Fatalf("hold: %d %s %s", code, out, errOut)
	}
	s, _, _ := idx.Archived(ctx, "arch-2")
	if on, err := bucket.LegalHold(ctx, s.Key, s.VersionID); err != nil || !on {
		t.Fatalf("legal hold after hold: %v %v", on, err)
	}
	if _, _, code := run(t, "archive", "hold", "arch-2", "--release", "--outputs", outFile); code != 0 {
		t.Fatalf("release: exit %d", code)
	}
	if on, err := bucket.LegalHold(ctx, s.Key, s.VersionID); err != nil || on {
		t.Fatalf("legal hold after release: %v %v", on, err)
	}
	if _, _, code := run(t, "archive", "hold", "never-archived", "--outputs", outFile); code != 1 {
		t.Fatalf("hold of a case not archived: exit %d", code)
	}

	pub, _ := key.PublicKey(ctx)
	pem, _ := checkpoint.EncodePublicKeyPEM(pub)
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "arch-1.json")
	if out, _, code := run(t, "archive", "verify", file, "--public-key", keyFile); code != 0 || !strings.Contains(out, `"verified": true`) {
		t.Fatalf("verify: %d %s", code, out)
	}
	data, _ := os.ReadFile(file)
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(data), `"ok":true`, `"ok":false`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, code := run(t, "archive", "verify", bad, "--public-key", keyFile); code != exitTampered || !strings.Contains(out, `"verified": false`) {
		t.Fatalf("verify of a changed object: %d %s", code, out)
	}
}
