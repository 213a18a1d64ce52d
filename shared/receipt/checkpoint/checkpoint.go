// Package checkpoint anchors chain heads outside the writer's reach: a
// Merkle tree over the heads of all cases, a signed tree head (STH) and
// per-case inclusion proofs that verify offline with only the public key.
package checkpoint

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/knhk/knhk/shared/receipt/jcs"
	"github.com/knhk/knhk/shared/receipt/merkle"
)

// Domain prefixes the canonical tree head before hashing and signing, so an
// STH signature can never be replayed as a signature of anything else.
const Domain = "knhk.sth.v1\x00"

// Version is the tree head schema version. Version 2 heads form a log: each
// names its predecessor and its position in the sequence of checkpoints.
const Version = 2

// TimeLayout is the format of TreeHead.Time.
const TimeLayout = time.RFC3339Nano

// Signer signs SHA-256 digests with an ECDSA P-256 key.
type Signer interface {
	Sign(ctx context.Context, digest []byte) (sig []byte, keyID string, err error)
	PublicKey(ctx context.Context) (crypto.PublicKey, error)
}

// messageSigner is implemented by signers that can be handed the message
// itself and hash it with SHA-256 on their side (KMS MessageType RAW); the
// signature is the same kind as Sign over SHA-256(message).
type messageSigner interface {
	SignMessage(ctx context.Context, msg []byte) (sig []byte, keyID string, err error)
}

// TreeHead is a signed tree head. Everything but Signature is signed.
type TreeHead struct {
	V         int    `json:"v"`
	Seq       uint64 `json:"seq"`      // position in the sequence of checkpoints, 0 for the first
	Prev      string `json:"prevHead"` // hex Digest() of the predecessor, 64 zeros for the first
	Size      uint64 `json:"size"`
	Root      string `json:"rootHash"`  // hex Merkle tree hash
	Period    string `json:"period"`    // what the checkpoint covers, e.g. 2026-03-01T12:00:00Z
	Time      string `json:"time"`      // when it was made, RFC 3339 UTC
	KeyID     string `json:"keyId"`     // hex SHA-256 of the signing key's PKIX DER public key
	Signature string `json:"signature"` // base64 ASN.1 DER ECDSA over Digest()
}

// Message is what the signature covers: Domain followed by the canonical
// JSON of the head without its signature.
func (h *TreeHead) Message() []byte {
	b := append([]byte(Domain), `{"keyId":`...)
	b = jcs.AppendString(b, h.KeyID)
	b = append(b, `,"period":`...)
	b = jcs.AppendString(b, h.Period)
	b = append(b, `,"prevHead":`...)
	b = jcs.AppendString(b, h.Prev)
	b = append(b, `,"rootHash":`...)
	b = jcs.AppendString(b, h.Root)
	b = append(b, `,"seq":`...)
	b = jcs.AppendInt(b, int64(h.Seq))
	b = append(b, `,"size":`...)
	b = jcs.AppendInt(b, int64(h.Size))
	b = append(b, `,"time":`...)
	b = jcs.AppendString(b, h.Time)
	b = append(b, `,"v":`...)
	b = jcs.AppendInt(b, int64(h.V))
	return append(b, '}')
}

// Digest is SHA-256(Message()).
func (h *TreeHead) Digest() [32]byte { return sha256.Sum256(h.Message()) }

// Errors of verification.
var (
	ErrBadSignature = errors.New("signature does not verify")
	ErrWrongKey     = errors.New("tree head was signed by another key")
	ErrMalformed    = errors.New("malformed tree head")
)

// Verify checks the head's fields and its signature with pub.
func (h *TreeHead) Verify(pub crypto.PublicKey) error {
	if h.V != Version || h.Size > jcs.MaxSafeInt || h.Seq > jcs.MaxSafeInt {
		return fmt.Errorf("%w: version %d, size %d, seq %d", ErrMalformed, h.V, h.Size, h.Seq)
	}
	if _, err := merkle.ParseHash(h.Root); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := merkle.ParseHash(h.Prev); err != nil {
		return fmt.Errorf("%w: prevHead: %w", ErrMalformed, err)
	}
	if _, err := time.Parse(TimeLayout, h.Time); err != nil {
		return fmt.Errorf("%w: time: %w", ErrMalformed, err)
	}
	id, err := KeyID(pub)
	if err != nil {
		return err
	}
	if id != h.KeyID {
		return fmt.Errorf("%w: key %s, head names %s", ErrWrongKey, id, h.KeyID)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(h.Signature)
	if err != nil || base64.StdEncoding.EncodeToString(sig) != h.Signature {
		return fmt.Errorf("%w: signature is not canonical base64", ErrMalformed)
	}
	d := h.Digest()
	return VerifyDigest(pub, d[:], sig)
}

// Proof proves that one case's head is a leaf of a signed tree.
type Proof struct {
	Leaf  merkle.Head `json:"leaf"`
	Index uint64      `json:"leafIndex"`
	Path  []string    `json:"path"` // hex sibling hashes, leaf to root
}

// Verify checks the inclusion of the proof's leaf in the tree of h. It does
// not check h's signature (see TreeHead.Verify).
func (p *Proof) Verify(h *TreeHead) error {
	root, err := merkle.ParseHash(h.Root)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	path := make([]merkle.Hash, len(p.Path))
	for i, s := range p.Path {
		if path[i], err = merkle.ParseHash(s); err != nil {
			return fmt.Errorf("inclusion proof: %w", err)
		}
	}
	if err := merkle.VerifyInclusion(p.Leaf.LeafHash(), p.Index, h.Size, path, root); err != nil {
		return fmt.Errorf("case %s head seq %d is not in the signed tree: %w", p.Leaf.CaseID, p.Leaf.Seq, err)
	}
	return nil
}

// Checkpoint is a signed tree over the chain heads of a period.
type Checkpoint struct {
	Head TreeHead
	// Heads are the leaves in tree order: sorted by tenant, then case.
	Heads []merkle.Head
	// SignerKey is the key the signer reported (a KMS key ARN).
	SignerKey string

	tree  *merkle.Tree
	index map[string]int
}

// ErrDuplicateCase is returned when two heads name the same case.
var ErrDuplicateCase = errors.New("two heads for one case")

// Create builds the tree over heads and signs its head.
func Create(ctx context.Context, heads []merkle.Head, period string, now time.Time, s Signer) (*Checkpoint, error) {
	c := &Checkpoint{Heads: slices.Clone(heads)}
	slices.SortFunc(c.Heads, func(a, b merkle.Head) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.CaseID, b.CaseID))
	})
	if err := c.build(); err != nil {
		return nil, err
	}
	c.Head = TreeHead{Size: c.tree.Size(), Root: c.tree.Root().String(), Period: period, Prev: merkle.ZeroHash}
	var err error
	if c.SignerKey, err = sign(ctx, &c.Head, now, s); err != nil {
		return nil, err
	}
	return c, nil
}

// sign completes h (version, time, key id), signs it and checks the fresh
// signature; it returns the key the signer reported.
func sign(ctx context.Context, h *TreeHead, now time.Time, s Signer) (string, error) {
	pub, err := s.PublicKey(ctx)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if h.KeyID, err = KeyID(pub); err != nil {
		return "", err
	}
	h.V, h.Time = Version, now.UTC().Format(TimeLayout)
	var sig []byte
	var signerKey string
	if ms, ok := s.(messageSigner); ok {
		sig, signerKey, err = ms.SignMessage(ctx, h.Message())
	} else {
		d := h.Digest()
		sig, signerKey, err = s.Sign(ctx, d[:])
	}
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	h.Signature = base64.StdEncoding.EncodeToString(sig)
	if err := h.Verify(pub); err != nil {
		return "", fmt.Errorf("checkpoint: fresh signature: %w", err)
	}
	return signerKey, nil
}

// Load rebuilds a checkpoint from a stored head and its leaves, checking
// that the leaves produce the signed root.
func Load(head TreeHead, heads []merkle.Head) (*Checkpoint, error) {
	c := &Checkpoint{Head: head, Heads: heads}
	if err := c.build(); err != nil {
		return nil, err
	}
	if c.tree.Root().String() != head.Root || c.tree.Size() != head.Size {
		return nil, fmt.Errorf("%w: leaves do not produce the signed root", ErrMalformed)
	}
	return c, nil
}

func (c *Checkpoint) build() error {
	c.index = make(map[string]int, len(c.Heads))
	for i, h := range c.Heads {
		if _, dup := c.index[h.CaseID]; dup {
			return fmt.Errorf("%w: %s", ErrDuplicateCase, h.CaseID)
		}
		c.index[h.CaseID] = i
	}
	c.tree = merkle.FromHeads(c.Heads)
	return nil
}

// ErrNotInCheckpoint is returned for a case the checkpoint does not cover.
var ErrNotInCheckpoint = errors.New("case not in checkpoint")

// Proof returns the inclusion proof of a case's head.
func (c *Checkpoint) Proof(caseID string) (Proof, error) {
	i, ok := c.index[caseID]
	if !ok {
		return Proof{}, fmt.Errorf("%s: %w", caseID, ErrNotInCheckpoint)
	}
	path, err := c.tree.InclusionProof(uint64(i))
	if err != nil {
		return Proof{}, err
	}
	p := Proof{Leaf: c.Heads[i], Index: uint64(i), Path: make([]string, len(path))}
	for j, h := range path {
		p.Path[j] = h.String()
	}
	return p, nil
}

// KeyID is a public key's fingerprint: hex SHA-256 of its PKIX DER form.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:]), nil
}

// VerifyDigest checks an ASN.1 DER ECDSA signature over a SHA-256 digest.
func VerifyDigest(pub crypto.PublicKey, digest, sig []byte) error {
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("public key is %T, want ECDSA", pub)
	}
	if !ecdsa.VerifyASN1(ec, digest, sig) {
		return ErrBadSignature
	}
	return nil
}

// EncodePublicKeyPEM encodes a public key as a PEM "PUBLIC KEY" block.
func EncodePublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKeyPEM decodes the first PEM "PUBLIC KEY" block; it must hold
// an ECDSA key.
func ParsePublicKeyPEM(b []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("no PEM PUBLIC KEY block")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("public key is %T, want ECDSA", pub)
	}
	return pub, nil
}
