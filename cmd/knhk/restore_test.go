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

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/restore"
	"github.com/knhk/knhk/shared/signer"
	"github.com/knhk/knhk/shared/store"
)

// TestRestoreCommand drills `knhk restore` between two local endpoints:
// the source holds only the archive bucket, the target empty tables. A
// tampered object makes it exit 3 with the others restored and nothing of
// that case written; once an honest version is the latest, a re-run
// restores it alone (the others skipped) and exits 0, and `knhk verify
// --case` accepts every restored case. Without the required flags it
// exits 2.
func TestRestoreCommand(t *testing.T) {
	src, dst := localaws.StartT(t), localaws.StartT(t)
	ctx := context.Background()
	srcCfg, err := src.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dstCfg, err := dst.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sc := objects.NewClient(srcCfg)
	if err := objects.CreateLockedBucket(ctx, sc, "archive-drill", objects.Governance, 1); err != nil {
		t.Fatal(err)
	}
	bucket := objects.NewVersioned(sc, "archive-drill")
	if err := store.CreateTables(ctx, dynamodb.NewFromConfig(dstCfg), "receipts-drill", "state-drill"); err != nil {
		t.Fatal(err)
	}
	key, err := signer.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	ids := []string{"drill-1", "drill-2", "drill-3"}
	honest := map[string][]byte{}
	for i, id := range ids {
		honest[id] = archivedCase(t, key, id, t0.Add(time.Duration(i)*time.Hour))
		body := honest[id]
		if id == "drill-2" {
			body = []byte(strings.Replace(string(body), `"ok":true`, `"ok":false`, 1))
		}
		if _, err := bucket.Put(ctx, archive.Key("acme", id), archive.ContentType, body); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	pub, _ := key.PublicKey(ctx)
	pem, _ := checkpoint.EncodePublicKeyPEM(pub)
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	noOutputs := filepath.Join(dir, "none.json")
	args := []string{"restore", "--from-archive", "archive-drill", "--public-key", keyFile, "--source-endpoint", src.URL, "--endpoint", dst.URL,
		"--receipts-table", "receipts-drill", "--state-table", "state-drill", "--workers", "2", "--json", "--outputs", noOutputs}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", localaws.Region)

	summary := func(out string) restore.Summary {
		t.Helper()
		var s restore.Summary
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return s
	}
	out, errOut, code := run(t, args...)
	if s := summary(out); code != exitTampered || s.Restored != 2 || s.Refused != 1 || len(s.Problems) != 1 || s.Problems[0].Key != archive.Key("acme", "drill-2") {
		t.Fatalf("first run: exit %d %s %s", code, out, errOut)
	}
	rs, _, err := store.NewReceipts(dynamodb.NewFromConfig(dstCfg), "receipts-drill").Chain(ctx, "drill-2")
	if err != nil || len(rs) != 0 {
		t.Fatalf("the refused case has %d receipts written (%v)", len(rs), err)
	}
	if _, err := bucket.Put(ctx, archive.Key("acme", "drill-2"), archive.ContentType, honest["drill-2"]); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = run(t, args...)
	if s := summary(out); code != 0 || s.Restored != 1 || s.Skipped != 2 || !s.OK() {
		t.Fatalf("second run: exit %d %s %s", code, out, errOut)
	}

	t.Setenv("AWS_ENDPOINT_URL", dst.URL)
	t.Setenv("KNHK_RECEIPTS_TABLE", "receipts-drill")
	for _, id := range ids {
		if out, errOut, code := run(t, "verify", "--case", id, "--outputs", noOutputs); code != 0 || !strings.Contains(out, `"intact": true`) {
			t.Fatalf("verify --case %s: exit %d %s %s", id, code, out, errOut)
		}
	}
	if _, _, code := run(t, "restore", "--public-key", keyFile, "--outputs", noOutputs); code != 2 {
		t.Fatalf("without --from-archive: exit %d", code)
	}
}
