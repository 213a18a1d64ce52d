package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/receipt/merkle"
)

// buildLog appends rounds of heads: round r advances cases 0..r-1 of
// tenant t to seq r and adds case r.
func buildLog(t *testing.T, s keySigner, rounds int) []Entry {
	t.Helper()
	l, err := VerifyLog(nil, &s.k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for r := range rounds {
		var hs []merkle.Head
		for c := 0; c <= r; c++ {
			hs = append(hs, merkle.Head{Tenant: fmt.Sprint("t", c%2), CaseID: fmt.Sprint("case-", c), Seq: int64(r), Hash: fmt.Sprintf("%064x", 100*r+c)})
		}
		e, _, err := l.Append(context.Background(), hs, fmt.Sprint("p", r), time.Unix(1e9+int64(r), 0), s)
		if err != nil {
			t.Fatal(err)
		}
		l.Add(e)
	}
	return l.Entries()
}

func TestLogAppendVerify(t *testing.T) {
	s := newSigner(t)
	pub := &s.k.PublicKey
	entries := buildLog(t, s, 6)
	l, err := VerifyLog(entries, pub)
	if err != nil {
		t.Fatal(err)
	}
	refs := l.Case("case-2")
	if len(refs) != 4 || refs[0].Head.Seq != 2 || refs[3].Head.Seq != 5 || refs[0].Checkpoint != 2 || refs[3].Checkpoint != 5 {
		t.Fatalf("case-2 leaves: %+v", refs)
	}
	for _, ref := range refs {
		p, h, err := l.Proof(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(&h); err != nil || h.Seq != 5 {
			t.Fatalf("inclusion of %+v in checkpoint %d: %v", ref, h.Seq, err)
		}
	}
	if last, ok := l.Last("case-5"); !ok || last.Seq != 5 {
		t.Fatalf("last of case-5: %+v %v", last, ok)
	}
	if _, ok := l.Last("case-9"); ok {
		t.Fatal("unknown case has a head")
	}
}

// Each way of rewriting the log's history is refused.
func TestLogTamperRefused(t *testing.T) {
	s := newSigner(t)
	pub := &s.k.PublicKey
	entries := buildLog(t, s, 5)
	clone := func() []Entry {
		out := slices.Clone(entries)
		for i := range out {
			out[i].Leaves = slices.Clone(out[i].Leaves)
			out[i].Consistency = slices.Clone(out[i].Consistency)
		}
		return out
	}
	resign := func(es []Entry, i int) {
		// An attacker with the key re-signs a changed head; only the links
		// and proofs can catch it.
		h := &es[i].Head
		if _, err := sign(context.Background(), h, time.Unix(1e9, 0), s); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string]func([]Entry) []Entry{
		"middle checkpoint deleted": func(es []Entry) []Entry { return slices.Delete(es, 2, 3) },
		"first checkpoint deleted":  func(es []Entry) []Entry { return es[1:] },
		"two swapped":               func(es []Entry) []Entry { es[1], es[2] = es[2], es[1]; return es },
		"leaf changed":              func(es []Entry) []Entry { es[1].Leaves[0].Hash = fmt.Sprintf("%064x", 7); return es },
		"leaf dropped":              func(es []Entry) []Entry { es[3].Leaves = es[3].Leaves[1:]; return es },
		"consistency altered": func(es []Entry) []Entry {
			es[3].Consistency[0] = fmt.Sprintf("%064x", 9)
			return es
		},
		"signature altered": func(es []Entry) []Entry { es[4].Head.Signature = "A" + es[4].Head.Signature[1:]; return es },
		"rewritten and re-signed": func(es []Entry) []Entry {
			es[2].Leaves[0].Hash = fmt.Sprintf("%064x", 8)
			all := []merkle.Head{}
			for _, e := range es[:3] {
				all = append(all, e.Leaves...)
			}
			es[2].Head.Root = merkle.FromHeads(all).Root().String()
			resign(es, 2)
			return es
		},
		"case moves backwards": func(es []Entry) []Entry {
			es[4].Leaves[0].Seq = 0
			return es
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := VerifyLog(tamper(clone()), pub); !errors.Is(err, ErrLog) {
				t.Fatalf("accepted: %v", err)
			}
		})
	}
	other := newSigner(t)
	if _, err := VerifyLog(entries, &other.k.PublicKey); !errors.Is(err, ErrLog) {
		t.Fatalf("other key: %v", err)
	}
	if _, err := VerifyLog(entries, pub); err != nil {
		t.Fatalf("intact log: %v", err)
	}
}
