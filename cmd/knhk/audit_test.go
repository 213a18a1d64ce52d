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
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/audit"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/merkle"
	"github.com/knhk/knhk/shared/signer"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// TestAuditExportVerify on the deployed local stack: checkpoints signed by
// the stack's KMS key are stored, cases are archived to the bucket and
// indexed; `audit export` writes the period [05-01, 05-03) (three cases, one
// of them signed by a checkpoint after the period, anchored by the
// checkpoint before it) and `audit verify` checks it offline: exit 0 (also
// with a witnessed checkpoint it holds), then 3 once a case file is gone; a second export into the same directory and a
// verify without a key exit 2.
func TestAuditExportVerify(t *testing.T) {
	ep, outs, outFile := deployForCLI(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	key := signer.NewKMS(kms.NewFromConfig(cfg), outs[stack.OutCheckpointKeyID])
	pub, err := key.PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cps := store.NewCheckpoints(db, outs[stack.OutCheckpointsTable])
	bucket := objects.NewVersioned(objects.NewClient(cfg), outs[stack.OutArchiveBucket])
	idx := store.NewArchives(db, outs[stack.OutStateTable])
	lg, err := checkpoint.VerifyLog(nil, pub)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for b, bt := range []struct {
		at    time.Time
		cases map[string]time.Time
	}{
		{day.Add(-12 * time.Hour), map[string]time.Time{"aud-before": day.Add(-13 * time.Hour)}},
		{day.Add(12 * time.Hour), map[string]time.Time{"aud-1": day.Add(time.Hour), "aud-2": day.Add(2 * time.Hour)}},
		{day.Add(49 * time.Hour), map[string]time.Time{"aud-3": day.Add(47 * time.Hour)}},
	} {
		chains := map[string][]*receipt.Receipt{}
		var heads []merkle.Head
		for id, end := range bt.cases {
			var prev *receipt.Receipt
			for _, ev := range []history.Event{
				{Type: history.CaseStarted, Input: json.RawMessage(`{}`), Started: end.Add(-time.Second), Genesis: &history.Genesis{Tenant: "acme",
					Namespace: "ns", Workflow: "wf", Version: "1", DescriptorHash: fmt.Sprintf("%064x", 7)}},
				{Type: history.CaseCompleted, Output: json.RawMessage(`{"ok":true}`), Started: end},
			} {
				r, err := receipt.New(prev, "acme", id, ev)
				if err != nil {
					t.Fatal(err)
				}
				chains[id], prev = append(chains[id], r), r
			}
			heads = append(heads, merkle.Head{Tenant: "acme", CaseID: id, Seq: prev.Seq, Hash: prev.Hash})
		}
		e, signerKey, err := lg.Append(ctx, heads, fmt.Sprintf("p%d", b), bt.at, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := cps.Commit(ctx, e, signerKey, ""); err != nil {
			t.Fatal(err)
		}
		lg.Add(e)
		for id, rs := range chains {
			refs := lg.Case(id)
			p, h, err := lg.Proof(refs[len(refs)-1])
			if err != nil {
				t.Fatal(err)
			}
			a, err := archive.New(rs, nil, p, h, pub)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := archive.Encode(a)
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
		}
	}
	pem, _ := checkpoint.EncodePublicKeyPEM(pub)
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "audit-2026-05")

	out, errOut, code := run(t, "audit", "export", "--from", "2026-05-01", "--to", "2026-05-03", "--out", dir, "--outputs", outFile)
	if code != 0 || !strings.Contains(out, "3 cases, 3 checkpoints (seq 0 to 2, anchored at 0)") {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	out, errOut, code = run(t, "audit", "verify", dir, "--public-key", keyFile)
	var r struct {
		Verified bool                 `json:"verified"`
		Cases    int                  `json:"cases"`
		Latest   *checkpoint.TreeHead `json:"latest"`
	}
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil || !r.Verified || r.Cases != 3 || r.Latest == nil || r.Latest.Seq != 2 {
		t.Fatalf("verify: %d %v %s %s", code, err, out, errOut)
	}
	witness := filepath.Join(t.TempDir(), "latest.json")
	w, _ := json.Marshal(lg.Entries()[1].Head)
	if err := os.WriteFile(witness, w, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run(t, "audit", "verify", dir, "--public-key", keyFile, "--witness", witness); code != 0 {
		t.Fatalf("verify --witness of a held checkpoint: %d %s", code, errOut)
	}
	if _, _, code := run(t, "audit", "export", "--from", "2026-05-01", "--to", "2026-05-03", "--out", dir, "--outputs", outFile); code != 2 {
		t.Fatalf("export into a directory that is not empty: exit %d", code)
	}
	if _, _, code := run(t, "audit", "verify", dir); code != 2 {
		t.Fatalf("verify without a key: exit %d", code)
	}
	s, _, _ := idx.Archived(ctx, "aud-2")
	if err := os.Remove(filepath.Join(dir, filepath.FromSlash(audit.CasePath(s.SHA256)))); err != nil {
		t.Fatal(err)
	}
	if out, _, code := run(t, "audit", "verify", dir, "--public-key", keyFile); code != exitTampered || !strings.Contains(out, `"verified": false`) {
		t.Fatalf("verify with a case missing: %d %s", code, out)
	}
}
