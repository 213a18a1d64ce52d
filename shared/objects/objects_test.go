package objects_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt"
)

// TestBucketAndPayloads on the local endpoint: a put object reads back, a
// missing key is ErrNotFound, an object over the read limit is refused, a
// payload is stored under inputs/<sha256> and read back checked against
// its hash, and a payload whose content does not match its name is refused
// both ways.
func TestBucketAndPayloads(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := objects.NewClient(cfg)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("objects-test")}); err != nil {
		t.Fatal(err)
	}
	b := objects.New(c, "objects-test")
	if err := b.Put(ctx, "a/b.json", "application/json", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "a/b.json", 0); err != nil || string(got) != `{"x":1}` {
		t.Fatalf("get %q %v", got, err)
	}
	if _, err := b.Get(ctx, "a/b.json", 3); err == nil {
		t.Error("an object over the limit was read")
	}
	if _, err := b.Get(ctx, "missing", 0); !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("missing key: %v, want ErrNotFound", err)
	}
	p := objects.NewPayloads(b)
	body := []byte(`{"attachment":"scanned"}`)
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if err := p.PutBlob(ctx, receipt.Blob{Hash: hash, Bytes: body}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, objects.InputKey(hash), 0); err != nil || string(got) != string(body) {
		t.Fatalf("inputs/<sha256>: %q %v", got, err)
	}
	if got, err := p.Blob(ctx, hash); err != nil || string(got) != string(body) {
		t.Fatalf("payload %q %v", got, err)
	}
	if err := p.PutBlob(ctx, receipt.Blob{Hash: hash, Bytes: []byte(`{}`)}); err == nil {
		t.Error("a payload not matching its hash was stored")
	}
	if err := b.Put(ctx, objects.InputKey(hash), "application/json", []byte(`{"forged":true}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Blob(ctx, hash); err == nil || errors.Is(err, objects.ErrNotFound) {
		t.Errorf("a payload whose content does not match its key was read: %v", err)
	}
	if _, err := p.Blob(ctx, "00"); !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("missing payload: %v", err)
	}
}
