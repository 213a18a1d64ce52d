package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/bundle"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/signer"
)

// A writer with table access rewrites a whole chain consistently: every
// hash and link is recomputed, so the chain verifies on its own; only the
// signed checkpoint taken before shows the rewrite.
func TestConsistentRewriteOnlyCaughtByCheckpoint(t *testing.T) {
	db, rt, st := tables(t)
	ctx := context.Background()
	s, state := NewReceipts(db, rt), NewState(db, st)
	for _, c := range []string{"victim", "bystander-1", "bystander-2"} {
		appendN(t, s, c, 8)
	}
	heads, err := s.Heads(ctx)
	if err != nil || len(heads) != 3 {
		t.Fatalf("heads: %v %v", err, heads)
	}
	for _, h := range heads {
		if h.Seq != 7 || h.Tenant != "acme" || len(h.Hash) != 64 {
			t.Fatalf("head %+v", h)
		}
	}
	key, _ := signer.NewLocal()
	pub, _ := key.PublicKey(ctx)
	cp, err := checkpoint.Create(ctx, heads, "2026-03-01T12:00:00Z", time.Now(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := state.PutCheckpoint(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if err := state.PutCheckpoint(ctx, cp); !errors.Is(err, ErrCheckpointExists) {
		t.Fatalf("checkpoint overwritten: %v", err)
	}
	latest, err := state.LatestCheckpoint(ctx)
	if err != nil || latest != cp.Head {
		t.Fatalf("latest: %v %+v", err, latest)
	}
	verifyCase := func() ([]receipt.Finding, error) {
		rs, bad, err := s.Chain(ctx, "victim")
		if err != nil || len(bad) > 0 {
			t.Fatal(err, bad)
		}
		p, h, err := state.CaseProof(ctx, "victim")
		if err != nil {
			t.Fatal(err)
		}
		b, err := bundle.Assemble(rs, p, h, pub)
		if err != nil {
			return nil, err
		}
		file, _ := bundle.Encode(b)
		back, err := bundle.Decode(file)
		if err != nil {
			t.Fatal(err)
		}
		return receipt.VerifyChain(rs), bundle.Verify(back, pub)
	}
	if fs, err := verifyCase(); len(fs) != 0 || err != nil {
		t.Fatalf("intact case: %v %v", fs, err)
	}

	// The rewrite: same length, other content, all hashes recomputed.
	var prev *receipt.Receipt
	for i := 0; i < 8; i++ {
		ev := history.Event{Type: history.TaskCompleted, Task: "/do/0/step", Output: json.RawMessage(fmt.Sprintf(`{"rewritten":%d}`, i))}
		if i == 0 {
			ev = genesis("acme")
		}
		r, err := receipt.New(prev, "acme", "victim", ev)
		if err != nil {
			t.Fatal(err)
		}
		it, _ := Item(r)
		putRaw(t, db, rt, it)
		prev = r
	}
	fs, err := verifyCase()
	if len(fs) != 0 {
		t.Fatalf("a consistent rewrite should pass chain verification, got %v", fs)
	}
	if err == nil {
		t.Fatal("the signed checkpoint did not expose the rewrite")
	}
	t.Logf("checkpoint check: %v", err)
}
