// Package bundle is the offline proof of one case: its receipts, the
// inclusion proof of its head in a signed checkpoint, and that checkpoint's
// signed tree head. An auditor verifies it with only the public key.
package bundle

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/jcs"
	"github.com/knhk/knhk/shared/receipt/merkle"
)

// Version is the bundle schema version.
const Version = 1

// Bundle is a case's proof bundle. Its file form is the RFC 8785
// canonical JSON of these members followed by a newline.
type Bundle struct {
	V        int                 `json:"v"`
	Tenant   string              `json:"tenant"`
	CaseID   string              `json:"caseId"`
	Receipts []*receipt.Receipt  `json:"receipts"` // seq 0 up to the checkpointed head
	Proof    checkpoint.Proof    `json:"proof"`
	TreeHead checkpoint.TreeHead `json:"treeHead"`
	// PublicKeyPEM optionally carries the signing key; Verify requires it
	// to be the key the auditor supplies.
	PublicKeyPEM string `json:"publicKeyPem,omitempty"`
}

// New assembles a bundle from a case's receipts (seq 0 onwards) and a
// checkpoint covering the case, with the public key when pub is not nil.
func New(rs []*receipt.Receipt, cp *checkpoint.Checkpoint, pub crypto.PublicKey) (*Bundle, error) {
	if len(rs) == 0 {
		return nil, errors.New("bundle: no receipts")
	}
	p, err := cp.Proof(rs[0].CaseID)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return Assemble(rs, p, cp.Head, pub)
}

// Assemble builds a bundle from a case's receipts (seq 0 onwards), the
// inclusion proof of its head and the signed tree head. Receipts after the
// checkpointed head are left out; a chain shorter than it is an error.
func Assemble(rs []*receipt.Receipt, p checkpoint.Proof, h checkpoint.TreeHead, pub crypto.PublicKey) (*Bundle, error) {
	if len(rs) == 0 {
		return nil, errors.New("bundle: no receipts")
	}
	if p.Leaf.Seq < 0 || p.Leaf.Seq >= int64(len(rs)) {
		return nil, fmt.Errorf("bundle: checkpointed head seq %d, chain has %d receipts", p.Leaf.Seq, len(rs))
	}
	rs = rs[:p.Leaf.Seq+1]
	b := &Bundle{V: Version, Tenant: rs[0].Tenant, CaseID: rs[0].CaseID, Receipts: rs, Proof: p, TreeHead: h}
	if pub != nil {
		pemb, err := checkpoint.EncodePublicKeyPEM(pub)
		if err != nil {
			return nil, err
		}
		b.PublicKeyPEM = string(pemb)
	}
	return b, nil
}

// Encode returns the bundle's file form.
func Encode(b *Bundle) ([]byte, error) {
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode bundle: %w", err)
	}
	c, err := jcs.Canonicalize(raw)
	if err != nil {
		return nil, fmt.Errorf("encode bundle: %w", err)
	}
	return append(c, '\n'), nil
}

// ErrMalformed is wrapped by every Decode error.
var ErrMalformed = errors.New("malformed proof bundle")

// Decode parses a bundle strictly: the input must be exactly its canonical
// form, with no unknown, duplicate or differently-cased members.
func Decode(data []byte) (*Bundle, error) {
	in := bytes.TrimSpace(data)
	c, err := jcs.Canonicalize(in)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !bytes.Equal(c, in) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for i, r := range b.Receipts {
		if r == nil {
			return nil, fmt.Errorf("%w: receipt %d is null", ErrMalformed, i)
		}
	}
	again, err := Encode(&b)
	if err != nil || !bytes.Equal(bytes.TrimSpace(again), in) {
		return nil, fmt.Errorf("%w: members do not round-trip", ErrMalformed)
	}
	return &b, nil
}

// ChainError carries the findings of a bundle whose receipts do not verify.
type ChainError struct{ Findings []receipt.Finding }

func (e *ChainError) Error() string {
	return fmt.Sprintf("receipt chain does not verify: %d findings, first: %s", len(e.Findings), e.Findings[0])
}

// Verify checks everything a bundle claims, with only pub: the signed tree
// head's signature and key, every receipt hash and link from genesis to
// the head, that the proof's leaf is that head, and the inclusion proof
// against the signed root.
func Verify(b *Bundle, pub crypto.PublicKey) error {
	if b.V != Version {
		return fmt.Errorf("bundle version %d, want %d", b.V, Version)
	}
	if b.PublicKeyPEM != "" {
		have, err := checkpoint.ParsePublicKeyPEM([]byte(b.PublicKeyPEM))
		if err != nil {
			return fmt.Errorf("bundle public key: %w", err)
		}
		canon, err := checkpoint.EncodePublicKeyPEM(have)
		if err != nil || string(canon) != b.PublicKeyPEM {
			return errors.New("bundle public key is not in canonical PEM form")
		}
		a, _ := checkpoint.KeyID(have)
		if w, err := checkpoint.KeyID(pub); err != nil || w != a {
			return fmt.Errorf("bundle carries another public key than the one supplied")
		}
	}
	if err := b.TreeHead.Verify(pub); err != nil {
		return fmt.Errorf("signed tree head: %w", err)
	}
	if len(b.Receipts) == 0 {
		return errors.New("bundle has no receipts")
	}
	if fs := receipt.VerifyChain(b.Receipts); len(fs) > 0 {
		return &ChainError{Findings: fs}
	}
	first, head := b.Receipts[0], b.Receipts[len(b.Receipts)-1]
	if first.Tenant != b.Tenant || first.CaseID != b.CaseID {
		return fmt.Errorf("receipts belong to %s/%s, bundle names %s/%s", first.Tenant, first.CaseID, b.Tenant, b.CaseID)
	}
	want := merkle.Head{Tenant: head.Tenant, CaseID: head.CaseID, Seq: head.Seq, Hash: head.Hash}
	if b.Proof.Leaf != want {
		return fmt.Errorf("proof leaf %+v is not the chain head %+v", b.Proof.Leaf, want)
	}
	return b.Proof.Verify(&b.TreeHead)
}
