package objects

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/knhk/knhk/shared/limits"
	"github.com/knhk/knhk/shared/receipt"
)

// InputPrefix is the key prefix of inputs sent by reference: an input is
// stored under inputs/<sha256 of its canonical JSON>.
const InputPrefix = "inputs/"

// Payloads is the payloads bucket: the claim check of inputs too large for
// a message (the convention of the SQS Extended Client). Keys are content
// hashes, so a repeated upload writes the same object again.
type Payloads struct{ b *Bucket }

// NewPayloads returns the payloads bucket b.
func NewPayloads(b *Bucket) *Payloads { return &Payloads{b: b} }

// InputKey is the object key of the input whose hash is hash.
func InputKey(hash string) string { return InputPrefix + hash }

// PutBlob uploads a payload under its hash, after checking it has that hash.
func (p *Payloads) PutBlob(ctx context.Context, blob receipt.Blob) error {
	if err := checkHash(blob.Hash, blob.Bytes); err != nil {
		return err
	}
	return p.b.Put(ctx, InputKey(blob.Hash), "application/json", blob.Bytes)
}

// Blob reads the payload whose hash is hash and checks its content against
// it; a payload the bucket does not hold is ErrNotFound.
func (p *Payloads) Blob(ctx context.Context, hash string) ([]byte, error) {
	body, err := p.b.Get(ctx, InputKey(hash), limits.MaxValueBytes)
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
