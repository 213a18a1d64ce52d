// Package redact removes secret values and sensitive headers from what KNHK
// records: a receipt is immutable, so a secret written into one could never
// be removed without breaking the chain. It is pure (no I/O).
package redact

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
)

// Placeholder replaces every redacted value.
const Placeholder = "[redacted]"

// MinSecretLen is the shortest secret string redacted by value: shorter
// strings cannot be told apart from ordinary text (a one-letter "secret"
// would blank every word). Strings inside the placeholder itself are not
// redactable either. docs/receipts.md tells operators to use longer secrets.
const MinSecretLen = 4

// DefaultHeaders are the header names whose values are always redacted
// (compared case-insensitively).
var DefaultHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key"}

// Redactor redacts a fixed set of secret values and sensitive names. The
// zero value and nil redact nothing. It is safe for concurrent use.
type Redactor struct {
	values  []string // secret strings and their escaped forms, longest first
	raws    [][]byte // the forms the values take inside JSON text
	headers []string // lower-case sensitive member names
}

// New builds a redactor for the string leaves of secrets (a secret may be a
// string or a JSON object or array of them) and for the sensitive header
// names (DefaultHeaders plus extra).
func New(secrets map[string]any, extra ...string) *Redactor {
	r := &Redactor{}
	seen := map[string]bool{}
	add := func(s string) {
		if len(s) < MinSecretLen || seen[s] || strings.Contains(Placeholder, s) {
			return
		}
		seen[s] = true
		r.values = append(r.values, s)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			add(v)
			add(url.QueryEscape(v))
			add(url.PathEscape(v))
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	for _, v := range secrets {
		walk(v)
	}
	slices.SortFunc(r.values, func(a, b string) int { return len(b) - len(a) })
	for _, s := range r.values {
		for _, form := range jsonForms(s) {
			r.raws = append(r.raws, form)
		}
	}
	for _, h := range append(slices.Clone(DefaultHeaders), extra...) {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" && !slices.Contains(r.headers, h) {
			r.headers = append(r.headers, h)
		}
	}
	return r
}

// jsonForms are the byte strings s can appear as inside a JSON string:
// its RFC 8785 form and Go's HTML-safe form (without the quotes).
func jsonForms(s string) [][]byte {
	var out [][]byte
	var b bytes.Buffer
	for _, html := range []bool{false, true} {
		b.Reset()
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		_ = enc.Encode(s)
		f := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
		f = slices.Clone(f[1 : len(f)-1])
		if len(out) == 0 || !bytes.Equal(out[0], f) {
			out = append(out, f)
		}
	}
	return out
}

// Empty reports whether r redacts nothing.
func (r *Redactor) Empty() bool { return r == nil || len(r.values) == 0 && len(r.headers) == 0 }

// String redacts every secret value inside s.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	// A replacement can complete another secret with the text around it
	// ("[redacted]" + "ab" holds "d]ab"): repeat until nothing is left.
	for range 8 {
		found := false
		for _, v := range r.values {
			if strings.Contains(s, v) {
				s, found = strings.ReplaceAll(s, v, Placeholder), true
			}
		}
		if !found {
			return s
		}
	}
	return Placeholder
}

// sensitive reports whether a member name is a sensitive header.
func (r *Redactor) sensitive(name string) bool {
	for _, h := range r.headers {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// Value redacts a JSON-like value (maps, slices, strings, numbers...): every
// secret inside a string or a member name is replaced, and every member named
// like a sensitive header gets the placeholder as its value. It returns the
// value unchanged (the same one) when nothing was redacted.
func (r *Redactor) Value(v any) (any, bool) {
	if r.Empty() {
		return v, false
	}
	return r.value(v)
}

func (r *Redactor) value(v any) (any, bool) {
	switch v := v.(type) {
	case string:
		s := r.String(v)
		return s, s != v
	case map[string]any:
		var out map[string]any
		for k, e := range v {
			nk := r.String(k)
			ne, changed := e, false
			if r.sensitive(k) {
				if s, ok := e.(string); !ok || s != Placeholder {
					ne, changed = Placeholder, true
				}
			} else {
				ne, changed = r.value(e)
			}
			if !changed && nk == k {
				continue
			}
			if out == nil {
				out = make(map[string]any, len(v))
				for k2, e2 := range v {
					out[k2] = e2
				}
			}
			delete(out, k)
			out[nk] = ne
		}
		if out == nil {
			return v, false
		}
		return out, true
	case []any:
		var out []any
		for i, e := range v {
			ne, changed := r.value(e)
			if !changed {
				continue
			}
			if out == nil {
				out = slices.Clone(v)
			}
			out[i] = ne
		}
		if out == nil {
			return v, false
		}
		return out, true
	}
	return v, false
}

// JSON redacts a JSON text and returns it re-encoded, or unchanged (the same
// slice) when it holds nothing to redact. A text that does not parse is
// redacted as a string.
func (r *Redactor) JSON(raw []byte) ([]byte, bool) {
	if r.Empty() || len(raw) == 0 || !r.mayHold(raw) {
		return raw, false
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		s := r.String(string(raw))
		return []byte(s), s != string(raw)
	}
	nv, changed := r.value(v)
	if !changed {
		return raw, false
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(nv); err != nil {
		return []byte(`"` + Placeholder + `"`), true
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), true
}

// mayHold is the fast path: it reports whether raw can contain a secret or
// a sensitive member name. Escapes other than the encoders' own (\u of a
// plain character) send every text to the full walk.
func (r *Redactor) mayHold(raw []byte) bool {
	if bytes.Contains(raw, []byte(`\u`)) {
		return true
	}
	for _, f := range r.raws {
		if bytes.Contains(raw, f) {
			return true
		}
	}
	for _, h := range r.headers {
		if containsFold(raw, h) {
			return true
		}
	}
	return false
}

// containsFold reports whether b contains the lower-case ASCII string s,
// ignoring ASCII case, without allocating.
func containsFold(b []byte, s string) bool {
	n := len(s)
	for i := 0; i+n <= len(b); i++ {
		j := 0
		for ; j < n; j++ {
			c := b[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != s[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}
