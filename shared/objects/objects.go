// Package objects is the S3 adapter of the stack's buckets: the cost job's
// chargeback exports and the inputs that travel by reference (the claim
// check of docs/messages.md).
package objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// ErrNotFound is returned by Get for a key the bucket does not hold.
var ErrNotFound = errors.New("object not found")

// NewClient is an S3 client for cfg. With an endpoint override (the local
// endpoint) it addresses buckets by path, since a host name per bucket does
// not resolve there.
func NewClient(cfg aws.Config) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		// Objects put without a checksum (as the endpoint's are) read
		// back without one; that is not worth a log line per read.
		o.DisableLogOutputChecksumValidationSkipped = true
		if cfg.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
	})
}

// API is the part of the S3 client a Bucket uses.
type API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Bucket reads and writes objects of one bucket. Objects are encrypted by
// the bucket's default encryption (the stack's data key).
type Bucket struct {
	client API
	name   string
}

// New returns the bucket name reached through client.
func New(client API, name string) *Bucket { return &Bucket{client: client, name: name} }

// Name is the bucket's name.
func (b *Bucket) Name() string { return b.name }

// Put writes body under key, replacing what was there.
func (b *Bucket) Put(ctx context.Context, key, contentType string, body []byte) error {
	_, err := b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(b.name),
		Key:           aws.String(key),
		ContentType:   aws.String(contentType),
		ContentLength: aws.Int64(int64(len(body))),
		Body:          bytes.NewReader(body),
	})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", b.name, key, err)
	}
	return nil
}

// Get reads the object under key, at most limit bytes (0: no limit); a
// missing object is ErrNotFound, a larger one an error.
func (b *Bucket) Get(ctx context.Context, key string, limit int64) ([]byte, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
	if err != nil {
		var nk *types.NoSuchKey
		var nf *types.NotFound
		if errors.As(err, &nk) || errors.As(err, &nf) {
			return nil, fmt.Errorf("s3://%s/%s: %w", b.name, key, ErrNotFound)
		}
		return nil, fmt.Errorf("get s3://%s/%s: %w", b.name, key, err)
	}
	defer out.Body.Close()
	r := io.Reader(out.Body)
	if limit > 0 {
		r = io.LimitReader(out.Body, limit+1)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", b.name, key, err)
	}
	if limit > 0 && int64(len(body)) > limit {
		return nil, fmt.Errorf("s3://%s/%s: larger than %d bytes", b.name, key, limit)
	}
	return body, nil
}
