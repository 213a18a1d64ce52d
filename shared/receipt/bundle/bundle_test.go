package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/merkle"
	"github.com/knhk/knhk/shared/signer"
)

func chain(t testing.TB, caseID string, n int, salt string) []*receipt.Receipt {
	t.Helper()
	var rs []*receipt.Receipt
	var prev *receipt.Receipt
	for i := 0; i < n; i++ {
		ev := history.Event{Type: history.TaskCompleted, Task: "/do/0/pay", Output: json.RawMessage(fmt.Sprintf(`{"n":%d,"s":%q}`, i, salt))}
		if i == 0 {
			ev = history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{}`), Genesis: &history.Genesis{Tenant: "acme", Namespace: "ns",
				Workflow: "wf", Version: "1", DescriptorHash: fmt.Sprintf("%064x", 7)}}
		}
		r, err := receipt.New(prev, "acme", caseID, ev)
		if err != nil {
			t.Fatal(err)
		}
		rs, prev = append(rs, r), r
	}
	return rs
}

func head(rs []*receipt.Receipt) merkle.Head {
	h := rs[len(rs)-1]
	return merkle.Head{Tenant: h.Tenant, CaseID: h.CaseID, Seq: h.Seq, Hash: h.Hash}
}

type fixture struct {
	b     *Bundle
	file  []byte
	s     *signer.Local
	rs    []*receipt.Receipt
	cp    *checkpoint.Checkpoint
	other []*receipt.Receipt
}

func setup(t testing.TB) fixture {
	s, err := signer.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	rs := chain(t, "case-a", 6, "")
	other := chain(t, "case-b", 3, "")
	cp, err := checkpoint.Create(context.Background(), []merkle.Head{head(rs), head(other), head(chain(t, "case-c", 2, ""))},
		"2026-03-01T00:00:00Z", time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC), s)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := s.PublicKey(context.Background())
	b, err := New(rs, cp, pub)
	if err != nil {
		t.Fatal(err)
	}
	file, err := Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{b, file, s, rs, cp, other}
}

func TestRoundTripVerifies(t *testing.T) {
	f := setup(t)
	pub, _ := f.s.PublicKey(context.Background())
	back, err := Decode(f.file)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(back, pub); err != nil {
		t.Fatal(err)
	}
	again, _ := Encode(back)
	if !bytes.Equal(again, f.file) {
		t.Fatal("bundle does not round-trip")
	}
	// Without the optional key the bundle still verifies with the key given.
	back.PublicKeyPEM = ""
	if err := Verify(back, pub); err != nil {
		t.Fatal(err)
	}
	other, _ := signer.NewLocal()
	opub, _ := other.PublicKey(context.Background())
	if err := Verify(back, opub); !errors.Is(err, checkpoint.ErrWrongKey) {
		t.Fatalf("other key: %v", err)
	}
}

// Receipts appended after the checkpoint are cut at the checkpointed head.
func TestNewCutsAtCheckpointedHead(t *testing.T) {
	f := setup(t)
	longer := append(f.rs, chainAfter(t, f.rs[len(f.rs)-1])...)
	b, err := New(longer, f.cp, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := f.s.PublicKey(context.Background())
	if len(b.Receipts) != len(f.rs) || Verify(b, pub) != nil {
		t.Fatalf("bundle of %d receipts, want %d", len(b.Receipts), len(f.rs))
	}
}

func chainAfter(t *testing.T, prev *receipt.Receipt) []*receipt.Receipt {
	r, err := receipt.New(prev, prev.Tenant, prev.CaseID, history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`1`)})
	if err != nil {
		t.Fatal(err)
	}
	return []*receipt.Receipt{r}
}

// A chain rewritten consistently (every hash and link recomputed) passes
// VerifyChain but not the signed checkpoint.
func TestConsistentRewriteCaughtByCheckpoint(t *testing.T) {
	f := setup(t)
	pub, _ := f.s.PublicKey(context.Background())
	forged := chain(t, "case-a", 6, "rewritten")
	if fs := receipt.VerifyChain(forged); len(fs) != 0 {
		t.Fatalf("rewritten chain should be self-consistent: %v", fs)
	}
	b := *f.b
	b.Receipts = forged
	if err := Verify(&b, pub); err == nil {
		t.Fatal("rewritten chain verified against the checkpoint")
	}
	// Fitting the leaf to the forged head breaks the inclusion proof.
	b.Proof.Leaf = head(forged)
	if err := Verify(&b, pub); err == nil {
		t.Fatal("forged leaf verified")
	}
}

// Property: any single-byte change to a bundle file fails decoding or
// verification.
func TestAnyByteFlipFails(t *testing.T) {
	f := setup(t)
	pub, _ := f.s.PublicKey(context.Background())
	rng := rand.New(rand.NewPCG(5, 6))
	body := bytes.TrimSpace(f.file)
	for i := range body {
		for _, x := range []byte{0x01, 0x20, byte(1 + rng.IntN(255))} {
			m := bytes.Clone(body)
			m[i] ^= x
			b, err := Decode(m)
			if err != nil {
				continue
			}
			if err := Verify(b, pub); err == nil {
				t.Fatalf("flip %#x at %d (%q) verified: ...%s...", x, i, body[i], m[max(0, i-40):min(len(m), i+40)])
			}
		}
	}
}

func FuzzBundle(f *testing.F) {
	fx := setup(f)
	f.Add(fx.file)
	pub, _ := fx.s.PublicKey(context.Background())
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Decode(data)
		if err != nil {
			return
		}
		if Verify(b, pub) != nil {
			return
		}
		// Whatever verifies proves exactly the original content (only the
		// optional key may be absent).
		same := b.TreeHead == fx.b.TreeHead && b.Proof.Leaf == fx.b.Proof.Leaf && len(b.Receipts) == len(fx.b.Receipts)
		for i := 0; same && i < len(b.Receipts); i++ {
			same = b.Receipts[i].Hash == fx.b.Receipts[i].Hash
		}
		if !same {
			t.Fatalf("a different bundle verified")
		}
	})
}

func TestNullReceiptRejected(t *testing.T) {
	f := setup(t)
	i := bytes.Index(f.file, []byte(`"receipts":[`)) + len(`"receipts":[`)
	m := append(append(bytes.Clone(f.file[:i]), []byte("null,")...), f.file[i:]...)
	if _, err := Decode(m); !errors.Is(err, ErrMalformed) {
		t.Fatalf("null receipt: %v", err)
	}
}
