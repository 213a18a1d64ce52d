package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/store"
)

// TestPayloadBlobs on the local endpoint: the readers of `case show` and
// `case list --open` find a payload in the payloads bucket and one the
// state table held before the move; a stack without the bucket reads the
// state table alone; restore writes to the bucket when it has one, else to
// the state table.
func TestPayloadBlobs(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	if err := store.CreateTables(ctx, db, "receipts", "state"); err != nil {
		t.Fatal(err)
	}
	if _, err := objects.NewClient(cfg).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("payloads")}); err != nil {
		t.Fatal(err)
	}
	blob := func(s string) receipt.Blob {
		sum := sha256.Sum256([]byte(s))
		return receipt.Blob{Hash: hex.EncodeToString(sum[:]), Bytes: []byte(s)}
	}
	inBucket, inState := blob(`{"where":"bucket"}`), blob(`{"where":"state"}`)
	if err := restoreBlobs(cfg, db, "state", "payloads").PutBlob(ctx, inBucket); err != nil {
		t.Fatal(err)
	}
	if err := restoreBlobs(cfg, db, "state", "").PutBlob(ctx, inState); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		bucket string
		blob   receipt.Blob
		found  bool
	}{
		{"bucket: written there", "payloads", inBucket, true},
		{"bucket: written to the state table before", "payloads", inState, true},
		{"no bucket: state table", "", inState, true},
		{"no bucket: the bucket is not read", "", inBucket, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := payloadBlobs(cfg, db, "state", tc.bucket).Blob(ctx, tc.blob.Hash)
			if !tc.found {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("read %q %v, want not found", got, err)
				}
				return
			}
			if err != nil || string(got) != string(tc.blob.Bytes) {
				t.Fatalf("read %q %v, want %q", got, err, tc.blob.Bytes)
			}
		})
	}
}
