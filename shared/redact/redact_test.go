package redact

import (
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
)

var secrets = map[string]any{
	"apiKey": "sk_live_4242abcd",
	"db":     map[string]any{"user": "svc", "password": "p@ss w/rd&<x>"},
	"short":  "ab",
}

func TestJSON(t *testing.T) {
	r := New(secrets, "X-Tenant-Token")
	for _, tc := range []struct{ name, in, want string }{
		{"no secret: the same bytes", `{"a":1,"b":"hello"}`, `{"a":1,"b":"hello"}`},
		{"whole string", `{"k":"sk_live_4242abcd"}`, `{"k":"[redacted]"}`},
		{"inside a string", `{"msg":"key=sk_live_4242abcd;"}`, `{"msg":"key=[redacted];"}`},
		{"in a URL query", `{"uri":"https://x.test/a?key=sk_live_4242abcd&b=1"}`, `{"uri":"https://x.test/a?key=[redacted]&b=1"}`},
		{"query-escaped", `{"uri":"https://x.test/?p=` + url.QueryEscape("p@ss w/rd&<x>") + `"}`, `{"uri":"https://x.test/?p=[redacted]"}`},
		{"HTML-escaped by Go", mustMarshal(map[string]any{"body": "pw=p@ss w/rd&<x>"}), `{"body":"pw=[redacted]"}`},
		{"in a JSON body string", `{"body":"{\"token\":\"sk_live_4242abcd\"}"}`, `{"body":"{\"token\":\"[redacted]\"}"}`},
		{"in a member name", `{"sk_live_4242abcd":1}`, `{"[redacted]":1}`},
		{"sensitive header", `{"headers":{"authorization":"Bearer t0k3n","Accept":"x"}}`, `{"headers":{"Accept":"x","authorization":"[redacted]"}}`},
		{"cookie and configured header", `{"Set-Cookie":"sid=1","x-tenant-token":"zz"}`, `{"Set-Cookie":"[redacted]","x-tenant-token":"[redacted]"}`},
		{"nested arrays", `[[{"a":["sk_live_4242abcd"]}]]`, `[[{"a":["[redacted]"]}]]`},
		{"short secrets are not redacted by value", `{"a":"ab"}`, `{"a":"ab"}`},
		{"numbers keep their form", `{"n":12345678901234567890,"k":"sk_live_4242abcd"}`, `{"k":"[redacted]","n":12345678901234567890}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := r.JSON([]byte(tc.in))
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	r := New(secrets)
	if got := r.String("GET https://x.test/?k=sk_live_4242abcd: 401"); got != "GET https://x.test/?k=[redacted]: 401" {
		t.Fatal(got)
	}
	var nilR *Redactor
	if nilR.String("sk_live_4242abcd") != "sk_live_4242abcd" || !nilR.Empty() {
		t.Fatal("a nil redactor redacts nothing")
	}
}

func mustMarshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestNeverLeaks is the property: whatever JSON value holds the secrets,
// wherever and however often, the redacted text holds none of them.
func TestNeverLeaks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("ab]d[e/&<>?=\"\\ é€x0")
	word := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for i := range 2000 {
		sec := map[string]any{}
		var vals []string
		for j := range 1 + rng.IntN(3) {
			s := word(MinSecretLen + rng.IntN(6))
			if strings.Contains(Placeholder, s) {
				continue
			}
			sec[string(rune('a'+j))] = s
			vals = append(vals, s)
		}
		r := New(sec)
		var gen func(d int) any
		gen = func(d int) any {
			switch k := rng.IntN(6); {
			case k == 0 && d < 4:
				m := map[string]any{}
				for range rng.IntN(3) {
					m[word(2)+pick(rng, vals)] = gen(d + 1)
				}
				return m
			case k == 1 && d < 4:
				a := []any{}
				for range rng.IntN(3) {
					a = append(a, gen(d+1))
				}
				return a
			case k == 2:
				return rng.Float64()
			default:
				return word(rng.IntN(3)) + pick(rng, vals) + word(rng.IntN(3)) + url.QueryEscape(pick(rng, vals))
			}
		}
		raw, err := json.Marshal(gen(0))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := r.JSON(raw)
		var back any
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("case %d: redacted text is not JSON: %v", i, err)
		}
		plain, _ := json.Marshal(back)
		for _, s := range vals {
			for _, form := range []string{s, url.QueryEscape(s)} {
				if strings.Contains(string(out), form) || strings.Contains(decodedStrings(back), form) {
					t.Fatalf("case %d: secret %q survives in %s (from %s; %s)", i, form, out, raw, plain)
				}
			}
		}
	}
}

func pick(rng *rand.Rand, vals []string) string {
	if len(vals) == 0 || rng.IntN(3) == 0 {
		return ""
	}
	return vals[rng.IntN(len(vals))]
}

// decodedStrings joins every string and member name of v, so a secret that
// survives only behind a JSON escape is found too.
func decodedStrings(v any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			b.WriteString(v + "\x00")
		case map[string]any:
			for k, e := range v {
				b.WriteString(k + "\x00")
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	return b.String()
}

func BenchmarkJSON(b *testing.B) {
	r := New(secrets)
	clean := []byte(`{"order":{"id":"o-1","items":[{"sku":"a","qty":2},{"sku":"b","qty":1}],"total":41.5},"status":"accepted"}`)
	dirty := []byte(`{"request":{"uri":"https://x.test/?key=sk_live_4242abcd","headers":{"Authorization":"Bearer x"}},"status":"ok"}`)
	b.Run("clean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.JSON(clean)
		}
	})
	b.Run("with-secret", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.JSON(dirty)
		}
	})
}
