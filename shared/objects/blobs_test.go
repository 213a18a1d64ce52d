package objects_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/knhk/knhk/shared/limits"
	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/store"
)

func blobOf(s string) receipt.Blob {
	sum := sha256.Sum256([]byte(s))
	return receipt.Blob{Hash: hex.EncodeToString(sum[:]), Bytes: []byte(s)}
}

// TestBlobs on the local endpoint: a detached payload is written under
// blobs/<sha256> of the payloads bucket (not inputs/, not the state table);
// one written to the state table before the move still reads through the
// fallback; a payload neither holds is ErrNotFound of both stores; a
// payload whose bytes do not match its name is refused on write and on read
// (from the bucket, with no fallback to a legacy copy); an oversized one is
// refused.
func TestBlobs(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := objects.NewClient(cfg)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("blobs-test")}); err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	if err := store.CreateTables(ctx, db, "receipts", "state"); err != nil {
		t.Fatal(err)
	}
	bucket := objects.New(c, "blobs-test")
	state := store.NewState(db, "state")
	blobs := objects.NewBlobs(bucket, state)

	fresh, old, forged, missing := blobOf(`{"x":"fresh"}`), blobOf(`{"x":"old"}`), blobOf(`{"x":"forged"}`), blobOf(`{"x":"missing"}`)
	if err := blobs.PutBlob(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if err := state.PutBlob(ctx, old); err != nil {
		t.Fatal(err)
	}
	// A forged object in the bucket must not be masked by a good legacy copy.
	if err := state.PutBlob(ctx, forged); err != nil {
		t.Fatal(err)
	}
	if err := bucket.Put(ctx, objects.BlobKey(forged.Hash), "application/json", []byte(`{"x":"other"}`)); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		hash     string
		want     string
		notFound bool
		fails    bool
	}{
		{name: "written to the bucket", hash: fresh.Hash, want: string(fresh.Bytes)},
		{name: "written to the state table before the move", hash: old.Hash, want: string(old.Bytes)},
		{name: "held by neither", hash: missing.Hash, notFound: true, fails: true},
		{name: "forged in the bucket", hash: forged.Hash, fails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := blobs.Blob(ctx, tc.hash)
			if tc.fails {
				if err == nil {
					t.Fatalf("read %q, want an error", got)
				}
				if errors.Is(err, objects.ErrNotFound) != tc.notFound || errors.Is(err, store.ErrNotFound) != tc.notFound {
					t.Fatalf("error %v: not found of both stores = %v, want %v", err, !tc.notFound, tc.notFound)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("read %q %v, want %q", got, err, tc.want)
			}
		})
	}

	if got, err := bucket.Get(ctx, objects.BlobKey(fresh.Hash), 0); err != nil || string(got) != string(fresh.Bytes) {
		t.Errorf("blobs/<sha256>: %q %v", got, err)
	}
	if _, err := bucket.Get(ctx, objects.InputKey(fresh.Hash), 0); !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("a detached payload was written under inputs/: %v", err)
	}
	if _, err := state.Blob(ctx, fresh.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a detached payload was written to the state table: %v", err)
	}
	if err := blobs.PutBlob(ctx, receipt.Blob{Hash: fresh.Hash, Bytes: []byte(`{}`)}); err == nil {
		t.Error("a payload not matching its hash was stored")
	}
	if err := blobs.PutBlob(ctx, blobOf(`"`+strings.Repeat("a", limits.MaxValueBytes)+`"`)); err == nil {
		t.Error("a payload over the limit on recorded values was stored")
	}
	// Without a legacy store a missing payload is the bucket's ErrNotFound.
	if _, err := objects.NewBlobs(bucket, nil).Blob(ctx, old.Hash); !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("no legacy store: %v, want ErrNotFound", err)
	}
}
