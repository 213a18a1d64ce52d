// Package jcs implements the JSON Canonicalization Scheme of RFC 8785: a
// strict I-JSON parser and a serializer that sorts object members by their
// UTF-16 code units, formats numbers as ECMAScript does and escapes strings
// minimally, so that equal JSON values have byte-identical encodings.
package jcs

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/knhk/knhk/shared/limits"
)

// MaxDepth bounds the nesting of arrays and objects accepted by Parse: a
// recorded value's limit plus the envelope of receipts and bundles around it
// (shared/limits), so every receipt the encoder writes parses.
const MaxDepth = limits.MaxDocumentDepth

// Kind is the type of a JSON value.
type Kind uint8

// The JSON value kinds.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

// Value is a parsed JSON value. Only the fields of its Kind are set.
type Value struct {
	Kind Kind
	Bool bool     // Bool
	Num  float64  // Number
	Str  string   // String
	Arr  []Value  // Array
	Obj  []Member // Object, in source order; keys are unique
}

// Member is one name/value pair of an object.
type Member struct {
	Key string
	Val Value
}

// Get returns the member value named key and whether it exists.
func (v Value) Get(key string) (Value, bool) {
	for _, m := range v.Obj {
		if m.Key == key {
			return m.Val, true
		}
	}
	return Value{}, false
}

// SyntaxError reports malformed or non-I-JSON input and where it was found.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("json offset %d: %s", e.Offset, e.Msg) }

// Canonicalize parses b and returns its RFC 8785 canonical form.
func Canonicalize(b []byte) ([]byte, error) {
	v, err := Parse(b)
	if err != nil {
		return nil, err
	}
	return Append(make([]byte, 0, len(b)), v)
}

// Parse parses one JSON text strictly: RFC 8259 grammar, valid UTF-8, no
// lone surrogates, no duplicate member names, finite numbers, and at most
// MaxDepth levels of nesting.
func Parse(b []byte) (Value, error) {
	p := parser{b: b}
	p.ws()
	v, err := p.value(0)
	if err != nil {
		return Value{}, err
	}
	p.ws()
	if p.i != len(p.b) {
		return Value{}, p.fail("trailing data")
	}
	return v, nil
}

type parser struct {
	b []byte
	i int
}

func (p *parser) fail(msg string) error { return &SyntaxError{Offset: p.i, Msg: msg} }

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// value parses a value inside depth enclosing arrays and objects.
func (p *parser) value(depth int) (Value, error) {
	if p.i >= len(p.b) {
		return Value{}, p.fail("unexpected end of input")
	}
	switch c := p.b[p.i]; {
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return Value{}, p.fail(fmt.Sprintf("nesting deeper than %d levels", MaxDepth))
		}
		if c == '{' {
			return p.object(depth)
		}
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		return Value{Kind: String, Str: s}, err
	case c == 't':
		if p.lit("true") {
			return Value{Kind: Bool, Bool: true}, nil
		}
	case c == 'f':
		if p.lit("false") {
			return Value{Kind: Bool}, nil
		}
	case c == 'n':
		if p.lit("null") {
			return Value{Kind: Null}, nil
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return Value{}, p.fail("invalid value")
}

func (p *parser) object(depth int) (Value, error) {
	p.i++ // '{'
	v := Value{Kind: Object}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return v, nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return Value{}, p.fail("expected member name")
		}
		start := p.i
		k, err := p.str()
		if err != nil {
			return Value{}, err
		}
		for _, m := range v.Obj {
			if m.Key == k {
				return Value{}, &SyntaxError{Offset: start, Msg: fmt.Sprintf("duplicate member %q", k)}
			}
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return Value{}, p.fail("expected ':'")
		}
		p.i++
		p.ws()
		mv, err := p.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		v.Obj = append(v.Obj, Member{Key: k, Val: mv})
		p.ws()
		if p.i >= len(p.b) {
			return Value{}, p.fail("unterminated object")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return v, nil
		default:
			return Value{}, p.fail("expected ',' or '}'")
		}
	}
}

func (p *parser) array(depth int) (Value, error) {
	p.i++ // '['
	v := Value{Kind: Array, Arr: []Value{}}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return v, nil
	}
	for {
		p.ws()
		e, err := p.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		v.Arr = append(v.Arr, e)
		p.ws()
		if p.i >= len(p.b) {
			return Value{}, p.fail("unterminated array")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return v, nil
		default:
			return Value{}, p.fail("expected ',' or ']'")
		}
	}
}

func (p *parser) number() (Value, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return Value{}, p.fail("invalid number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return Value{}, p.fail("invalid fraction")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return Value{}, p.fail("invalid exponent")
		}
	}
	f, err := strconv.ParseFloat(string(p.b[start:p.i]), 64)
	if err != nil || math.IsInf(f, 0) {
		return Value{}, &SyntaxError{Offset: start, Msg: "number out of range"}
	}
	return Value{Kind: Number, Num: f}, nil
}

// str parses a string literal starting at the opening quote.
func (p *parser) str() (string, error) {
	p.i++ // '"'
	start := p.i
	// Fast path: no escapes.
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := p.b[start:p.i]
			if !utf8.Valid(s) {
				return "", p.fail("invalid UTF-8 in string")
			}
			p.i++
			return string(s), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		p.i++
	}
	buf := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			if !utf8.Valid(buf) {
				return "", p.fail("invalid UTF-8 in string")
			}
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.fail("control character in string")
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.b) {
			break
		}
		e := p.b[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || !p.lit(`\u`) {
					return "", p.fail("lone surrogate")
				}
				r2, err := p.hex4()
				if err != nil {
					return "", err
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return "", p.fail("invalid surrogate pair")
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.fail("invalid escape")
		}
	}
	return "", p.fail("unterminated string")
}

func (p *parser) hex4() (rune, error) {
	if len(p.b)-p.i < 4 {
		return 0, p.fail("short unicode escape")
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, p.fail("invalid unicode escape")
		}
	}
	p.i += 4
	return r, nil
}

// ErrNotFinite is returned for NaN and infinite numbers, which JSON cannot carry.
var ErrNotFinite = errors.New("number is not finite")

// Append appends the canonical encoding of v to dst.
func Append(dst []byte, v Value) ([]byte, error) {
	switch v.Kind {
	case Null:
		return append(dst, "null"...), nil
	case Bool:
		if v.Bool {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case Number:
		return AppendNumber(dst, v.Num)
	case String:
		return AppendString(dst, v.Str), nil
	case Array:
		dst = append(dst, '[')
		for i, e := range v.Arr {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = Append(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case Object:
		ms := v.Obj
		if !slices.IsSortedFunc(ms, compareMembers) {
			ms = slices.Clone(ms)
			slices.SortFunc(ms, compareMembers)
		}
		dst = append(dst, '{')
		for i, m := range ms {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, m.Key)
			dst = append(dst, ':')
			var err error
			if dst, err = Append(dst, m.Val); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	}
	return nil, fmt.Errorf("unknown JSON kind %d", v.Kind)
}

func compareMembers(a, b Member) int { return CompareKeys(a.Key, b.Key) }

// CompareKeys orders member names by their UTF-16 code units, as RFC 8785
// requires.
func CompareKeys(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ua, la := utf16Units(ra)
			ub, lb := utf16Units(rb)
			if ua != ub {
				return int(ua) - int(ub)
			}
			return int(la) - int(lb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

func utf16Units(r rune) (hi, lo rune) {
	if r >= 0x10000 {
		return utf16.EncodeRune(r)
	}
	return r, 0
}

const hexDigits = "0123456789abcdef"

// escaped marks the bytes AppendString must escape.
var escaped = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// AppendString appends s as a canonical JSON string: only '"', '\\' and
// control characters are escaped, using the short forms where they exist.
// s must be valid UTF-8 (ValidString); invalid bytes are copied unchanged.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !escaped[c] {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendNumber appends f formatted as ECMAScript's Number.prototype.toString
// does (RFC 8785 section 3.2.2.3). NaN and infinities are rejected.
func AppendNumber(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, ErrNotFinite
	}
	if f == 0 {
		return append(dst, '0'), nil
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// Shortest round-trip digits in scientific form: d[.ddd]e±x.
	var tmp [32]byte
	s := strconv.AppendFloat(tmp[:0], f, 'e', -1, 64)
	epos := len(s) - 1
	for s[epos] != 'e' {
		epos--
	}
	exp, _ := strconv.Atoi(string(s[epos+1:]))
	var dig [24]byte
	digits := append(dig[:0], s[0])
	if epos > 1 {
		digits = append(digits, s[2:epos]...)
	}
	k, n := len(digits), exp+1 // value = 0.digits × 10^n
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst, nil
}

// AppendInt appends an integer; integers within ±2^53 format the same way
// under RFC 8785 as in decimal.
func AppendInt(dst []byte, i int64) []byte { return strconv.AppendInt(dst, i, 10) }

// MaxSafeInt is the largest integer that I-JSON numbers carry exactly.
const MaxSafeInt = 1<<53 - 1
