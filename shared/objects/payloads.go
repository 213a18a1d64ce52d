package objects

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/knhk/knhk/shared/limits"
	"github.com/knhk/knhk/shared/receipt"
)

// InputPrefix is the key prefix of inputs sent by reference: an input is
// stored under inputs/<sha256 of its canonical JSON>.
const InputPrefix = "inputs/"

// BlobPrefix is the key prefix of the detached payloads of receipts (task
// inputs and outputs over the inline limit): blobs/<sha256 of the canonical
// JSON>. It is apart from InputPrefix because the two live for different
// times: an input sent by reference only as long as a message can name it,
// a detached payload as long as a receipt can (docs/receipts.md).
const BlobPrefix = "blobs/"

// Payloads is the payloads bucket: the claim check of inputs too large for
// a message (the convention of the SQS Extended Client). Keys are content
// hashes, so a repeated upload writes the same object again.
type Payloads struct{ b *Bucket }

// NewPayloads returns the payloads bucket b.
func NewPayloads(b *Bucket) *Payloads { return &Payloads{b: b} }

// InputKey is the object key of the input whose hash is hash.
func InputKey(hash string) string { return InputPrefix + hash }

// BlobKey is the object key of the detached payload whose hash is hash.
func BlobKey(hash string) string { return BlobPrefix + hash }

// PutBlob uploads a payload under its hash, after checking it has that hash.
func (p *Payloads) PutBlob(ctx context.Context, blob receipt.Blob) error {
	return putHashed(ctx, p.b, InputKey(blob.Hash), blob)
}

// Blob reads the payload whose hash is hash and checks its content against
// it; a payload the bucket does not hold is ErrNotFound.
func (p *Payloads) Blob(ctx context.Context, hash string) ([]byte, error) {
	return getHashed(ctx, p.b, InputKey(hash), hash)
}

// Legacy reads the detached payloads written before they moved to the
// bucket: the state table's pk=BLOB#<sha256> items (store.State).
type Legacy interface {
	Blob(ctx context.Context, hash string) ([]byte, error)
}

// Blobs is the store of detached payloads (store.BlobStore): it writes
// them to the payloads bucket under blobs/<sha256> and reads them from
// there, falling back to the legacy store for payloads written before the
// move. A put returns once S3 has stored the object durably, so a receipt
// appended after it never names a payload that is not there.
type Blobs struct {
	b      *Bucket
	legacy Legacy
}

// NewBlobs returns the detached-payload store over the payloads bucket b;
// legacy (nil: none) answers reads of payloads the bucket does not hold.
func NewBlobs(b *Bucket, legacy Legacy) *Blobs { return &Blobs{b: b, legacy: legacy} }

// PutBlob uploads a detached payload under blobs/<sha256>, after checking
// it has that hash. Payloads are content addressed: writing one again, for
// this case or another, stores the same bytes.
func (s *Blobs) PutBlob(ctx context.Context, blob receipt.Blob) error {
	if len(blob.Bytes) > limits.MaxValueBytes {
		return fmt.Errorf("payload %s: %d bytes exceed the %d-byte limit on recorded values", blob.Hash, len(blob.Bytes), limits.MaxValueBytes)
	}
	return putHashed(ctx, s.b, BlobKey(blob.Hash), blob)
}

// Blob reads the detached payload whose hash is hash, from the bucket or,
// when the bucket does not hold it, from the legacy store, and checks its
// content against the hash. A payload neither holds is ErrNotFound (and,
// with a legacy store, whatever not-found error that store returned).
func (s *Blobs) Blob(ctx context.Context, hash string) ([]byte, error) {
	body, err := getHashed(ctx, s.b, BlobKey(hash), hash)
	if err == nil || !errors.Is(err, ErrNotFound) || s.legacy == nil {
		return body, err
	}
	body, lerr := s.legacy.Blob(ctx, hash)
	if lerr != nil {
		return nil, fmt.Errorf("payload %s: %w; legacy store: %w", hash, err, lerr)
	}
	return body, nil
}

func putHashed(ctx context.Context, b *Bucket, key string, blob receipt.Blob) error {
	if err := checkHash(blob.Hash, blob.Bytes); err != nil {
		return err
	}
	return b.Put(ctx, key, "application/json", blob.Bytes)
}

func getHashed(ctx context.Context, b *Bucket, key, hash string) ([]byte, error) {
	body, err := b.Get(ctx, key, limits.MaxValueBytes)
	if err != nil {
		return nil, err
	}
	if err := checkHash(hash, body); err != nil {
		return nil, err
	}
	return body, nil
}

func checkHash(hash string, body []byte) error {
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != hash {
		return fmt.Errorf("payload %s: content does not match its hash", hash)
	}
	return nil
}
