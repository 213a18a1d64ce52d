package dsl

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
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

// treeBuilder converts a goccy AST into a node tree, reporting what it cannot
// represent.
type treeBuilder struct {
	issues   []*Issue
	maxDepth int
	nodes    int
	seen     map[*node]map[string]bool // keys of each mapping built so far
}

// maxNodes bounds the number of values in one document.
const maxNodes = 200_000

// parseTree parses YAML or JSON source into a node tree. Issues found while
// building the tree are returned with a nil tree if the document is unusable.
func parseTree(data []byte) (*node, []*Issue) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, []*Issue{syntaxIssue(err)}
	}
	var docs []*ast.DocumentNode
	for _, d := range f.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d)
		}
	}
	switch {
	case len(docs) == 0:
		return nil, []*Issue{{Pointer: "", Line: 1, Column: 1, Message: "empty document"}}
	case len(docs) > 1:
		p := nodePos(docs[1].Body)
		return nil, []*Issue{{Line: p.Line, Column: p.Column, Message: "more than one YAML document in the source"}}
	}
	b := &treeBuilder{maxDepth: maxDepth}
	root := b.build(docs[0].Body, "", 0)
	if len(b.issues) > 0 {
		return nil, b.issues
	}
	return root, nil
}

// syntaxIssue turns a YAML syntax error into an Issue with its position.
func syntaxIssue(err error) *Issue {
	msg := err.Error()
	is := &Issue{Line: 1, Column: 1, Message: "malformed YAML/JSON"}
	// goccy errors render as "[line:col] message" followed by a source excerpt.
	if strings.HasPrefix(msg, "[") {
		if end := strings.Index(msg, "]"); end > 0 {
			var l, c int
			if _, e := fmt.Sscanf(msg[1:end], "%d:%d", &l, &c); e == nil {
				is.Line, is.Column = l, c
			}
			rest := strings.TrimSpace(msg[end+1:])
			if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
				rest = rest[:nl]
			}
			if rest != "" {
				is.Message = "malformed YAML/JSON: " + rest
			}
		}
	}
	return is
}

func nodePos(n ast.Node) Pos {
	if n == nil {
		return Pos{Line: 1, Column: 1}
	}
	t := n.GetToken()
	if t == nil || t.Position == nil {
		return Pos{Line: 1, Column: 1}
	}
	return Pos{Line: t.Position.Line, Column: t.Position.Column}
}

func (b *treeBuilder) fail(n ast.Node, ptr, format string, args ...any) {
	p := nodePos(n)
	b.issues = append(b.issues, &Issue{Pointer: ptr, Line: p.Line, Column: p.Column, Message: fmt.Sprintf(format, args...)})
}

func (b *treeBuilder) build(n ast.Node, ptr string, depth int) *node {
	b.nodes++
	if b.nodes > maxNodes {
		if b.nodes == maxNodes+1 {
			b.fail(n, ptr, "document has more than %d values", maxNodes)
		}
		return &node{}
	}
	if depth > b.maxDepth {
		b.fail(n, ptr, "nesting deeper than %d levels", b.maxDepth)
		return &node{pos: nodePos(n)}
	}
	out := &node{pos: nodePos(n)}
	switch v := n.(type) {
	case nil:
		out.pos = Pos{Line: 1, Column: 1}
	case *ast.NullNode:
	case *ast.StringNode:
		out.kind, out.str = kindString, v.Value
	case *ast.LiteralNode:
		out.kind = kindString
		if v.Value != nil {
			out.str = v.Value.Value
		}
	case *ast.IntegerNode:
		switch x := v.Value.(type) {
		case int64:
			out.kind, out.i = kindInt, x
		case uint64:
			if x > math.MaxInt64 {
				out.kind, out.f = kindFloat, float64(x)
			} else {
				out.kind, out.i = kindInt, int64(x)
			}
		default:
			b.fail(n, ptr, "unreadable integer %s", v.String())
		}
	case *ast.FloatNode:
		out.kind, out.f = kindFloat, v.Value
		if math.IsInf(v.Value, 0) || math.IsNaN(v.Value) {
			b.fail(n, ptr, "number out of range")
		}
	case *ast.InfinityNode, *ast.NanNode:
		b.fail(n, ptr, "infinity and NaN are not JSON numbers")
	case *ast.BoolNode:
		out.kind, out.b = kindBool, v.Value
	case *ast.TagNode:
		return b.tagged(v, ptr, depth)
	case *ast.AnchorNode, *ast.AliasNode, *ast.MergeKeyNode:
		b.fail(n, ptr, "unsupported: YAML anchors, aliases and merge keys")
	case *ast.MappingValueNode:
		out.kind = kindMap
		b.entry(out, v, ptr, depth)
		if len(out.keys) > 0 {
			out.pos = out.keys[0].keyPos
		}
	case *ast.MappingNode:
		out.kind = kindMap
		for _, mv := range v.Values {
			b.entry(out, mv, ptr, depth)
		}
		if len(out.keys) > 0 && !v.IsFlowStyle {
			// A block mapping starts at its first key.
			out.pos = out.keys[0].keyPos
		}
	case *ast.SequenceNode:
		out.kind = kindSeq
		out.items = make([]*node, 0, len(v.Values))
		for i, it := range v.Values {
			out.items = append(out.items, b.build(it, ptr+"/"+strconv.Itoa(i), depth+1))
		}
	default:
		b.fail(n, ptr, "unsupported YAML construct %s", n.Type())
	}
	return out
}

// tagged handles explicitly tagged values: core schema tags only.
func (b *treeBuilder) tagged(v *ast.TagNode, ptr string, depth int) *node {
	tag := ""
	if v.Start != nil {
		tag = v.Start.Value
	}
	inner := b.build(v.Value, ptr, depth)
	switch tag {
	case "!!str":
		if inner.kind == kindMap || inner.kind == kindSeq {
			b.fail(v, ptr, "!!str applied to a collection")
			return inner
		}
		if v.Value != nil && inner.kind != kindString {
			inner.kind, inner.str = kindString, strings.TrimSpace(v.Value.String())
		}
		return inner
	case "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq":
		return inner
	}
	b.fail(v, ptr, "unsupported YAML tag %q", tag)
	return inner
}

func (b *treeBuilder) entry(m *node, mv *ast.MappingValueNode, ptr string, depth int) {
	if mv == nil {
		return
	}
	var keyNode ast.Node = mv.Key
	if k, ok := keyNode.(*ast.MappingKeyNode); ok {
		keyNode = k.Value
	}
	var key string
	switch k := keyNode.(type) {
	case *ast.StringNode:
		key = k.Value
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		key = k.String()
	case *ast.NullNode:
		key = "null"
	case *ast.MergeKeyNode:
		b.fail(keyNode, ptr, "unsupported: YAML anchors, aliases and merge keys")
		return
	default:
		b.fail(mv, ptr, "mapping keys must be strings")
		return
	}
	kp := nodePos(keyNode)
	// The YAML parser rejects duplicate keys; this keeps the tree sound
	// whatever it lets through, in linear time.
	if b.isDuplicate(m, key) {
		b.issues = append(b.issues, &Issue{Pointer: ptr + "/" + escapeKey(key), Line: kp.Line, Column: kp.Column, Message: fmt.Sprintf("duplicate key %q", key)})
		return
	}
	val := b.build(mv.Value, ptr+"/"+escapeKey(key), depth+1)
	m.keys = append(m.keys, mapEntry{key: key, keyPos: kp, val: val})
}

// escapeKey escapes a key for use as a JSON pointer token (RFC 6901).
func escapeKey(k string) string {
	if !strings.ContainsAny(k, "~/") {
		return k
	}
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

// isDuplicate reports whether mapping m already has key: a scan for small
// mappings, a set for large ones.
func (b *treeBuilder) isDuplicate(m *node, key string) bool {
	const small = 16
	if len(m.keys) < small {
		for _, e := range m.keys {
			if e.key == key {
				return true
			}
		}
		return false
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
		return true
	}
	keys[key] = true
	return false
}
