package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/jcs"
)

// State table key attributes (both S).
const (
	AttrPK = "pk"
	AttrSK = "sk"
)

// BlobStore keeps payloads too large to inline in a receipt.
type BlobStore interface {
	PutBlob(ctx context.Context, b receipt.Blob) error
	Blob(ctx context.Context, hash string) ([]byte, error)
}

// MaxBlob is the largest detached payload one state-table item holds
// (DynamoDB items are limited to 400 KB including names and keys).
const MaxBlob = 390 << 10

// ErrNotFound is returned when a requested item does not exist.
var ErrNotFound = errors.New("not found")

// State is the adapter of the state table (pk S, sk S): detached payloads
// written before they moved to the payloads bucket, checkpoints and
// per-case proofs.
type State struct {
	db    DynamoDB
	table string
}

// NewState returns a store over the named state table.
func NewState(db DynamoDB, table string) *State { return &State{db: db, table: table} }

func blobKey(hash string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		AttrPK: &types.AttributeValueMemberS{Value: "BLOB#" + hash},
		AttrSK: &types.AttributeValueMemberS{Value: "BLOB"},
	}
}

// PutBlob stores a payload under pk=BLOB#<sha256>. Blobs are content
// addressed, so writing one twice is harmless. Detached payloads go to the
// payloads bucket (objects.Blobs); the state table keeps them only for a
// stack without that bucket, and objects.Blobs reads those written here
// before they moved.
func (s *State) PutBlob(ctx context.Context, b receipt.Blob) error {
	if len(b.Bytes) > MaxBlob {
		return fmt.Errorf("blob %s: %d bytes exceed the %d-byte item limit", b.Hash, len(b.Bytes), MaxBlob)
	}
	if sum := sha256.Sum256(b.Bytes); hex.EncodeToString(sum[:]) != b.Hash {
		return fmt.Errorf("blob %s: content does not match its hash", b.Hash)
	}
	item := blobKey(b.Hash)
	item["b"] = &types.AttributeValueMemberB{Value: b.Bytes}
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item}); err != nil {
		return fmt.Errorf("put blob %s: %w", b.Hash, err)
	}
	return nil
}

// Blob reads a payload by hash and checks it against the hash.
func (s *State) Blob(ctx context.Context, hash string) ([]byte, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: blobKey(hash), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", hash, err)
	}
	v, ok := out.Item["b"].(*types.AttributeValueMemberB)
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", hash, ErrNotFound)
	}
	if sum := sha256.Sum256(v.Value); hex.EncodeToString(sum[:]) != hash {
		return nil, fmt.Errorf("blob %s: stored content does not match its hash", hash)
	}
	return v.Value, nil
}

// ByReference moves a start message's inline input into a blob of the state
// table and names it in InputRef, for inputs that would make the message
// body exceed the queue's limit (docs/messages.md). The input must be within
// the limits on recorded values; the executor reads the blob back.
func ByReference(ctx context.Context, blobs BlobStore, s *message.Start) error {
	if err := s.CheckInput(); err != nil {
		return err
	}
	c, err := jcs.Canonicalize(s.Input)
	if err != nil {
		return fmt.Errorf("input by reference: %w", err)
	}
	sum := sha256.Sum256(c)
	b := receipt.Blob{Hash: hex.EncodeToString(sum[:]), Bytes: c}
	if err := blobs.PutBlob(ctx, b); err != nil {
		return fmt.Errorf("input by reference: %w", err)
	}
	s.Input, s.InputRef = nil, "sha256:"+b.Hash
	return nil
}
