package receipt

import (
	"bytes"
	"testing"
)

func FuzzDecode(f *testing.F) {
	for _, l := range lines(f, buildChain(f, "acme", "c", 3)) {
		f.Add(l)
	}
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes and verifies on
		// its own without panicking.
		c, err := r.Canonical()
		if err != nil || !bytes.Equal(c, bytes.TrimSpace(b)) {
			t.Fatalf("decoded receipt does not re-encode to its input: %v", err)
		}
		_ = VerifyReceipt(r)
		if _, err := r.EventKey(); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzVerifyChain(f *testing.F) {
	ls := lines(f, buildChain(f, "acme", "c", 4))
	f.Add(bytes.Join(ls, []byte("\n")))
	f.Add(bytes.Join([][]byte{ls[0], ls[2], ls[1]}, []byte("\n")))
	f.Fuzz(func(t *testing.T, b []byte) {
		var rs []*Receipt
		for _, l := range bytes.Split(b, []byte("\n")) {
			if r, err := Decode(l); err == nil {
				rs = append(rs, r)
			}
		}
		fs := VerifyChain(rs)
		// An intact chain is exactly 0..n-1 linked by hash.
		if len(fs) == 0 {
			for i, r := range rs {
				if r.Seq != int64(i) || (i > 0 && r.PrevHash != rs[i-1].Hash) {
					t.Fatalf("chain accepted with seq %d at %d", r.Seq, i)
				}
			}
		}
		if len(rs) > 0 {
			VerifyFrom(Watermark{Seq: rs[0].Seq, Hash: rs[0].Hash}, rs[1:])
		}
	})
}
