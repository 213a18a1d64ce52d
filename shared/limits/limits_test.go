package limits

import (
	"errors"
	"strings"
	"testing"
)

func TestDepth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{`1`, 0}, {`"[[["`, 0}, {`[]`, 1}, {`{}`, 1}, {`[[1],[2,[3]]]`, 3},
		{`{"a":"]]]","b":[{"c":"\"[{"}]}`, 3}, {`["\\",[]]`, 2},
		{strings.Repeat("[", 512) + strings.Repeat("]", 512), 512},
	} {
		if got := Depth([]byte(tc.in)); got != tc.want {
			t.Errorf("Depth(%.40s) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	ok := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if err := CheckJSON("input", []byte(ok)); err != nil {
		t.Fatal(err)
	}
	deep := "[" + ok + "]"
	var le *Error
	if err := CheckJSON("input", []byte(deep)); !errors.As(err, &le) || le.Reason != TooDeep || !errors.Is(err, ErrLimit) ||
		err.Error() != "input is nested 65 levels deep, over the limit of 64" {
		t.Fatalf("got %v", err)
	}
	big := `"` + strings.Repeat("x", MaxValueBytes) + `"`
	if err := CheckJSON("input", []byte(big)); !errors.As(err, &le) || le.Reason != TooLarge {
		t.Fatalf("got %v", err)
	}
}

func BenchmarkCheckJSON(b *testing.B) {
	v := []byte(`{"order":{"id":"o-1","items":[{"sku":"a","qty":2},{"sku":"b","qty":1}],"total":41.5},"status":"accepted","note":"a \"quoted\" [text]"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		_ = CheckJSON("v", v)
	}
}
