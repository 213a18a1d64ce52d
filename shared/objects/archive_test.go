package objects_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/objects"
)

// TestVersionedLockedBucket on the local endpoint: a bucket created with
// Object Lock keeps every put as a version that reads back by id, a legal
// hold is set and released, and the endpoint refuses to delete a version
// under retention (governance mode, without the bypass header) or on legal
// hold, as S3 does. List names the latest keys under a prefix, Prefixes the
// next path segments under it.
func TestVersionedLockedBucket(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := objects.NewClient(cfg)
	if err := objects.CreateLockedBucket(ctx, c, "locked-test", objects.Governance, 1); err != nil {
		t.Fatal(err)
	}
	b := objects.NewVersioned(c, "locked-test")
	v1, err := b.Put(ctx, "archive/a.json", "application/json", []byte(`{"v":1}`))
	if err != nil || v1 == "" {
		t.Fatalf("put: %q %v", v1, err)
	}
	v2, err := b.Put(ctx, "archive/a.json", "application/json", []byte(`{"v":2}`))
	if err != nil || v2 == v1 {
		t.Fatalf("second put: %q %v", v2, err)
	}
	if got, err := b.Get(ctx, "archive/a.json", v1, 100); err != nil || string(got) != `{"v":1}` {
		t.Fatalf("version 1: %q %v", got, err)
	}
	if got, err := b.Get(ctx, "archive/a.json", "", 100); err != nil || string(got) != `{"v":2}` {
		t.Fatalf("latest: %q %v", got, err)
	}
	// List names each key once however many versions it has, under the prefix only.
	if _, err := b.Put(ctx, "other/b.json", "application/json", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if keys, err := b.List(ctx, "archive/"); err != nil || len(keys) != 1 || keys[0] != "archive/a.json" {
		t.Fatalf("list: %q %v", keys, err)
	}
	// Prefixes names each next path segment once, not the keys directly under the prefix.
	for _, k := range []string{"archive/v1/acme/c1.json", "archive/v1/acme/c2.json", "archive/v1/b%2Fc/c3.json"} {
		if _, err := b.Put(ctx, k, "application/json", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if segs, err := b.Prefixes(ctx, "archive/v1/"); err != nil || len(segs) != 2 || segs[0] != "acme" || segs[1] != "b%2Fc" {
		t.Fatalf("prefixes: %q %v", segs, err)
	}
	if segs, err := b.Prefixes(ctx, "archive/"); err != nil || len(segs) != 1 || segs[0] != "v1" {
		t.Fatalf("prefixes of archive/: %q %v", segs, err)
	}
	if _, err := b.Get(ctx, "archive/a.json", v1, 3); err == nil {
		t.Error("an object over the limit was read")
	}
	if _, err := b.Get(ctx, "archive/missing.json", "", 100); !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("missing key: %v", err)
	}
	if err := b.SetLegalHold(ctx, "archive/a.json", v1, true); err != nil {
		t.Fatal(err)
	}
	if on, err := b.LegalHold(ctx, "archive/a.json", v1); err != nil || !on {
		t.Fatalf("legal hold %v %v", on, err)
	}
	for _, v := range []string{v1, v2} {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("locked-test"), Key: aws.String("archive/a.json"), VersionId: aws.String(v)}); err == nil {
			t.Errorf("version %s under retention was deleted", v)
		}
	}
	if err := b.SetLegalHold(ctx, "archive/a.json", v1, false); err != nil {
		t.Fatal(err)
	}
	if on, err := b.LegalHold(ctx, "archive/a.json", v1); err != nil || on {
		t.Fatalf("legal hold after release %v %v", on, err)
	}
}
