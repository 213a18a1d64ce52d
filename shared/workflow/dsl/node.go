package dsl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// nodeKind is the shape of a node of the source tree.
type nodeKind int

const (
	kindNull nodeKind = iota
	kindString
	kindInt
	kindFloat
	kindBool
	kindMap
	kindSeq
)

func (k nodeKind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindString:
		return "string"
	case kindInt:
		return "integer"
	case kindFloat:
		return "number"
	case kindBool:
		return "boolean"
	case kindMap:
		return "object"
	case kindSeq:
		return "array"
	}
	return "unknown"
}

// node is one value of the source document with its position: a format-free
// tree built from the YAML (or JSON) AST, keeping key order.
type node struct {
	kind  nodeKind
	pos   Pos
	str   string
	i     int64
	f     float64
	b     bool
	keys  []mapEntry
	items []*node
}

// mapEntry is one key of a mapping node.
type mapEntry struct {
	key    string
	keyPos Pos
	val    *node
}

// get returns the value of key in a mapping node, or nil.
func (n *node) get(key string) *node {
	if n == nil || n.kind != kindMap {
		return nil
	}
	for i := range n.keys {
		if n.keys[i].key == key {
			return n.keys[i].val
		}
	}
	return nil
}

// has reports whether a mapping node has key.
func (n *node) has(key string) bool {
	if n == nil || n.kind != kindMap {
		return false
	}
	for i := range n.keys {
		if n.keys[i].key == key {
			return true
		}
	}
	return false
}

// find returns the position of the node at the JSON pointer ptr below n:
// an entry of a mapping is placed at its key, an item of a sequence at its
// value.
func (n *node) find(ptr string) (Pos, bool) {
	if ptr == "" {
		return n.pos, true
	}
	if ptr[0] != '/' {
		return Pos{}, false
	}
	pos := n.pos
	for cur := n; ptr != ""; {
		var tok string
		tok, ptr = nextToken(ptr[1:])
		switch {
		case cur == nil:
			return Pos{}, false
		case cur.kind == kindMap:
			key, ok := unescapeKey(tok)
			if !ok {
				return Pos{}, false
			}
			var next *node
			found := false
			for i := range cur.keys {
				if cur.keys[i].key == key {
					next, pos, found = cur.keys[i].val, cur.keys[i].keyPos, true
					break
				}
			}
			if !found {
				return Pos{}, false
			}
			cur = next
		case cur.kind == kindSeq:
			i, ok := seqIndex(tok)
			if !ok || i >= len(cur.items) {
				return Pos{}, false
			}
			cur = cur.items[i]
			if cur == nil {
				return Pos{}, false
			}
			pos = cur.pos
		default:
			return Pos{}, false
		}
	}
	return pos, true
}

// nextToken splits the first token off a JSON pointer whose leading slash
// has been removed; rest keeps its leading slash, or is "".
func nextToken(p string) (tok, rest string) {
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, ""
}

// unescapeKey reverses escapeKey, refusing a token escapeKey cannot write.
func unescapeKey(t string) (string, bool) {
	if strings.IndexByte(t, '~') < 0 {
		return t, true
	}
	k := strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	return k, escapeKey(k) == t
}

// seqIndex reads a sequence index token as strconv.Itoa writes it.
func seqIndex(t string) (int, bool) {
	if t == "" || (len(t) > 1 && t[0] == '0') {
		return 0, false
	}
	i := 0
	for _, c := range []byte(t) {
		if c < '0' || c > '9' || i > (math.MaxInt-9)/10 {
			return 0, false
		}
		i = i*10 + int(c-'0')
	}
	return i, true
}

// value converts the node to plain Go values as encoding/json would produce
// them, except that integers stay int64.
func (n *node) value() any {
	if n == nil {
		return nil
	}
	switch n.kind {
	case kindString:
		return n.str
	case kindInt:
		return n.i
	case kindFloat:
		return n.f
	case kindBool:
		return n.b
	case kindMap:
		m := make(map[string]any, len(n.keys))
		for _, e := range n.keys {
			m[e.key] = e.val.value()
		}
		return m
	case kindSeq:
		s := make([]any, len(n.items))
		for i, it := range n.items {
			s[i] = it.value()
		}
		return s
	}
	return nil
}

// treeBuilder converts a YAML node graph into a node tree, reporting what it
// cannot represent.
type treeBuilder struct {
	src      []byte
	lines    []int   // offset of each line of src, built on first use
	cur      cursor  // last position located in src
	bangs    bool    // whether src holds a '!', the start of every tag
	path     []token // pointer of the node being built
	slab     []node  // storage for the next nodes
	issues   []*Issue
	maxDepth int
	nodes    int
	seen     map[*node]map[string]bool // keys of each large mapping built so far
}

// cursor is a position in the source with its byte offset.
type cursor struct {
	line, col, off int
}

// maxNodes bounds the number of values in one document.
const maxNodes = 200_000

// parseTree parses YAML or JSON source into a node tree. Issues found while
// building the tree are returned with a nil tree if the document is unusable.
func parseTree(data []byte) (*node, []*Issue) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var body *yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if is := unknownAlias(data, err); is != nil {
				return nil, []*Issue{is}
			}
			return nil, []*Issue{syntaxIssue(err)}
		}
		b := documentBody(&doc)
		if b == nil {
			continue
		}
		if body != nil {
			return nil, []*Issue{{Line: b.Line, Column: b.Column, Message: "more than one YAML document in the source"}}
		}
		body = b
	}
	if body == nil {
		return nil, []*Issue{{Pointer: "", Line: 1, Column: 1, Message: "empty document"}}
	}
	b := &treeBuilder{src: data, bangs: bytes.IndexByte(data, '!') >= 0, maxDepth: maxDepth}
	root := b.build(body, 0)
	if len(b.issues) > 0 {
		return nil, b.issues
	}
	return root, nil
}

// documentBody returns the content of a document node, or nil for a
// document holding nothing (an empty plain scalar).
func documentBody(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	n := doc.Content[0]
	if n.Kind == yaml.ScalarNode && n.Value == "" && n.Style == 0 && n.Anchor == "" {
		return nil
	}
	return n
}

// unknownAlias reports an alias to an undefined anchor, which the YAML
// library refuses with no position, as the unsupported construct it is,
// placed at the first "*name" in the source that can be that alias.
func unknownAlias(data []byte, err error) *Issue {
	name, ok := strings.CutPrefix(err.Error(), "yaml: unknown anchor '")
	if !ok {
		return nil
	}
	name, ok = strings.CutSuffix(name, "' referenced")
	if !ok || name == "" {
		return nil
	}
	is := &Issue{Line: 1, Column: 1, Message: unsupportedRefs}
	alias := []byte("*" + name)
	line, lineStart := 1, 0
	for i := 0; i < len(data); i++ {
		if data[i] == '\n' {
			line, lineStart = line+1, i+1
			continue
		}
		if data[i] != '*' || !bytes.HasPrefix(data[i:], alias) {
			continue
		}
		if i > 0 && !isBlank(data[i-1]) && !strings.ContainsRune("[{,:-", rune(data[i-1])) {
			continue
		}
		if end := i + len(alias); end < len(data) && !isBlank(data[end]) && !strings.ContainsRune("]},", rune(data[end])) {
			continue
		}
		is.Line, is.Column = line, utf8.RuneCount(data[lineStart:i])+1
		break
	}
	return is
}

// parserProblems are the messages of the YAML library's parser stage, whose
// error lines it counts from zero (its scanner stage counts from one).
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// syntaxIssue turns a YAML syntax error into an Issue. The library reports
// "yaml: line N: message" (the line where the offending construct starts, or
// where the problem was found) and no column, so the column is 1.
func syntaxIssue(err error) *Issue {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if l, e := strconv.Atoi(num); e == nil && l > 0 {
				line, msg = l, text
				if parserProblems[text] {
					line++
				}
			}
		}
	}
	if nl := strings.IndexByte(msg, '\n'); nl >= 0 {
		msg = msg[:nl]
	}
	if msg == "" {
		return &Issue{Line: line, Column: 1, Message: "malformed YAML/JSON"}
	}
	return &Issue{Line: line, Column: 1, Message: "malformed YAML/JSON: " + msg}
}

// token is one step of the JSON pointer of the node being built: a mapping
// key, or a sequence index when isKey is false.
type token struct {
	key   string
	index int
	isKey bool
}

// pointer renders the JSON pointer of the node being built.
func (b *treeBuilder) pointer() string {
	if len(b.path) == 0 {
		return ""
	}
	var sb strings.Builder
	for _, t := range b.path {
		sb.WriteByte('/')
		if t.isKey {
			sb.WriteString(escapeKey(t.key))
		} else {
			sb.WriteString(strconv.Itoa(t.index))
		}
	}
	return sb.String()
}

// newNode returns a zeroed node, carved from a slab to spare the allocator
// one call per value.
func (b *treeBuilder) newNode() *node {
	if len(b.slab) == cap(b.slab) {
		b.slab = make([]node, 0, 64)
	}
	b.slab = b.slab[:len(b.slab)+1]
	return &b.slab[len(b.slab)-1]
}

func yamlPos(n *yaml.Node) Pos {
	if n == nil || n.Line == 0 {
		return Pos{Line: 1, Column: 1}
	}
	return Pos{Line: n.Line, Column: n.Column}
}

func (b *treeBuilder) failAt(p Pos, format string, args ...any) {
	b.issues = append(b.issues, &Issue{Pointer: b.pointer(), Line: p.Line, Column: p.Column, Message: fmt.Sprintf(format, args...)})
}

const unsupportedRefs = "unsupported: YAML anchors, aliases and merge keys"

func (b *treeBuilder) build(n *yaml.Node, depth int) *node {
	b.nodes++
	if b.nodes > maxNodes {
		if b.nodes == maxNodes+1 {
			b.failAt(yamlPos(n), "document has more than %d values", maxNodes)
		}
		return b.newNode()
	}
	out := b.newNode()
	out.pos = yamlPos(n)
	if depth > b.maxDepth {
		b.failAt(out.pos, "nesting deeper than %d levels", b.maxDepth)
		return out
	}
	if n.Anchor != "" || n.Kind == yaml.AliasNode {
		b.failAt(out.pos, unsupportedRefs)
		return out
	}
	if n.Style&yaml.TaggedStyle != 0 {
		return b.tagged(n, depth)
	}
	if b.bangTagged(n) {
		b.failAt(out.pos, "unsupported YAML tag %q", "!")
		return out
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			out.kind, out.str = kindString, n.Value
			break
		}
		b.plain(out, n.Value)
	case yaml.MappingNode:
		out.kind = kindMap
		out.keys = make([]mapEntry, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			b.entry(out, n.Content[i], n.Content[i+1], depth)
		}
		if len(out.keys) > 0 && n.Style&yaml.FlowStyle == 0 {
			// A block mapping starts at its first key.
			out.pos = out.keys[0].keyPos
		}
	case yaml.SequenceNode:
		out.kind = kindSeq
		out.items = make([]*node, len(n.Content))
		for i, it := range n.Content {
			b.path = append(b.path, token{index: i})
			out.items[i] = b.build(it, depth+1)
			b.path = b.path[:len(b.path)-1]
		}
	default:
		b.failAt(out.pos, "unsupported YAML construct")
	}
	return out
}

// plain types an untagged plain scalar: the YAML 1.2 core schema's null
// and boolean words, integers (decimal, 0x, 0o, 0b and leading-zero octal,
// with optional _ separators) and floats written with exactly one decimal
// point (so 1e5 stays a string). Anything else, including the YAML 1.1
// words yes/no/on/off, is a string. This is the typing the DSL has always
// applied, and the one its schema checks see.
func (b *treeBuilder) plain(out *node, s string) {
	switch s {
	case "", "~", "null", "Null", "NULL":
		out.kind = kindNull
		return
	case "true", "True", "TRUE":
		out.kind, out.b = kindBool, true
		return
	case "false", "False", "FALSE":
		out.kind, out.b = kindBool, false
		return
	case ".inf", ".Inf", ".INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN":
		b.failAt(out.pos, "infinity and NaN are not JSON numbers")
		return
	}
	switch k, i, f := plainNumber(s); k {
	case kindInt:
		out.kind, out.i = kindInt, i
	case kindFloat:
		out.kind, out.f = kindFloat, f
	default:
		out.kind, out.str = kindString, s
	}
}

// plainNumber reads a plain scalar as an integer or a float, returning
// kindString if it is neither. Integers beyond int64 become floats; numbers
// beyond float64 stay strings.
func plainNumber(s string) (nodeKind, int64, float64) {
	if s == "" || s[0] == '_' || !maybeNumber(s) {
		return kindString, 0, 0
	}
	dots := strings.Count(s, ".")
	if dots > 1 {
		return kindString, 0, 0
	}
	neg := s[0] == '-'
	digits := s
	if s[0] == '+' || s[0] == '-' {
		digits = s[1:]
	}
	if strings.IndexByte(digits, '_') >= 0 {
		digits = strings.ReplaceAll(digits, "_", "")
	}
	base := 10
	switch {
	case strings.HasPrefix(digits, "0x"):
		digits, base = digits[2:], 16
	case strings.HasPrefix(digits, "0o"):
		digits, base = digits[2:], 8
	case strings.HasPrefix(digits, "0b"):
		digits, base = digits[2:], 2
	case len(digits) > 1 && digits[0] == '0' && dots == 0:
		base = 8
	case dots == 1:
		base = 0
	}
	if base == 0 {
		text := digits
		if neg {
			text = "-" + digits
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return kindString, 0, 0
		}
		return kindFloat, 0, f
	}
	if neg {
		i, err := strconv.ParseInt("-"+digits, base, 64)
		if err != nil {
			return kindString, 0, 0
		}
		return kindInt, i, 0
	}
	u, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		return kindString, 0, 0
	}
	if u > math.MaxInt64 {
		return kindFloat, 0, float64(u)
	}
	return kindInt, int64(u), 0
}

// maybeNumber is a fast pre-check: every number starts with a sign, a digit
// or a decimal point.
func maybeNumber(s string) bool {
	c := s[0]
	return c == '+' || c == '-' || c == '.' || (c >= '0' && c <= '9')
}

// tagged handles explicitly tagged values: core schema tags only. Their
// values are typed as if untagged.
func (b *treeBuilder) tagged(n *yaml.Node, depth int) *node {
	tagPos := yamlPos(n)
	inner := *n
	inner.Style &^= yaml.TaggedStyle
	inner.Tag = ""
	// The value starts after the tag when it is on the same line.
	if off, ok := b.offset(tagPos); ok {
		end := off
		for end < len(b.src) && !isBlank(b.src[end]) {
			end++
		}
		next := end
		for next < len(b.src) && (b.src[next] == ' ' || b.src[next] == '\t') {
			next++
		}
		if next > end && next < len(b.src) && !isBlank(b.src[next]) && b.src[next] != '#' {
			inner.Column += utf8.RuneCount(b.src[off:next])
		}
	}
	out := b.build(&inner, depth)
	switch n.Tag {
	case "!!str":
		if n.Kind != yaml.ScalarNode {
			b.failAt(tagPos, "!!str applied to a collection")
			return out
		}
		if out.kind != kindString {
			out.kind, out.str = kindString, strings.TrimSpace(n.Value)
		}
		return out
	case "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq":
		return out
	}
	b.failAt(tagPos, "unsupported YAML tag %q", n.Tag)
	return out
}

func (b *treeBuilder) entry(m *node, kn, vn *yaml.Node, depth int) {
	kp := yamlPos(kn)
	var key string
	switch {
	case kn.Kind == yaml.AliasNode || kn.Anchor != "":
		b.failAt(kp, unsupportedRefs)
		return
	case kn.Kind == yaml.ScalarNode && kn.Style&(yaml.TaggedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 && !b.bangTagged(kn):
		key = kn.Value
		if kn.Style == 0 {
			switch kn.Value {
			case "<<":
				b.failAt(kp, unsupportedRefs)
				return
			case "", "~", "null", "Null", "NULL":
				key = "null"
			case ".inf", ".Inf", ".INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN":
				b.failAt(kp, "mapping keys must be strings")
				return
			}
		}
	default:
		b.failAt(kp, "mapping keys must be strings")
		return
	}
	// Duplicate keys are refused, in linear time.
	if first, dup := b.duplicate(m, key); dup {
		b.path = append(b.path, token{key: key, isKey: true})
		b.failAt(kp, "mapping key %q already defined at %d:%d", key, first.Line, first.Column)
		b.path = b.path[:len(b.path)-1]
		return
	}
	b.path = append(b.path, token{key: key, isKey: true})
	val := b.build(vn, depth+1)
	b.path = b.path[:len(b.path)-1]
	m.keys = append(m.keys, mapEntry{key: key, keyPos: kp, val: val})
}

// escapeKey escapes a key for use as a JSON pointer token (RFC 6901).
func escapeKey(k string) string {
	if strings.IndexByte(k, '~') < 0 && strings.IndexByte(k, '/') < 0 {
		return k
	}
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

// duplicate reports whether mapping m already has key, and where: a scan
// for small mappings, a set for large ones.
func (b *treeBuilder) duplicate(m *node, key string) (Pos, bool) {
	const small = 16
	if len(m.keys) < small {
		for _, e := range m.keys {
			if e.key == key {
				return e.keyPos, true
			}
		}
		return Pos{}, false
	}
	if b.seen == nil {
		b.seen = map[*node]map[string]bool{}
	}
	keys := b.seen[m]
	if keys == nil {
		keys = make(map[string]bool, 2*small)
		for _, e := range m.keys {
			keys[e.key] = true
		}
		b.seen[m] = keys
	}
	if keys[key] {
		for _, e := range m.keys {
			if e.key == key {
				return e.keyPos, true
			}
		}
	}
	keys[key] = true
	return Pos{}, false
}

func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// offset returns the byte offset in the source of a position (columns
// count characters). Nodes are visited in source order, so the walk resumes
// from the last position asked for when it can: linear in the source size
// over a whole document.
func (b *treeBuilder) offset(p Pos) (int, bool) {
	if b.lines == nil {
		b.lines = append(make([]int, 0, 64), 0)
		for i := 0; i < len(b.src); {
			if w := breakWidth(b.src[i:]); w > 0 {
				i += w
				b.lines = append(b.lines, i)
				continue
			}
			i++
		}
	}
	if p.Line < 1 || p.Line > len(b.lines) || p.Column < 1 {
		return 0, false
	}
	c := b.cur
	if c.line != p.Line || c.col > p.Column {
		c = cursor{line: p.Line, col: 1, off: b.lines[p.Line-1]}
	}
	for c.col < p.Column {
		if c.off >= len(b.src) || breakWidth(b.src[c.off:]) > 0 {
			return 0, false
		}
		if b.src[c.off] < utf8.RuneSelf {
			c.off++
		} else {
			_, size := utf8.DecodeRune(b.src[c.off:])
			c.off += size
		}
		c.col++
	}
	b.cur = c
	return c.off, true
}

// breakWidth returns the length of the line break s starts with, or 0: the
// YAML library breaks lines at LF, CR, CRLF, NEL, LS and PS.
func breakWidth(s []byte) int {
	switch {
	case s[0] == '\n':
		return 1
	case s[0] == '\r':
		if len(s) > 1 && s[1] == '\n' {
			return 2
		}
		return 1
	case s[0] == 0xC2 && len(s) > 1 && s[1] == 0x85:
		return 2
	case s[0] == 0xE2 && len(s) > 2 && s[1] == 0x80 && (s[2] == 0xA8 || s[2] == 0xA9):
		return 3
	}
	return 0
}

// bangTagged reports whether a node the YAML library reports as untagged
// carries the non-specific tag "!", which it drops silently.
func (b *treeBuilder) bangTagged(n *yaml.Node) bool {
	if !b.bangs || n.Line == 0 {
		return false
	}
	off, ok := b.offset(Pos{Line: n.Line, Column: n.Column})
	return ok && off+1 < len(b.src) && b.src[off] == '!' && isBlank(b.src[off+1])
}
