package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/alert"
	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/archiver"
	"github.com/knhk/knhk/shared/executor"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/signer"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// testChain is a chain of n receipts of case c, the last terminal when
// ended; salt changes every payload after the genesis.
func testChain(t *testing.T, c string, n int, ended bool, salt string) []*receipt.Receipt {
	t.Helper()
	var rs []*receipt.Receipt
	var prev *receipt.Receipt
	for i := range n {
		ev := history.Event{Type: history.TaskCompleted, Task: "/do/0/a", Output: json.RawMessage(fmt.Sprintf(`{"i":%d,"s":%q}`, i, salt))}
		switch {
		case i == 0:
			ev = history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{}`), Genesis: &history.Genesis{Tenant: "acme", Namespace: "ns",
				Workflow: "wf", Version: "1", DescriptorHash: strings.Repeat("cd", 32)}}
		case i == n-1 && ended:
			ev = history.Event{Type: history.CaseCompleted, Output: json.RawMessage(fmt.Sprintf(`{"s":%q}`, salt))}
		}
		r, err := receipt.New(prev, "acme", c, ev)
		if err != nil {
			t.Fatal(err)
		}
		rs, prev = append(rs, r), r
	}
	return rs
}

func TestArchiveNeeded(t *testing.T) {
	full := testChain(t, "c", 4, true, "")
	other := testChain(t, "c", 4, true, "rewritten")
	head := full[3]
	idx := archive.Summary{CaseID: "c", HeadSeq: head.Seq, HeadHash: head.Hash}
	tests := []struct {
		name      string
		table     []*receipt.Receipt
		malformed int
		indexed   bool
		want      bool
	}{
		{"whole chain, not indexed", full, 0, false, false},
		{"whole chain up to the archived head", full, 0, true, false},
		{"another chain than the archived one", other, 0, true, true},
		{"whole chain past the archived head", append(slices.Clone(full), testChain(t, "c", 5, false, "")[4]), 0, true, true},
		{"prefix of the archived chain", full[:2], 0, true, true},
		{"empty table, indexed", nil, 0, true, true},
		{"empty table, not indexed", nil, 0, false, true},
		{"genesis gone", full[1:], 0, false, true},
		{"gap in the middle", []*receipt.Receipt{full[0], full[1], full[3]}, 0, false, true},
		{"an item does not decode", full, 1, false, true},
		{"an item does not decode, indexed", full, 1, true, true},
		{"prefix of the chain (a live case)", full[:2], 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := archive.Summary{}
			if tt.indexed {
				s = idx
			}
			if got := archiveNeeded(tt.table, tt.malformed, s, tt.indexed); got != tt.want {
				t.Errorf("archiveNeeded = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResolveChain(t *testing.T) {
	arch := testChain(t, "c", 4, true, "")
	other := testChain(t, "c", 4, true, "rewritten")
	longer := testChain(t, "c", 5, false, "")
	tests := []struct {
		name     string
		table    []*receipt.Receipt
		archived []*receipt.Receipt
		source   string
		receipts []*receipt.Receipt
		mismatch []int64 // seqs of the ArchiveMismatch findings
	}{
		{"not archived: the table", arch[:2], nil, sourceTable, arch[:2], nil},
		{"in neither", nil, nil, sourceTable, nil, nil},
		{"archived, table whole and equal", arch, arch, sourceTable, arch, nil},
		{"archived, table empty (TTL)", nil, arch, sourceArchive, arch, nil},
		{"archived, table partial and equal", []*receipt.Receipt{arch[0], arch[3]}, arch, sourceArchive, arch, nil},
		{"archived, table head differs", []*receipt.Receipt{arch[0], arch[1], arch[2], other[3]}, arch, sourceArchive, arch, []int64{3}},
		{"archived, table rewritten", other, arch, sourceArchive, arch, []int64{1, 2, 3}},
		{"archived, table past the terminal head", []*receipt.Receipt{longer[4]}, arch, sourceArchive, arch, []int64{4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resolveChain("c", tt.table, tt.archived)
			if r.Source != tt.source {
				t.Errorf("source = %s, want %s", r.Source, tt.source)
			}
			if len(r.Receipts) != len(tt.receipts) {
				t.Fatalf("%d receipts, want %d", len(r.Receipts), len(tt.receipts))
			}
			for i := range r.Receipts {
				if r.Receipts[i] != tt.receipts[i] {
					t.Errorf("receipt %d is not the expected one", i)
				}
			}
			if len(r.Findings) != len(tt.mismatch) {
				t.Fatalf("findings %v, want at seqs %v", r.Findings, tt.mismatch)
			}
			for i, f := range r.Findings {
				if f.Kind != receipt.ArchiveMismatch || f.Seq != tt.mismatch[i] || f.CaseID != "c" || !f.Kind.Tamper() {
					t.Errorf("finding %d = %v, want ArchiveMismatch at seq %d", i, f, tt.mismatch[i])
				}
			}
		})
	}
}

func TestCheckArchived(t *testing.T) {
	ctx := context.Background()
	key, err := signer.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := signer.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := key.PublicKey(ctx)
	wrongPub, _ := wrong.PublicKey(ctx)
	data := archivedCase(t, key, "arch-c", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	a, _ := archive.Decode(data)
	sum, err := archive.Summarize(a, data)
	if err != nil {
		t.Fatal(err)
	}
	otherHead := sum
	otherHead.HeadHash = strings.Repeat("0", 64)
	otherSum := sum
	otherSum.SHA256 = strings.Repeat("0", 64)
	tampered := []byte(strings.Replace(string(data), `"ok":true`, `"ok":false`, 1))
	tests := []struct {
		name    string
		data    []byte
		caseID  string
		s       archive.Summary
		indexed bool
		pub     any
		err     error // nil: verified; errAny: any error
	}{
		{"indexed", data, "arch-c", sum, true, pub, nil},
		{"by key, no index entry", data, "arch-c", archive.Summary{}, false, pub, nil},
		{"a byte changed", tampered, "arch-c", sum, true, pub, errAny},
		{"not canonical", append([]byte(" "), data...), "arch-c", sum, true, pub, archive.ErrMalformed},
		{"another key signed it", data, "arch-c", sum, true, wrongPub, errAny},
		{"another case's object", data, "arch-d", sum, true, pub, errAny},
		{"not the indexed bytes", data, "arch-c", otherSum, true, pub, errNotIndexed},
		{"not the indexed head", data, "arch-c", otherHead, true, pub, errNotIndexed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkArchived(tt.data, tt.caseID, tt.s, tt.indexed, tt.pub)
			switch {
			case tt.err == nil && (err != nil || got == nil || got.CaseID != "arch-c"):
				t.Fatalf("checkArchived: %v", err)
			case tt.err == errAny && err == nil, tt.err != nil && tt.err != errAny && !errors.Is(err, tt.err):
				t.Fatalf("checkArchived: %v, want %v", err, tt.err)
			}
		})
	}
}

// errAny in a table test wants some error.
var errAny = errors.New("any error")

func TestArchivedBlobs(t *testing.T) {
	b := archivedBlobs{m: map[string][]byte{"h1": []byte(`{"a":1}`)}}
	if got, err := b.Blob(context.Background(), "h1"); err != nil || string(got) != `{"a":1}` {
		t.Fatalf("h1: %q %v", got, err)
	}
	if _, err := b.Blob(context.Background(), "h2"); err == nil {
		t.Fatal("a payload the archive does not hold was served")
	}
	if err := b.PutBlob(context.Background(), receipt.Blob{Hash: "h1"}); err == nil {
		t.Fatal("an archived payload was written")
	}
}

// runErr runs the CLI like run and also returns the command's error (the
// CLI prints errors in main, not in Execute).
func runErr(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	resetFlags()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	root.SetContext(context.Background())
	t.Cleanup(func() { root.SetArgs(nil); root.SetOut(nil); root.SetErr(nil) })
	err := root.Execute()
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return out.String(), code, err
}

// readAll is what the four reading commands print for a case.
type readAll struct {
	receipts, receiptsErr string
	show                  caseView
	showText              string
	verify                report
	bundle                []byte
	exportOut             string
}

// readCaseAll runs receipts, case show (JSON and text), verify --case and
// proof export for caseID and fails the test on any non-zero exit.
func readCaseAll(t *testing.T, outFile, caseID, bundleFile string) readAll {
	t.Helper()
	var r readAll
	var code int
	r.receipts, r.receiptsErr, code = run(t, "receipts", caseID, "--outputs", outFile)
	if code != 0 {
		t.Fatalf("receipts: exit %d %s", code, r.receiptsErr)
	}
	out, errOut, code := run(t, "case", "show", caseID, "--json", "--outputs", outFile)
	if code != 0 || json.Unmarshal([]byte(out), &r.show) != nil {
		t.Fatalf("case show: exit %d %s %s", code, out, errOut)
	}
	if r.showText, errOut, code = run(t, "case", "show", caseID, "--outputs", outFile); code != 0 {
		t.Fatalf("case show (text): exit %d %s", code, errOut)
	}
	out, errOut, code = run(t, "verify", "--case", caseID, "--outputs", outFile)
	if code != 0 || json.Unmarshal([]byte(out), &r.verify) != nil {
		t.Fatalf("verify --case: exit %d %s %s", code, out, errOut)
	}
	if r.exportOut, errOut, code = run(t, "proof", "export", "--case", caseID, "--out", bundleFile, "--outputs", outFile); code != 0 {
		t.Fatalf("proof export: exit %d %s", code, errOut)
	}
	var err error
	if r.bundle, err = os.ReadFile(bundleFile); err != nil {
		t.Fatal(err)
	}
	return r
}

// sameAs fails the test unless r shows what before did, read from source.
func (r readAll) sameAs(t *testing.T, before readAll, source string) {
	t.Helper()
	if r.receipts != before.receipts {
		t.Errorf("receipts differ:\n%s\nbefore:\n%s", r.receipts, before.receipts)
	}
	if !strings.Contains(r.receiptsErr, "source: "+map[string]string{sourceTable: "receipts table", sourceArchive: "archive s3://"}[source]) {
		t.Errorf("receipts do not name the source %s: %q", source, r.receiptsErr)
	}
	show, want := r.show, before.show
	if show.Source != source || (source == sourceArchive) != (show.Archive != "") {
		t.Errorf("case show source %q %q, want %s", show.Source, show.Archive, source)
	}
	show.Source, show.Archive, want.Source, want.Archive = "", "", "", ""
	if a, b := mustJSON(t, show), mustJSON(t, want); a != b {
		t.Errorf("case show differs:\n%s\nbefore:\n%s", a, b)
	}
	if strings.Contains(r.showText, "source    archive s3://") != (source == sourceArchive) {
		t.Errorf("case show (text) and source %s:\n%s", source, r.showText)
	}
	v, wv := r.verify, before.verify
	if v.Source != source || (source == sourceArchive) != (v.Archive != "") {
		t.Errorf("verify source %q %q, want %s", v.Source, v.Archive, source)
	}
	v.Source, v.Archive, wv.Source, wv.Archive = "", "", "", ""
	if a, b := mustJSON(t, v), mustJSON(t, wv); a != b {
		t.Errorf("verify differs:\n%s\nbefore:\n%s", a, b)
	}
	if !bytes.Equal(r.bundle, before.bundle) {
		t.Error("proof export wrote another bundle")
	}
	if !strings.Contains(r.exportOut, "source: "+map[string]string{sourceTable: "receipts table", sourceArchive: "archive s3://"}[source]) {
		t.Errorf("proof export does not name the source %s: %q", source, r.exportOut)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestArchivedCasesReadTransparently on the deployed local stack: a case
// runs, is checkpointed and archived by the archiver, and its receipts are
// then deleted from the table as its time to live would. receipts, case
// show, verify --case and proof export then print what they printed before
// (the bundle byte for byte, and `proof verify` accepts it), saying the
// chain came from the archive; so they do with part of the chain back in
// the table, and with the index entry gone (the object's deterministic
// key). A case whose input was detached is shown, its receipts and stored
// payload gone, with the payload of its archive object. A newer tampered version of the object is
// not read while the index names the archived one, and is refused (exit 3,
// errArchiveRefused) once the index entry is gone. A table receipt that
// differs from the archived one is an ArchiveMismatch finding. With the
// checkpoint log gone, proof export writes the archive object's own proof.
// A case in neither is not found (exit 2).
func TestArchivedCasesReadTransparently(t *testing.T) {
	ep, outs, outFile := deployForCLI(t)
	dir := filepath.Dir(outFile)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db, sq := dynamodb.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	st, rt := outs[stack.OutStateTable], outs[stack.OutReceiptsTable]
	sample := filepath.Join("..", "..", "events")
	if _, errOut, code := run(t, "workflow", "push", filepath.Join(sample, "workflows", "order-routing.yaml"), "--outputs", outFile); code != 0 {
		t.Fatalf("push: %d %s", code, errOut)
	}
	out, errOut, code := run(t, "submit", "--workflow", "commerce/order-routing", "--key", "archived-1",
		"--input", filepath.Join(sample, "inputs", "order-routing.json"), "--outputs", outFile)
	if code != 0 {
		t.Fatalf("submit: %d %s", code, errOut)
	}
	caseID := strings.TrimSpace(out)
	// A second case whose input is over the inline limit: its genesis
	// receipt names the input by hash, stored apart (docs/receipts.md).
	in, err := os.ReadFile(filepath.Join(sample, "inputs", "order-routing.json"))
	if err != nil {
		t.Fatal(err)
	}
	padded := filepath.Join(dir, "padded.json")
	in = append(bytes.TrimSuffix(bytes.TrimSpace(in), []byte("}")), []byte(`,"note":"`+strings.Repeat("n", receipt.InlineLimit)+`"}`)...)
	if err := os.WriteFile(padded, in, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = run(t, "submit", "--workflow", "commerce/order-routing", "--key", "archived-2", "--input", padded, "--outputs", outFile)
	if code != 0 {
		t.Fatalf("submit of the padded input: %d %s", code, errOut)
	}
	detachedID := strings.TrimSpace(out)
	var bodies []events.SQSMessage
	for len(bodies) < 2 {
		got, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(outs[stack.OutWorkQueueURL]), WaitTimeSeconds: 2, MaxNumberOfMessages: 2})
		if err != nil || len(got.Messages) == 0 {
			t.Fatalf("submitted messages: %v %v", got, err)
		}
		for _, m := range got.Messages {
			bodies = append(bodies, events.SQSMessage{MessageId: fmt.Sprintf("m%d", len(bodies)), Body: aws.ToString(m.Body)})
		}
	}
	srv := httptest.NewServer(standin.Handler())
	defer srv.Close()
	chains := store.NewReceipts(db, rt)
	chains.Blobs = store.NewState(db, st)
	cases := store.NewCases(db, st)
	x := executor.New(executor.DefaultConfig(), executor.Deps{Chains: chains, Descriptors: registry.New(db, st), Cases: cases,
		Sender: queue.NewSender(sq, outs[stack.OutWorkQueueURL]), HTTP: standin.Client(srv.Listener.Addr().String())})
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, b := range bodies {
		if resp, err := x.Handle(hctx, events.SQSEvent{Records: []events.SQSMessage{b}}); err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("executor: %v %v", resp, err)
		}
	}
	var detached []string
	for _, id := range []string{caseID, detachedID} {
		rs, _, err := chains.Chain(ctx, id)
		if err != nil || len(rs) < 2 || !rs[len(rs)-1].Type.Terminal() {
			t.Fatalf("chain of case %s: %d receipts, %v", id, len(rs), err)
		}
		if id == detachedID {
			if detached = archive.Detached(rs); len(detached) == 0 {
				t.Fatal("the padded input was not detached")
			}
		}
		head := rs[len(rs)-1]
		// The verifier's watermark (the verifier runs on the table's
		// stream, not here): the case ended at its head.
		if err := cases.SetWatermarks(ctx, map[string]receipt.Watermark{id: {Seq: head.Seq, Hash: head.Hash, Ended: head.Seq}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, errOut, code := run(t, "checkpoint", "create", "--outputs", outFile); code != 0 {
		t.Fatalf("checkpoint create: %d %s", code, errOut)
	}
	bundleFile, pemFile := filepath.Join(dir, "case.bundle.json"), filepath.Join(dir, "key.pem")
	if _, errOut, code := run(t, "proof", "export", "--case", caseID, "--out", bundleFile, "--public-key-out", pemFile, "--outputs", outFile); code != 0 {
		t.Fatalf("proof export: %d %s", code, errOut)
	}
	before := readCaseAll(t, outFile, caseID, bundleFile)
	if before.show.Source != sourceTable || before.verify.Source != sourceTable || !before.verify.Intact {
		t.Fatalf("before archiving: source %q %q, verify %+v", before.show.Source, before.verify.Source, before.verify)
	}

	bucket := objects.NewVersioned(objects.NewClient(cfg), outs[stack.OutArchiveBucket])
	payloads := objects.NewBlobs(objects.New(objects.NewClient(cfg), outs[stack.OutPayloadBucket]), store.NewState(db, st))
	idx := store.NewArchives(db, st)
	arch, err := archiver.New(archiver.Deps{Log: store.NewCheckpoints(db, outs[stack.OutCheckpointsTable]), Leases: store.NewLeases(db, st),
		Watermarks: cases, Chains: chains, Blobs: payloads, Index: idx, Refusals: store.NewRefusals(db, st), Bucket: bucket,
		Key: signer.NewKMS(kms.NewFromConfig(cfg), outs[stack.OutCheckpointKeyID]), Alerts: alert.NewSNS(sns.NewFromConfig(cfg), outs[stack.OutAlertsTopicArn]),
		Out: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := arch.Run(ctx); err != nil || len(res.Archived) != 2 {
		t.Fatalf("archiver: %+v %v", res, err)
	}
	summary, ok, err := idx.Archived(ctx, caseID)
	if err != nil || !ok {
		t.Fatalf("index entry: %v %v", ok, err)
	}
	// Archived with the whole chain still in the table: the table is read.
	readCaseAll(t, outFile, caseID, bundleFile).sameAs(t, before, sourceTable)

	// Time to live deletes every receipt item of the case.
	deleteReceipts(t, ctx, db, rt, caseID)
	if rs, bad, err := chains.Chain(ctx, caseID); err != nil || len(rs)+len(bad) != 0 {
		t.Fatalf("after deletion the table holds %d receipts, %v", len(rs)+len(bad), err)
	}
	after := readCaseAll(t, outFile, caseID, bundleFile)
	after.sameAs(t, before, sourceArchive)
	if !strings.Contains(after.verify.Archive, summary.Key) || !strings.Contains(after.verify.Archive, summary.VersionID) {
		t.Errorf("verify names %q, want key %s version %s", after.verify.Archive, summary.Key, summary.VersionID)
	}
	if out, _, code := run(t, "proof", "verify", bundleFile, "--public-key", pemFile); code != 0 || !strings.Contains(out, `"verified": true`) {
		t.Fatalf("proof verify of the bundle exported from the archive: %d %s", code, out)
	}

	// Part of the chain back in the table (its last receipts, as
	// single-receipt items): the archive, the same output.
	a, err := archive.Decode(mustGet(t, bucket, summary))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range a.Receipts[len(a.Receipts)-3:] {
		item, _ := store.Item(r)
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(rt), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	if rs, _, err := chains.Chain(ctx, caseID); err != nil || len(rs) != 3 {
		t.Fatalf("the table holds %d receipts, %v", len(rs), err)
	}
	readCaseAll(t, outFile, caseID, bundleFile).sameAs(t, before, sourceArchive)
	deleteReceipts(t, ctx, db, rt, caseID)

	// The case with a detached input: receipts and the stored payload
	// gone, case show replays it with the payload of its archive object.
	deleteReceipts(t, ctx, db, rt, detachedID)
	for _, h := range detached {
		k := map[string]dbtypes.AttributeValue{store.AttrPK: &dbtypes.AttributeValueMemberS{Value: "BLOB#" + h}, store.AttrSK: &dbtypes.AttributeValueMemberS{Value: "BLOB"}}
		if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(st), Key: k}); err != nil {
			t.Fatal(err)
		}
		if _, err := objects.NewClient(cfg).DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(outs[stack.OutPayloadBucket]),
			Key: aws.String(objects.BlobKey(h))}); err != nil {
			t.Fatal(err)
		}
		if _, err := payloads.Blob(ctx, h); err == nil {
			t.Fatalf("payload %s still stored", h)
		}
	}
	out, errOut, code = run(t, "case", "show", detachedID, "--json", "--outputs", outFile)
	var dv caseView
	if code != 0 || json.Unmarshal([]byte(out), &dv) != nil || dv.Source != sourceArchive || !dv.Verified || dv.Status != "completed" ||
		!jsonSame(dv.Output, standin.Outputs["order-routing"]) {
		t.Fatalf("case show of an archived case with a detached input: %d %s %s", code, out, errOut)
	}

	// The index entry gone: the deterministic key.
	deleteIndexEntry(t, ctx, db, st, caseID)
	noIndex := readCaseAll(t, outFile, caseID, bundleFile)
	noIndex.sameAs(t, before, sourceArchive)
	if !strings.Contains(noIndex.verify.Archive, "the archive index has no entry") {
		t.Errorf("verify without an index entry names %q", noIndex.verify.Archive)
	}
	if _, err := idx.Record(ctx, summary); err != nil {
		t.Fatal(err)
	}

	// A newer, tampered version: the index names the archived version.
	data := mustGet(t, bucket, summary)
	tampered := bytes.Replace(data, []byte(`"seq":1,`), []byte(`"seq":7,`), 1)
	if bytes.Equal(tampered, data) {
		t.Fatal("tamper did not apply")
	}
	if _, err := bucket.Put(ctx, summary.Key, archive.ContentType, tampered); err != nil {
		t.Fatal(err)
	}
	readCaseAll(t, outFile, caseID, bundleFile).sameAs(t, before, sourceArchive)
	deleteIndexEntry(t, ctx, db, st, caseID)
	for _, args := range [][]string{{"receipts", caseID}, {"case", "show", caseID}, {"verify", "--case", caseID},
		{"proof", "export", "--case", caseID, "--out", filepath.Join(dir, "refused.json")}} {
		out, code, err := runErr(t, append(args, "--outputs", outFile)...)
		if code != exitTampered || !errors.Is(err, errArchiveRefused) || strings.Contains(out, `"seq"`) {
			t.Errorf("%s of a tampered archive object: exit %d, %v, printed %q", args[0], code, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "refused.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("proof export of a refused archive wrote a bundle: %v", err)
	}
	if _, err := idx.Record(ctx, summary); err != nil {
		t.Fatal(err)
	}

	// A receipt in the table that is not the archived one.
	forged := testChain(t, caseID, 1, false, "")[0]
	item, _ := store.Item(forged)
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(rt), Item: item}); err != nil {
		t.Fatal(err)
	}
	out, _, code = run(t, "verify", "--case", caseID, "--outputs", outFile)
	var rep report
	if code != exitTampered || json.Unmarshal([]byte(out), &rep) != nil || rep.Intact || rep.Source != sourceArchive ||
		len(rep.Findings) != 1 || rep.Findings[0].Kind != receipt.ArchiveMismatch || rep.Findings[0].Seq != 0 {
		t.Fatalf("verify of a table that disagrees with the archive: %d %s", code, out)
	}
	if _, code, err := runErr(t, "proof", "export", "--case", caseID, "--out", filepath.Join(dir, "mismatch.json"), "--outputs", outFile); code != exitTampered || err == nil {
		t.Errorf("proof export of a table that disagrees with the archive: exit %d %v", code, err)
	}

	// The checkpoint log lost (a stack rebuilt from the archive): proof
	// export takes the archive object's own proof, which verifies offline.
	deleteReceipts(t, ctx, db, rt, caseID)
	emptyTable(t, ctx, db, outs[stack.OutCheckpointsTable])
	if out, errOut, code := run(t, "proof", "export", "--case", caseID, "--out", bundleFile, "--outputs", outFile); code != 0 || !strings.Contains(out, "source: archive") {
		t.Fatalf("proof export without a checkpoint log: %d %s %s", code, out, errOut)
	}
	if out, _, code := run(t, "proof", "verify", bundleFile, "--public-key", pemFile); code != 0 || !strings.Contains(out, `"verified": true`) {
		t.Fatalf("proof verify of the archive object's bundle: %d %s", code, out)
	}

	// Neither in the table nor in the archive.
	for _, args := range [][]string{{"receipts", "no-such-case"}, {"case", "show", "no-such-case"}, {"verify", "--case", "no-such-case"},
		{"proof", "export", "--case", "no-such-case", "--out", filepath.Join(dir, "none.json")}} {
		if _, code, err := runErr(t, append(args, "--outputs", outFile)...); code != 2 || !errors.Is(err, errCaseNotFound) {
			t.Errorf("%s of an unknown case: exit %d, %v", args[0], code, err)
		}
	}
}

// deleteReceipts deletes every receipt item of a case, as the table's time
// to live does.
func deleteReceipts(t *testing.T, ctx context.Context, db *dynamodb.Client, table, caseID string) {
	t.Helper()
	out, err := db.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(table), KeyConditionExpression: aws.String("#c = :c"),
		ExpressionAttributeNames:  map[string]string{"#c": receipt.AttrCase},
		ExpressionAttributeValues: map[string]dbtypes.AttributeValue{":c": &dbtypes.AttributeValueMemberS{Value: caseID}}})
	if err != nil || len(out.Items) == 0 {
		t.Fatalf("receipt items of %s: %d, %v", caseID, len(out.Items), err)
	}
	for _, it := range out.Items {
		k := map[string]dbtypes.AttributeValue{receipt.AttrCase: it[receipt.AttrCase], receipt.AttrSeq: it[receipt.AttrSeq]}
		if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: k}); err != nil {
			t.Fatal(err)
		}
	}
}

// emptyTable deletes every item of a table.
func emptyTable(t *testing.T, ctx context.Context, db *dynamodb.Client, table string) {
	t.Helper()
	d, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			k := map[string]dbtypes.AttributeValue{}
			for _, ks := range d.Table.KeySchema {
				k[aws.ToString(ks.AttributeName)] = it[aws.ToString(ks.AttributeName)]
			}
			if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: k}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// mustGet reads the archive object version an index entry names.
func mustGet(t *testing.T, b *objects.Versioned, s archive.Summary) []byte {
	t.Helper()
	data, err := b.Get(context.Background(), s.Key, s.VersionID, archive.MaxSize)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// deleteIndexEntry deletes a case's archive index entry.
func deleteIndexEntry(t *testing.T, ctx context.Context, db *dynamodb.Client, table, caseID string) {
	t.Helper()
	k := map[string]dbtypes.AttributeValue{store.AttrPK: &dbtypes.AttributeValueMemberS{Value: "CASE#" + caseID}, store.AttrSK: &dbtypes.AttributeValueMemberS{Value: "ARCHIVED"}}
	if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: k}); err != nil {
		t.Fatal(err)
	}
}
