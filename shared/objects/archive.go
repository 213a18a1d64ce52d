package objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// VersionedAPI is the part of the S3 client the archive bucket uses.
type VersionedAPI interface {
	API
	PutObjectLegalHold(ctx context.Context, in *s3.PutObjectLegalHoldInput, opts ...func(*s3.Options)) (*s3.PutObjectLegalHoldOutput, error)
	GetObjectLegalHold(ctx context.Context, in *s3.GetObjectLegalHoldInput, opts ...func(*s3.Options)) (*s3.GetObjectLegalHoldOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// Versioned is a versioned bucket under Object Lock (the archive bucket):
// every write is a new version that the bucket's default retention
// protects, reads name the version, and a version can be put on legal hold.
type Versioned struct {
	client VersionedAPI
	name   string
}

// NewVersioned returns the versioned bucket name reached through client.
func NewVersioned(client VersionedAPI, name string) *Versioned {
	return &Versioned{client: client, name: name}
}

// Name is the bucket's name.
func (b *Versioned) Name() string { return b.name }

// Put writes body as a new version of key with a SHA-256 checksum (Object
// Lock requires an integrity checksum on every write) and returns the
// version's id.
func (b *Versioned) Put(ctx context.Context, key, contentType string, body []byte) (string, error) {
	out, err := b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:            aws.String(b.name),
		Key:               aws.String(key),
		ContentType:       aws.String(contentType),
		ContentLength:     aws.Int64(int64(len(body))),
		Body:              bytes.NewReader(body),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	})
	if err != nil {
		return "", fmt.Errorf("put s3://%s/%s: %w", b.name, key, err)
	}
	return aws.ToString(out.VersionId), nil
}

// Get reads one version of key (the latest when versionID is empty), at
// most limit bytes; a missing object is ErrNotFound.
func (b *Versioned) Get(ctx context.Context, key, versionID string, limit int64) ([]byte, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		var nk *types.NoSuchKey
		var nf *types.NotFound
		if errors.As(err, &nk) || errors.As(err, &nf) {
			return nil, fmt.Errorf("s3://%s/%s: %w", b.name, key, ErrNotFound)
		}
		return nil, fmt.Errorf("get s3://%s/%s: %w", b.name, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", b.name, key, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("s3://%s/%s: larger than %d bytes", b.name, key, limit)
	}
	return body, nil
}

// SetLegalHold puts one version of key on legal hold (on) or releases it:
// a held version cannot be deleted whatever its retention.
func (b *Versioned) SetLegalHold(ctx context.Context, key, versionID string, on bool) error {
	status := types.ObjectLockLegalHoldStatusOff
	if on {
		status = types.ObjectLockLegalHoldStatusOn
	}
	in := &s3.PutObjectLegalHoldInput{Bucket: aws.String(b.name), Key: aws.String(key), LegalHold: &types.ObjectLockLegalHold{Status: status},
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	if _, err := b.client.PutObjectLegalHold(ctx, in); err != nil {
		return fmt.Errorf("legal hold on s3://%s/%s: %w", b.name, key, err)
	}
	return nil
}

// LegalHold reports whether one version of key is on legal hold.
func (b *Versioned) LegalHold(ctx context.Context, key, versionID string) (bool, error) {
	in := &s3.GetObjectLegalHoldInput{Bucket: aws.String(b.name), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	out, err := b.client.GetObjectLegalHold(ctx, in)
	if err != nil {
		return false, fmt.Errorf("read legal hold of s3://%s/%s: %w", b.name, key, err)
	}
	return out.LegalHold != nil && out.LegalHold.Status == types.ObjectLockLegalHoldStatusOn, nil
}

// LockMode is an Object Lock retention mode: Compliance (no principal, root
// included, can shorten the retention or delete a version before it ends)
// or Governance (principals with s3:BypassGovernanceRetention can).
type LockMode = types.ObjectLockRetentionMode

// The Object Lock modes.
const (
	Compliance LockMode = types.ObjectLockRetentionModeCompliance
	Governance LockMode = types.ObjectLockRetentionModeGovernance
)

// BucketCreator is the part of the S3 client CreateLockedBucket uses.
type BucketCreator interface {
	CreateBucket(ctx context.Context, in *s3.CreateBucketInput, opts ...func(*s3.Options)) (*s3.CreateBucketOutput, error)
	PutObjectLockConfiguration(ctx context.Context, in *s3.PutObjectLockConfigurationInput, opts ...func(*s3.Options)) (*s3.PutObjectLockConfigurationOutput, error)
}

// CreateLockedBucket creates a bucket with Object Lock (and so versioning)
// and a default retention of days in mode, for local runs and tests;
// deployed stacks get the archive bucket from the CDK template.
func CreateLockedBucket(ctx context.Context, c BucketCreator, name string, mode LockMode, days int32) error {
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	_, err := c.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: aws.String(name),
		ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled,
			Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionMode(mode), Days: aws.Int32(days)}}},
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		return fmt.Errorf("object lock configuration of %s: %w", name, err)
	}
	return nil
}

// List returns the keys of the latest versions under prefix, in key order,
// paginated (1,000 keys per request).
func (b *Versioned) List(ctx context.Context, prefix string) ([]string, error) {
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: aws.String(b.name), Prefix: aws.String(prefix)})
	var keys []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", b.name, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

// Prefixes returns the next path segment of every key under prefix (the
// common prefixes up to the next "/", without prefix or slash), in key
// order, paginated.
func (b *Versioned) Prefixes(ctx context.Context, prefix string) ([]string, error) {
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: aws.String(b.name), Prefix: aws.String(prefix), Delimiter: aws.String("/")})
	var out []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", b.name, prefix, err)
		}
		for _, c := range page.CommonPrefixes {
			seg := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(c.Prefix), prefix), "/")
			if seg != "" {
				out = append(out, seg)
			}
		}
	}
	return out, nil
}
