package archive

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/bundle"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/merkle"
	"github.com/knhk/knhk/shared/signer"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// chain builds a case of n receipts, the last terminal unless open; big
// makes receipt 1's output a detached payload.
func chain(t testing.TB, caseID string, n int, big, open bool) ([]*receipt.Receipt, map[string][]byte) {
	t.Helper()
	var rs []*receipt.Receipt
	var prev *receipt.Receipt
	blobs := map[string][]byte{}
	for i := range n {
		ev := history.Event{Type: history.TaskCompleted, Task: "/do/0/pay", Output: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), Started: t0.Add(time.Duration(i) * time.Second)}
		switch {
		case i == 0:
			ev = history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{}`), Started: t0, Genesis: &history.Genesis{Tenant: "acme", Namespace: "ns",
				Workflow: "wf", Version: "1", DescriptorHash: fmt.Sprintf("%064x", 7)}}
		case i == 1 && big:
			ev.Output = json.RawMessage(`{"blob":"` + strings.Repeat("x", receipt.InlineLimit) + `"}`)
		case i == n-1 && !open:
			ev = history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{"ok":true}`), Started: t0.Add(time.Duration(i) * time.Second)}
		}
		r, err := receipt.New(prev, "acme", caseID, ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range r.Detached {
			blobs[b.Hash] = b.Bytes
		}
		rs, prev = append(rs, r), r
	}
	return rs, blobs
}

func head(rs []*receipt.Receipt) merkle.Head {
	h := rs[len(rs)-1]
	return merkle.Head{Tenant: h.Tenant, CaseID: h.CaseID, Seq: h.Seq, Hash: h.Hash}
}

type fixture struct {
	a     *Archive
	file  []byte
	pub   crypto.PublicKey
	rs    []*receipt.Receipt
	blobs map[string][]byte
	cp    *checkpoint.Checkpoint
}

func setup(t testing.TB, big bool) fixture {
	t.Helper()
	s, err := signer.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := s.PublicKey(context.Background())
	rs, blobs := chain(t, "case-a", 5, big, false)
	other, _ := chain(t, "case-b", 3, false, false)
	cp, err := checkpoint.Create(context.Background(), []merkle.Head{head(rs), head(other)}, "2026-03-01T12:00:00Z", t0, s)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cp.Proof("case-a")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(rs, blobs, p, cp.Head, pub)
	if err != nil {
		t.Fatal(err)
	}
	file, err := Encode(a)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{a: a, file: file, pub: pub, rs: rs, blobs: blobs, cp: cp}
}

func TestRoundTripVerifies(t *testing.T) {
	for _, big := range []bool{false, true} {
		t.Run(fmt.Sprintf("detached=%v", big), func(t *testing.T) {
			f := setup(t, big)
			got, err := Decode(f.file)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(got, f.pub); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 0, true: 1}[big]; len(got.Payloads) != want {
				t.Fatalf("%d payloads, want %d", len(got.Payloads), want)
			}
			if got.Ended != t0.Add(4*time.Second).Format(TimeLayout) {
				t.Fatalf("ended %s", got.Ended)
			}
			// The contained proof bundle verifies on its own, as `knhk proof verify` does.
			bb, err := bundle.Encode(got.Bundle())
			if err != nil {
				t.Fatal(err)
			}
			b, err := bundle.Decode(bb)
			if err != nil {
				t.Fatal(err)
			}
			if err := bundle.Verify(b, f.pub); err != nil {
				t.Fatal(err)
			}
			// The archive alone replays the case's events, detached payloads included.
			for _, r := range got.Receipts {
				if _, err := r.Event(func(h string) ([]byte, error) {
					if d, ok := got.Blobs()[h]; ok {
						return d, nil
					}
					return nil, errors.New("missing")
				}); err != nil {
					t.Fatalf("event of seq %d: %v", r.Seq, err)
				}
			}
			s, err := Summarize(got, f.file)
			if err != nil || s.HeadSeq != 4 || s.Key != "archive/v1/acme/case-a.json" || s.Size != len(f.file) {
				t.Fatalf("summary %+v, %v", s, err)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	f := setup(t, true)
	p, _ := f.cp.Proof("case-a")
	open, _ := chain(t, "case-a", 5, false, true)
	noBlob := map[string][]byte{}
	tests := []struct {
		name  string
		rs    []*receipt.Receipt
		blobs map[string][]byte
		p     checkpoint.Proof
		want  error
	}{
		{"no receipts", nil, f.blobs, p, nil},
		{"case not ended", open, f.blobs, p, ErrNotEnded},
		{"head is not the proof's leaf", f.rs[:4], f.blobs, p, ErrNotEnded},
		{"missing detached payload", f.rs, noBlob, p, ErrMissingPayload},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.rs, tc.blobs, tc.p, f.cp.Head, f.pub)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// A decoded archive changed in any member it claims fails Verify.
func TestVerifyRefuses(t *testing.T) {
	f := setup(t, true)
	other, _ := chain(t, "case-b", 3, false, false)
	s2, _ := signer.NewLocal()
	pub2, _ := s2.PublicKey(context.Background())
	tests := []struct {
		name   string
		change func(a *Archive)
		pub    crypto.PublicKey
	}{
		{"format", func(a *Archive) { a.Format = "knhk.bundle" }, nil},
		{"version", func(a *Archive) { a.V = 2 }, nil},
		{"ended", func(a *Archive) { a.Ended = t0.Format(TimeLayout) }, nil},
		{"payload dropped", func(a *Archive) { a.Payloads = []Payload{} }, nil},
		{"payload changed", func(a *Archive) { a.Payloads[0].Data = json.RawMessage(`{"blob":"y"}`) }, nil},
		{"payload added", func(a *Archive) {
			a.Payloads = append(a.Payloads, Payload{Hash: strings.Repeat("f", 64), Data: json.RawMessage(`1`)})
		}, nil},
		{"receipt dropped", func(a *Archive) { a.Receipts = a.Receipts[:4] }, nil},
		{"receipts of another case", func(a *Archive) { a.Receipts = other }, nil},
		{"proof path", func(a *Archive) { a.Proof.Path = nil }, nil},
		{"tree head", func(a *Archive) { a.TreeHead.Size++ }, nil},
		{"another key", func(a *Archive) {}, pub2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Decode(f.file)
			if err != nil {
				t.Fatal(err)
			}
			tc.change(a)
			pub := f.pub
			if tc.pub != nil {
				pub = tc.pub
			}
			if err := Verify(a, pub); err == nil {
				t.Fatal("verified")
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	f := setup(t, false)
	body := bytes.TrimSuffix(f.file, []byte("\n"))
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not canonical", append([]byte(" "), f.file...)},
		{"unknown member", bytes.Replace(body, []byte(`{"caseId"`), []byte(`{"a":1,"caseId"`), 1)},
		{"null receipt", bytes.Replace(body, []byte(`"receipts":[`), []byte(`"receipts":[null,`), 1)},
		{"payloads null", bytes.Replace(body, []byte(`"payloads":[]`), []byte(`"payloads":null`), 1)},
		{"too large", bytes.Repeat([]byte(" "), MaxSize+1)},
		{"two newlines", append(bytes.Clone(f.file), '\n')},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.data); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// Any single changed byte fails decoding or verification.
func TestAnyByteFlipFails(t *testing.T) {
	f := setup(t, false)
	for i := range len(f.file) - 1 {
		m := bytes.Clone(f.file)
		m[i] ^= 0x01
		a, err := Decode(m)
		if err != nil {
			continue
		}
		if err := Verify(a, f.pub); err == nil {
			t.Fatalf("flip at %d (%q) verified", i, f.file[i])
		}
	}
}

func TestKeyEscapes(t *testing.T) {
	tests := []struct{ tenant, id, want string }{
		{"acme", "c-1", "archive/v1/acme/c-1.json"},
		{"a/b", "../x", "archive/v1/a%2Fb/..%2Fx.json"},
	}
	for _, tc := range tests {
		if got := Key(tc.tenant, tc.id); got != tc.want {
			t.Errorf("Key(%q, %q) = %q, want %q", tc.tenant, tc.id, got, tc.want)
		}
	}
}

// FuzzDecode: hostile input never panics, whatever decodes encodes again,
// and whatever verifies is one of the seed archives. Minimizing interesting
// inputs is slow on these structured seeds: run with -fuzzminimizetime 1s.
func FuzzDecode(f *testing.F) {
	fx := setup(f, true)
	f.Add(fx.file)
	small := setup(f, false)
	f.Add(small.file)
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Decode(data)
		if err != nil {
			return
		}
		if _, err := Encode(a); err != nil {
			t.Fatalf("decoded archive does not encode: %v", err)
		}
		for _, k := range []crypto.PublicKey{fx.pub, small.pub} {
			if Verify(a, k) != nil {
				continue
			}
			// Whatever verifies is one of the originals: same head, same receipts.
			same := false
			for _, o := range []fixture{fx, small} {
				if a.TreeHead == o.a.TreeHead && a.Proof.Leaf == o.a.Proof.Leaf && len(a.Receipts) == len(o.a.Receipts) {
					same = true
					for i := range a.Receipts {
						same = same && a.Receipts[i].Hash == o.a.Receipts[i].Hash
					}
				}
			}
			if !same {
				t.Fatal("a different archive verified")
			}
		}
	})
}
