package jcs

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// Number formatting vectors from RFC 8785 Appendix B (IEEE 754 bits -> text).
func TestAppendNumberRFC8785(t *testing.T) {
	cases := []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	}
	for _, c := range cases {
		got, err := AppendNumber(nil, math.Float64frombits(c.bits))
		if err != nil || string(got) != c.want {
			t.Errorf("%016x: got %q, %v; want %q", c.bits, got, err, c.want)
		}
	}
	for _, bits := range []uint64{0x7fffffffffffffff, 0x7ff0000000000000, 0xfff0000000000000} {
		if _, err := AppendNumber(nil, math.Float64frombits(bits)); err == nil {
			t.Errorf("%016x: want error", bits)
		}
	}
}

// The canonicalization example of RFC 8785 section 3.2.2 and the sorting
// example of section 3.2.3.
func TestCanonicalizeRFC8785(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`, `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		{`{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`, "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"דּ\":\"Hebrew Letter Dalet With Dagesh\"}"},
		{`[]`, `[]`},
		{` {} `, `{}`},
		{`[-0, 1.0, 1e2, -1.5E-7]`, `[0,1,100,-1.5e-7]`},
		{`"\u001f\b\t"`, `"\u001f\b\t"`},
		{`{"b":{"z":1,"a":[{"y":2,"x":1}]},"a":"\u2028"}`, "{\"a\":\"\u2028\",\"b\":{\"a\":[{\"x\":1,\"y\":2}],\"z\":1}}"},
	}
	for _, c := range cases {
		got, err := Canonicalize([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	bad := []string{
		``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`,
		`1e400`, `-1e400`, `NaN`, `"abc`, "\"a\x01\"", `"\x"`, `"\ud800"`, `"\udc00x"`, `"\ud800\u0041"`,
		"\"\xff\"", `{"a":1,"a":2}`, `[1] 2`, `tru`, `nul`, `"\u12"`, `[` + strings.Repeat("[", MaxDepth+1) + `]`,
	}
	for _, s := range bad {
		if _, err := Parse([]byte(s)); err == nil {
			t.Errorf("Parse(%q): want error", s)
		}
	}
}

func TestCompareKeys(t *testing.T) {
	// U+FB33 (BMP, above the surrogate range) sorts after U+1F600, whose
	// UTF-16 form starts with the high surrogate 0xD83D.
	if CompareKeys("\U0001F600", "\uFB33") >= 0 {
		t.Error("emoji must sort before U+FB33 in UTF-16 order")
	}
	if CompareKeys("a", "ab") >= 0 || CompareKeys("b", "ab") <= 0 || CompareKeys("x", "x") != 0 {
		t.Error("prefix order wrong")
	}
}

// Property: canonical output is a fixed point and agrees with encoding/json
// on the value it carries.
func TestCanonicalFixedPoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		v := randomValue(rng, 0)
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		c1, err := Canonicalize(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		c2, err := Canonicalize(c1)
		if err != nil || string(c1) != string(c2) {
			t.Fatalf("not a fixed point: %s -> %s (%v)", c1, c2, err)
		}
		var a, b any
		if json.Unmarshal(raw, &a) != nil || json.Unmarshal(c1, &b) != nil {
			t.Fatal("unmarshal")
		}
		ra, _ := json.Marshal(a)
		rb, _ := json.Marshal(b)
		if string(ra) != string(rb) {
			t.Fatalf("value changed: %s vs %s", ra, rb)
		}
	}
}

func randomValue(rng *rand.Rand, depth int) any {
	k := rng.IntN(7)
	if depth > 3 {
		k = rng.IntN(4)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		return math.Float64frombits(rng.Uint64()&^(0x7ff<<52) | uint64(rng.IntN(0x7fe))<<52)
	case 3:
		return randomString(rng)
	case 4:
		return float64(rng.Int64N(1 << 53))
	case 5:
		a := make([]any, rng.IntN(4))
		for i := range a {
			a[i] = randomValue(rng, depth+1)
		}
		return a
	default:
		m := map[string]any{}
		for range rng.IntN(5) {
			m[randomString(rng)+string(rune('a'+rng.IntN(26)))] = randomValue(rng, depth+1)
		}
		return m
	}
}

func randomString(rng *rand.Rand) string {
	runes := []rune{'a', 'Z', '"', '\\', '\n', 0x01, 0x7f, 'é', '€', 0x1F600, 0xFB33, 0x2028}
	var sb strings.Builder
	for range rng.IntN(8) {
		sb.WriteRune(runes[rng.IntN(len(runes))])
	}
	return sb.String()
}

func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x"],"b":null}`, `"\ud83d\ude00"`, `1e21`, `[[[]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Canonicalize(b)
		if err != nil {
			return
		}
		c2, err := Canonicalize(c)
		if err != nil || string(c) != string(c2) {
			t.Fatalf("canonical form not stable: %q -> %q (%v)", c, c2, err)
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form is not JSON: %q", c)
		}
	})
}
