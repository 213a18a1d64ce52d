package checkpoint

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/receipt/merkle"
)

// keySigner is a minimal in-process signer (the signer package's Local is
// the product one; this keeps the test free of adapter imports).
type keySigner struct{ k *ecdsa.PrivateKey }

func (s keySigner) Sign(_ context.Context, d []byte) ([]byte, string, error) {
	sig, err := ecdsa.SignASN1(rand.Reader, s.k, d)
	return sig, "local", err
}
func (s keySigner) PublicKey(context.Context) (crypto.PublicKey, error) { return &s.k.PublicKey, nil }

func newSigner(t *testing.T) keySigner {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keySigner{k}
}

func heads(n int) []merkle.Head {
	hs := make([]merkle.Head, n)
	for i := range hs {
		hs[n-1-i] = merkle.Head{Tenant: fmt.Sprint("t", i%3), CaseID: fmt.Sprint("case-", i), Seq: int64(i), Hash: fmt.Sprintf("%064x", i+1)}
	}
	return hs
}

func TestCreateProveVerify(t *testing.T) {
	s := newSigner(t)
	pub, _ := s.PublicKey(context.Background())
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, n := range []int{1, 2, 7, 64} {
		c, err := Create(context.Background(), heads(n), "2026-03-01T12:00:00Z", now, s)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Head.Verify(pub); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		for _, h := range heads(n) {
			p, err := c.Proof(h.CaseID)
			if err != nil || p.Leaf != h {
				t.Fatalf("proof of %s: %v", h.CaseID, err)
			}
			if err := p.Verify(&c.Head); err != nil {
				t.Fatalf("n=%d %s: %v", n, h.CaseID, err)
			}
			// A rewritten head (same case, other hash or seq) is not in the tree.
			forged := p
			forged.Leaf.Hash = fmt.Sprintf("%064x", 999999)
			if forged.Verify(&c.Head) == nil {
				t.Fatal("rewritten head verified")
			}
			forged = p
			forged.Leaf.Seq++
			if forged.Verify(&c.Head) == nil {
				t.Fatal("longer chain head verified")
			}
		}
		back, err := Load(c.Head, c.Heads)
		if err != nil || back.Head != c.Head {
			t.Fatalf("load: %v", err)
		}
	}
}

func TestTreeHeadTamper(t *testing.T) {
	s := newSigner(t)
	pub, _ := s.PublicKey(context.Background())
	c, err := Create(context.Background(), heads(5), "p", time.Unix(1e9, 0), s)
	if err != nil {
		t.Fatal(err)
	}
	mut := map[string]func(*TreeHead){
		"size":      func(h *TreeHead) { h.Size++ },
		"root":      func(h *TreeHead) { h.Root = fmt.Sprintf("%064x", 1) },
		"period":    func(h *TreeHead) { h.Period = "q" },
		"time":      func(h *TreeHead) { h.Time = "2001-09-09T01:46:41Z" },
		"key id":    func(h *TreeHead) { h.KeyID = fmt.Sprintf("%064x", 2) },
		"signature": func(h *TreeHead) { h.Signature = "A" + h.Signature[1:] },
		"version":   func(h *TreeHead) { h.V = 1 },
		"seq":       func(h *TreeHead) { h.Seq++ },
		"prev":      func(h *TreeHead) { h.Prev = fmt.Sprintf("%064x", 3) },
		"base64":    func(h *TreeHead) { h.Signature += "\n" },
	}
	for name, m := range mut {
		h := c.Head
		m(&h)
		if err := h.Verify(pub); err == nil {
			t.Errorf("%s change verified", name)
		}
	}
	other := newSigner(t)
	opub, _ := other.PublicKey(context.Background())
	if err := c.Head.Verify(opub); !errors.Is(err, ErrWrongKey) {
		t.Errorf("other key: %v", err)
	}
	if _, err := Create(context.Background(), append(heads(3), heads(3)[0]), "p", time.Now(), s); !errors.Is(err, ErrDuplicateCase) {
		t.Errorf("duplicate case: %v", err)
	}
	if _, err := c.Proof("nope"); !errors.Is(err, ErrNotInCheckpoint) {
		t.Errorf("unknown case: %v", err)
	}
	if _, err := Load(c.Head, heads(4)); err == nil {
		t.Error("load with missing leaves")
	}
}

func TestPEMRoundTrip(t *testing.T) {
	s := newSigner(t)
	pub, _ := s.PublicKey(context.Background())
	p, err := EncodePublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePublicKeyPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := KeyID(pub)
	b, _ := KeyID(back)
	if a != b {
		t.Fatal("key changed through PEM")
	}
}
