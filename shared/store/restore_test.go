package store

import (
	"context"
	"errors"
	"testing"

	"github.com/knhk/knhk/shared/receipt"
)

// PutSegment writes a made segment once: again with the same receipts it
// writes nothing, with other receipts at that position it is ErrConflict,
// and the stored chain is the one first written.
func TestPutSegment(t *testing.T) {
	db, rt, _ := tables(t)
	ctx := context.Background()
	s := NewReceipts(db, rt)
	made := func(g int) []*receipt.Receipt {
		var rs []*receipt.Receipt
		var prev *receipt.Receipt
		for i := range 3 {
			ev := task(g, i)
			if i == 0 {
				ev = genesis("acme")
			}
			r, err := receipt.New(prev, "acme", "seg-case", ev)
			if err != nil {
				t.Fatal(err)
			}
			rs, prev = append(rs, r), r
		}
		return rs
	}
	first, other := made(1), made(2)
	tests := []struct {
		name  string
		rs    []*receipt.Receipt
		wrote bool
		err   error
	}{
		{"absent", first, true, nil},
		{"same receipts again", first, false, nil},
		{"other receipts there", other, false, ErrConflict},
		{"fewer receipts there", first[:2], false, ErrConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wrote, err := s.PutSegment(ctx, tc.rs)
			if wrote != tc.wrote || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("wrote %v err %v, want %v %v", wrote, err, tc.wrote, tc.err)
			}
		})
	}
	rs, bad, err := s.Chain(ctx, "seg-case")
	if err != nil || len(bad) > 0 || len(rs) != 3 || rs[2].Hash != first[2].Hash {
		t.Fatalf("stored chain: %d receipts %v %v", len(rs), bad, err)
	}
}
