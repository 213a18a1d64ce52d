package receipt

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/limits"
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

// FuzzEncodeDecode pins that the encoder and decoder agree on limits:
// whatever New writes, Decode reads; what New refuses, it refuses with a
// limit error or as invalid JSON, never by writing an unreadable receipt.
func FuzzEncodeDecode(f *testing.F) {
	for _, n := range []int{0, 1, limits.MaxDepth - 1, limits.MaxDepth, limits.MaxDepth + 1, 512, 600} {
		f.Add(nested(n), false)
		f.Add(nested(n), true)
	}
	f.Add([]byte(`{"a":[{"b":"\"[[[["}]}`), false)
	f.Fuzz(func(t *testing.T, payload []byte, asData bool) {
		ev := history.Event{Type: history.TaskCompleted, Task: "/do/0/a", Key: "k", Output: payload}
		if asData {
			ev.Output, ev.Data = nil, payload
		}
		prev := buildChain(t, "acme", "c", 1)[0]
		r, err := New(prev, "acme", "c", ev)
		if err != nil {
			var le *limits.Error
			if limits.Depth(payload) > limits.MaxDepth && !errors.As(err, &le) {
				t.Fatalf("too deep a payload refused without a limit error: %v", err)
			}
			return
		}
		c, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(c)
		if err != nil {
			t.Fatalf("the decoder cannot read what the encoder wrote: %v", err)
		}
		if back.Hash != r.Hash || len(VerifyChain([]*Receipt{prev, back})) != 0 {
			t.Fatal("decoded receipt does not verify")
		}
	})
}

func nested(n int) []byte {
	return []byte(strings.Repeat(`{"a":[`, n/2) + strings.Repeat("[", n%2) + "1" + strings.Repeat("]", n%2) + strings.Repeat(`]}`, n/2))
}

func TestPayloadLimits(t *testing.T) {
	prev := buildChain(t, "acme", "c", 1)[0]
	big := []byte(`"` + strings.Repeat("x", limits.MaxValueBytes) + `"`)
	for _, tc := range []struct {
		name    string
		payload []byte
		reason  limits.Reason
	}{
		{"at the depth limit", nested(limits.MaxDepth), ""},
		{"one level over", nested(limits.MaxDepth + 1), limits.TooDeep},
		{"512 levels (1 KB)", nested(512), limits.TooDeep},
		{"over the size limit", big, limits.TooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(prev, "acme", "c", history.Event{Type: history.TaskCompleted, Key: "k", Output: tc.payload})
			var le *limits.Error
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.reason == "":
				c, _ := r.Canonical()
				if _, err := Decode(c); err != nil {
					t.Fatalf("written but unreadable: %v", err)
				}
			case !errors.As(err, &le) || le.Reason != tc.reason:
				t.Fatalf("got %v, want a %s limit error", err, tc.reason)
			}
		})
	}
}
