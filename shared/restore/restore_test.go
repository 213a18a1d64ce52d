package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/merkle"
	"github.com/knhk/knhk/shared/signer"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// chain makes an ended chain of n receipts (n >= 2).
func chain(t *testing.T, caseID string, n int) []*receipt.Receipt {
	t.Helper()
	var rs []*receipt.Receipt
	var prev *receipt.Receipt
	for i := range n {
		ev := history.Event{Type: history.TaskCompleted, Task: "/do/0/step", Output: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), Started: t0.Add(time.Duration(i) * time.Second)}
		switch i {
		case 0:
			ev = history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{}`), Started: t0, Genesis: &history.Genesis{Tenant: "acme",
				Namespace: "ns", Workflow: "wf", Version: "1", DescriptorHash: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}}
		case n - 1:
			ev = history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{"ok":true}`), Started: t0.Add(time.Duration(i) * time.Second)}
		}
		r, err := receipt.New(prev, "acme", caseID, ev)
		if err != nil {
			t.Fatal(err)
		}
		rs, prev = append(rs, r), r
	}
	return rs
}

// signedLog checkpoints the heads of the chains in one signed checkpoint.
func signedLog(t *testing.T, key *signer.Local, chains ...[]*receipt.Receipt) *checkpoint.Log {
	t.Helper()
	pub, _ := key.PublicKey(context.Background())
	lg, err := checkpoint.VerifyLog(nil, pub)
	if err != nil {
		t.Fatal(err)
	}
	var heads []merkle.Head
	for _, rs := range chains {
		h := rs[len(rs)-1]
		heads = append(heads, merkle.Head{Tenant: h.Tenant, CaseID: h.CaseID, Seq: h.Seq, Hash: h.Hash})
	}
	e, _, err := lg.Append(context.Background(), heads, "2026-03-01T12:00:00Z", t0, key)
	if err != nil {
		t.Fatal(err)
	}
	lg.Add(e)
	return lg
}

func encoded(t *testing.T, lg *checkpoint.Log, rs []*receipt.Receipt, alter func(*archive.Archive)) []byte {
	t.Helper()
	p, th, err := lg.Proof(lg.Case(rs[0].CaseID)[0])
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.New(rs, nil, p, th, nil)
	if err != nil {
		t.Fatal(err)
	}
	if alter != nil {
		alter(a)
	}
	data, err := archive.Encode(a)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestCheck(t *testing.T) {
	key, _ := signer.NewLocal()
	other, _ := signer.NewLocal()
	pub, _ := key.PublicKey(context.Background())
	wrong, _ := other.PublicKey(context.Background())
	a, b := chain(t, "a", 4), chain(t, "b", 3)
	lg := signedLog(t, key, a, b)
	// Another log signed with the same key whose first checkpoint differs.
	forked := signedLog(t, key, a)
	empty, _ := checkpoint.VerifyLog(nil, pub)
	good := encoded(t, lg, a, nil)
	tests := []struct {
		name string
		key  string
		data []byte
		pub  any
		log  *checkpoint.Log
		ok   bool
	}{
		{"valid with the log", archive.Key("acme", "a"), good, pub, lg, true},
		{"valid without the log", archive.Key("acme", "a"), good, pub, nil, true},
		{"wrong key", archive.Key("acme", "a"), good, wrong, lg, false},
		{"under another case's key", archive.Key("acme", "b"), good, pub, lg, false},
		{"altered receipt", archive.Key("acme", "a"), encoded(t, lg, a, func(x *archive.Archive) { x.Receipts[1].Output = json.RawMessage(`{"i":9}`) }), pub, lg, false},
		{"not canonical", archive.Key("acme", "a"), append([]byte(" "), good...), pub, lg, false},
		{"checkpoint the log lacks", archive.Key("acme", "a"), good, pub, empty, false},
		{"tree head the log does not hold", archive.Key("acme", "a"), good, pub, forked, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Check(tc.key, tc.data, tc.pub, tc.log)
			if tc.ok != (err == nil) {
				t.Fatalf("err %v, want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrRefused) {
				t.Fatalf("%v does not wrap ErrRefused", err)
			}
			if tc.ok && got.CaseID != "a" {
				t.Fatalf("case %s", got.CaseID)
			}
		})
	}
}

func TestSegments(t *testing.T) {
	tests := []struct {
		n    int
		want []int
	}{{2, []int{2}}, {receipt.MaxSegmentReceipts, []int{receipt.MaxSegmentReceipts}}, {receipt.MaxSegmentReceipts + 6, []int{receipt.MaxSegmentReceipts, 6}}}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			rs := chain(t, "c", tc.n)
			segs, err := Segments(rs)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			var next int64
			for _, s := range segs {
				got = append(got, len(s))
				if s[0].Seq != next {
					t.Fatalf("segment starts at seq %d, want %d", s[0].Seq, next)
				}
				if _, err := receipt.NewSegment(s); err != nil {
					t.Fatal(err)
				}
				next = s[len(s)-1].Seq + 1
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("segments %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	rs := chain(t, "d", 4)
	alt := chain(t, "d", 6) // the same first receipts, then another end
	tests := []struct {
		name string
		tail *receipt.Receipt
		want Action
	}{
		{"empty target", nil, Write},
		{"same head", rs[3], Skip},
		{"prefix of the archived chain", rs[1], Write},
		{"same seq, other hash", alt[3], Conflict},
		{"longer chain", alt[5], Conflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.tail, rs); got != tc.want {
				t.Fatalf("%s, want %s", got, tc.want)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	var s Summary
	for _, o := range []Outcome{{Status: Restored, Receipts: 3, Items: 1, Payloads: 1}, {Status: Skipped}, {Status: Refused, Key: "k"}, {Status: Conflicted, Key: "c"}} {
		s.Add(o)
	}
	if s.Restored != 1 || s.Skipped != 1 || s.Refused != 1 || s.Conflict != 1 || s.Receipts != 3 || s.Payloads != 1 || len(s.Problems) != 2 || s.OK() {
		t.Fatalf("%+v", s)
	}
}
