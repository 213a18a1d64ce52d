package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/archiver"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/signer"
	"github.com/knhk/knhk/shared/store"
)

// runArchiver invokes the deployed archiver once, as its schedule does,
// retrying while a scheduled run holds the lease.
func runArchiver(t *testing.T, ctx context.Context) archiver.Result {
	t.Helper()
	name := ""
	for n := range suite.env.Lambda.Stack().Functions {
		if strings.HasSuffix(n, "-"+archiver.FunctionName) {
			name = n
		}
	}
	if name == "" {
		t.Fatalf("the deployed stack has no archiver function: %v", suite.env.Lambda.Stack().Notes)
	}
	for {
		out, err := suite.env.Lambda.Invoke(ctx, name, []byte(`{"source":"aws.events","detail-type":"Scheduled Event"}`))
		if err != nil {
			t.Fatalf("invoke %s: %v", name, err)
		}
		if out.FunctionError != "" {
			t.Fatalf("archiver failed: %s %s", out.Reason, out.Payload)
		}
		var r archiver.Result
		if err := json.Unmarshal(out.Payload, &r); err != nil {
			t.Fatalf("archiver result %s: %v", out.Payload, err)
		}
		if !r.Busy {
			return r
		}
		select {
		case <-ctx.Done():
			t.Fatal("archiver lease never free")
		case <-time.After(time.Second):
		}
	}
}

// receiptItemKeys returns the keys of a case's receipt items and their
// expiresAt ("" when none).
func receiptItemKeys(t *testing.T, ctx context.Context, id string) ([]map[string]ddbtypes.AttributeValue, []string) {
	t.Helper()
	out, err := suite.db.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(suite.res.ReceiptsTable), KeyConditionExpression: aws.String("caseId = :c"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":c": &ddbtypes.AttributeValueMemberS{Value: id}}, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []map[string]ddbtypes.AttributeValue
	var ex []string
	for _, it := range out.Items {
		keys = append(keys, map[string]ddbtypes.AttributeValue{receipt.AttrCase: it[receipt.AttrCase], receipt.AttrSeq: it[receipt.AttrSeq]})
		v, _ := it[receipt.AttrExpires].(*ddbtypes.AttributeValueMemberN)
		if v == nil {
			ex = append(ex, "")
		} else {
			ex = append(ex, v.Value)
		}
	}
	return keys, ex
}

// TestArchive on the deployed stack: cases end, are checkpointed by the
// deployed checkpointer and archived by the deployed archiver; each object
// read from the archive bucket verifies with the stack's KMS public key,
// the receipts expire only then, `knhk archive list` lists them and `knhk
// archive verify` verifies a downloaded object; the endpoint refuses to
// delete an archived version (Object Lock); a deleted item of an archived
// case is not a finding, one of a case that is not archived is. A case
// whose input is over the inline limit has its detached payloads in the
// payloads bucket (blobs/<sha256>), not the state table, and its archive
// object embeds them.
func TestArchive(t *testing.T) {
	if suite.external || suite.env == nil {
		t.Skip("invokes the checkpointer and the archiver through the local Lambda service")
	}
	noteFailure(t)
	ctx := ctxFor(t, 240*time.Second)
	in := map[string]any{"qty": 2, "unitPrice": 10}
	big := map[string]any{"qty": 2, "unitPrice": 10, "note": strings.Repeat("x", receipt.InlineLimit)}
	cases := []localrun.Case{newCase("e2e", "five-tasks", "arch-a", in), newCase("e2e", "five-tasks", "arch-b", in), newCase("e2e", "five-tasks", "arch-big", big)}
	if err := localrun.Submit(ctx, suite.work, cases); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, cases)
	for _, c := range cases {
		awaitWatermark(t, ctx, c.ID, int64(len(readChain(t, ctx, c.ID))-1))
	}
	if r := runCheckpointer(t, ctx); len(r.Refused) != 0 {
		t.Fatalf("checkpoint: %+v", r)
	}
	var archived []string
	for range 5 { // earlier tests' cases come first; a run archives at most 200
		r := runArchiver(t, ctx)
		if len(r.Refused) != 0 {
			t.Fatalf("archive run refused %v", r.Refused)
		}
		archived = append(archived, r.Archived...)
		if !r.More {
			break
		}
	}
	pub, err := signer.NewKMS(kms.NewFromConfig(suite.cfg), suite.res.CheckpointKeyID).PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pemb, err := checkpoint.EncodePublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "checkpoint.pem")
	if err := os.WriteFile(keyFile, pemb, 0o644); err != nil {
		t.Fatal(err)
	}
	sc := objects.NewClient(suite.cfg)
	bucket := objects.NewVersioned(sc, suite.res.ArchiveBucket)
	idx := store.NewArchives(suite.db, suite.res.StateTable)
	for _, c := range cases {
		if !slices.Contains(archived, c.ID) {
			t.Fatalf("%s not archived (archived %v)", c.ID, archived)
		}
		s, ok, err := idx.Archived(ctx, c.ID)
		if err != nil || !ok {
			t.Fatalf("%s not indexed: %v", c.ID, err)
		}
		data, err := bucket.Get(ctx, s.Key, s.VersionID, archive.MaxSize)
		if err != nil {
			t.Fatal(err)
		}
		a, err := archive.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := archive.Verify(a, pub); err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
		if wantPayloads := c.ID == cases[2].ID; (len(a.Payloads) > 0) != wantPayloads {
			t.Fatalf("%s: %d detached payloads archived", c.ID, len(a.Payloads))
		}
		for _, p := range a.Payloads {
			if _, err := objects.New(sc, suite.res.PayloadBucket).Get(ctx, objects.BlobKey(p.Hash), 0); err != nil {
				t.Fatalf("%s: payload %s not under blobs/ of the payloads bucket: %v", c.ID, p.Hash, err)
			}
			if _, err := store.NewState(suite.db, suite.res.StateTable).Blob(ctx, p.Hash); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s: payload %s written to the state table: %v", c.ID, p.Hash, err)
			}
		}
		_, ex := receiptItemKeys(t, ctx, c.ID)
		if len(ex) == 0 || slices.Contains(ex, "") {
			t.Fatalf("%s expiries %v", c.ID, ex)
		}
		t.Logf("%s: %d receipts, archive object %d bytes", c.ID, len(a.Receipts), len(data))
		file := filepath.Join(t.TempDir(), c.ID+".json")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, code := knhkCLI(t, ctx, "archive", "verify", file, "--public-key", keyFile); code != 0 {
			t.Fatalf("archive verify %s: %d %s", c.ID, code, out)
		}
		if _, err := sc.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(suite.res.ArchiveBucket), Key: aws.String(s.Key), VersionId: aws.String(s.VersionID)}); err == nil {
			t.Fatalf("%s: the endpoint deleted a version under Object Lock", c.ID)
		}
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	out, code := knhkCLI(t, ctx, "archive", "list", "--from", day.Add(-24*time.Hour).Format(time.DateOnly), "--to", day.Add(48*time.Hour).Format(time.DateOnly))
	if code != 0 || !strings.Contains(out, cases[0].ID) || !strings.Contains(out, cases[1].ID) {
		t.Fatalf("archive list: %d %s", code, out)
	}

	// A deleted item of the archived case is retention, not tampering.
	keys, _ := receiptItemKeys(t, ctx, cases[0].ID)
	if _, err := suite.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(suite.res.ReceiptsTable), Key: keys[0]}); err != nil {
		t.Fatal(err)
	}
	// One of a case that ended but is not archived is a finding.
	open := newCase("e2e", "five-tasks", "arch-unarchived", in)
	if err := localrun.Submit(ctx, suite.work, []localrun.Case{open}); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, []localrun.Case{open})
	awaitWatermark(t, ctx, open.ID, int64(len(readChain(t, ctx, open.ID))-1))
	okeys, _ := receiptItemKeys(t, ctx, open.ID)
	if _, err := suite.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(suite.res.ReceiptsTable), Key: okeys[0]}); err != nil {
		t.Fatal(err)
	}
	awaitFinding(t, ctx, open.ID, receipt.Removed)
	if fs, err := suite.findings.Case(ctx, cases[0].ID); err != nil || len(fs) != 0 {
		t.Fatalf("the archived case's deletion is a finding: %v %v", fs, err)
	}
}
