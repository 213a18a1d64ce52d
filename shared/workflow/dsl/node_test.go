package dsl

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// mustTree parses src, failing the test on any issue.
func mustTree(t *testing.T, src string) *node {
	t.Helper()
	root, issues := parseTree([]byte(src))
	if len(issues) > 0 {
		t.Fatalf("parseTree(%q): %v", src, issues)
	}
	return root
}

func TestPlainScalarTyping(t *testing.T) {
	tests := []struct {
		src  string
		want any // nil for null
	}{
		{"~", nil}, {"null", nil}, {"Null", nil}, {"NULL", nil}, {"", nil},
		{"true", true}, {"True", true}, {"TRUE", true}, {"false", false}, {"False", false}, {"FALSE", false},
		// YAML 1.1 booleans are strings under the 1.2 core schema.
		{"yes", "yes"}, {"no", "no"}, {"on", "on"}, {"off", "off"}, {"y", "y"}, {"N", "N"}, {"Yes", "Yes"},
		{"0", int64(0)}, {"42", int64(42)}, {"-7", int64(-7)}, {"+5", int64(5)},
		{"0x1F", int64(31)}, {"-0x10", int64(-16)}, {"0o17", int64(15)}, {"0b101", int64(5)},
		{"0755", int64(493)}, {"1_000", int64(1000)},
		{"9223372036854775807", int64(math.MaxInt64)}, {"-9223372036854775808", int64(math.MinInt64)},
		{"18446744073709551615", float64(math.MaxUint64)},
		{"1.5", 1.5}, {".5", 0.5}, {"5.", 5.0}, {"-.5", -0.5}, {"1.0e5", 100000.0}, {"1_0.5", 10.5},
		// Not numbers: kept as written.
		{"99999999999999999999", "99999999999999999999"}, {"1.0e400", "1.0e400"}, {"1e5", "1e5"},
		{"09", "09"}, {"1.2.3", "1.2.3"}, {"+-5", "+-5"}, {"_1", "_1"}, {"0x", "0x"},
		{"2024-01-01", "2024-01-01"}, {"12:30", "12:30"}, {"1.0.0", "1.0.0"},
		{"${ .a }", "${ .a }"}, {"<<", "<<"}, {"-", "-"},
	}
	for _, tc := range tests {
		src := "v: " + tc.src + "\n"
		if tc.src == "-" {
			src = "v: '-'\n"
		}
		root := mustTree(t, src)
		if got := root.get("v").value(); got != tc.want {
			t.Errorf("%q: got %#v, want %#v", tc.src, got, tc.want)
		}
	}
}

func TestQuotedAndBlockScalarsAreStrings(t *testing.T) {
	root := mustTree(t, "a: '1'\nb: \"true\"\nc: |\n  null\nd: >-\n  12\n  34\ne: 'it''s'\nf: \"tab\\there\"\n")
	want := map[string]string{"a": "1", "b": "true", "c": "null\n", "d": "12 34", "e": "it's", "f": "tab\there"}
	for k, w := range want {
		if v := root.get(k); v.kind != kindString || v.str != w {
			t.Errorf("%s: got %v %q, want string %q", k, v.kind, v.str, w)
		}
	}
}

func TestMappingKeys(t *testing.T) {
	root := mustTree(t, "1: a\n1.5: b\ntrue: c\nnull: d\n0x10: e\n'q': f\n\"a/b~c\": g\n")
	var keys []string
	for _, e := range root.keys {
		keys = append(keys, e.key)
	}
	if got := strings.Join(keys, ","); got != "1,1.5,true,null,0x10,q,a/b~c" {
		t.Fatalf("keys = %s", got)
	}
	if p, ok := root.find("/a~1b~0c"); !ok || p != (Pos{Line: 7, Column: 1}) {
		t.Fatalf("find escaped key = %v %v", p, ok)
	}
}

func TestCoreTags(t *testing.T) {
	root := mustTree(t, "a: !!str 12\nb: !!str true\nc: !!int '5'\nd: !!map {x: 1}\ne: !!seq [1]\nf: !!float 2\n")
	if v := root.get("a"); v.kind != kindString || v.str != "12" || v.pos != (Pos{Line: 1, Column: 10}) {
		t.Errorf("a = %+v", v)
	}
	if v := root.get("b"); v.kind != kindString || v.str != "true" {
		t.Errorf("b = %+v", v)
	}
	// Other core tags leave the value typed as written.
	if v := root.get("c"); v.kind != kindString || v.str != "5" {
		t.Errorf("c = %+v", v)
	}
	if v := root.get("d"); v.kind != kindMap || v.get("x").i != 1 {
		t.Errorf("d = %+v", v)
	}
	if v := root.get("e"); v.kind != kindSeq || len(v.items) != 1 {
		t.Errorf("e = %+v", v)
	}
	if v := root.get("f"); v.kind != kindInt || v.i != 2 {
		t.Errorf("f = %+v", v)
	}
}

func TestUnsupportedYAMLRejected(t *testing.T) {
	tests := []struct {
		src, ptr  string
		line, col int
		msg       string
	}{
		{"a: &x 1\n", "/a", 1, 4, "unsupported: YAML anchors, aliases and merge keys"},
		{"a: &x 1\nb: *x\n", "/a", 1, 4, "unsupported: YAML anchors, aliases and merge keys"},
		{"a: &x 1\nb: *x\n", "/b", 2, 4, "unsupported: YAML anchors, aliases and merge keys"},
		{"&x a: 1\n", "", 1, 1, "unsupported: YAML anchors, aliases and merge keys"},
		{"b:\n  <<: {c: 1}\n", "/b", 2, 3, "unsupported: YAML anchors, aliases and merge keys"},
		{"a: 1\nb: [x, *nope]\n", "", 2, 8, "unsupported: YAML anchors, aliases and merge keys"},
		{"a: '*nope'\nb:\n  - é: *nope\n", "", 3, 8, "unsupported: YAML anchors, aliases and merge keys"},
		{"a: !x 1\n", "/a", 1, 4, `unsupported YAML tag "!x"`},
		{"a:\n  - !!binary aGk=\n", "/a/0", 2, 5, `unsupported YAML tag "!!binary"`},
		{"a: ! 12\n", "/a", 1, 4, `unsupported YAML tag "!"`},
		{"a: !!str [1]\n", "/a", 1, 4, "!!str applied to a collection"},
		{"a: .inf\n", "/a", 1, 4, "infinity and NaN are not JSON numbers"},
		{"a: -.Inf\n", "/a", 1, 4, "infinity and NaN are not JSON numbers"},
		{"a: .nan\n", "/a", 1, 4, "infinity and NaN are not JSON numbers"},
		{"? [a]\n: 1\n", "", 1, 3, "mapping keys must be strings"},
		{"!!str k: 1\n", "", 1, 1, "mapping keys must be strings"},
		{".inf: 1\n", "", 1, 1, "mapping keys must be strings"},
		{"a: 1\nb:\n  x: 1\na: 2\n", "/a", 4, 1, `mapping key "a" already defined at 1:1`},
		{"{a: 1, b: {c: 1, c: 2}}", "/b/c", 1, 18, `mapping key "c" already defined at 1:12`},
		{"null: 1\n~: 2\n", "/null", 2, 1, `mapping key "null" already defined at 1:1`},
	}
	for _, tc := range tests {
		root, issues := parseTree([]byte(tc.src))
		if root != nil {
			t.Errorf("%q: accepted", tc.src)
			continue
		}
		found := false
		for _, is := range issues {
			if is.Pointer == tc.ptr && is.Line == tc.line && is.Column == tc.col && is.Message == tc.msg {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: issues %v, want %s %d:%d: %s", tc.src, issues, tc.ptr, tc.line, tc.col, tc.msg)
		}
	}
}

func TestDuplicateKeysInLargeMapping(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < 40; i++ {
		sb.WriteString("k" + strconv.Itoa(i) + ": 1\n")
	}
	sb.WriteString("k7: 2\n")
	_, issues := parseTree([]byte(sb.String()))
	if len(issues) != 1 || issues[0].Message != `mapping key "k7" already defined at 8:1` || issues[0].Line != 41 {
		t.Fatalf("issues = %v", issues)
	}
}

func TestDocuments(t *testing.T) {
	for _, src := range []string{"a: 1\n---\n", "---\na: 1\n...\n", "---\n---\na: 1\n", "# lead\na: 1 # trailing\n"} {
		if root := mustTree(t, src); root.get("a").i != 1 {
			t.Errorf("%q: a = %+v", src, root.get("a"))
		}
	}
	for _, tc := range []struct {
		src       string
		line, col int
		msg       string
	}{
		{"a: 1\n---\nb: 2\n", 3, 1, "more than one YAML document in the source"},
		{"", 1, 1, "empty document"},
		{"# nothing\n", 1, 1, "empty document"},
		{"---\n", 1, 1, "empty document"},
	} {
		_, issues := parseTree([]byte(tc.src))
		if len(issues) != 1 || issues[0].Line != tc.line || issues[0].Column != tc.col || issues[0].Message != tc.msg {
			t.Errorf("%q: issues = %v", tc.src, issues)
		}
	}
}

func TestSyntaxErrorsCarryTheirLine(t *testing.T) {
	tests := []struct {
		src  string
		line int
		msg  string
	}{
		{"a: 1\nb:\n  c: 2\n d: 3\n", 4, "did not find expected key"},
		{"a: 1\n  b: 2\n", 2, "mapping values are not allowed in this context"},
		{"a: [1, 2\nb: 3\n", 2, "did not find expected ',' or ']'"},
		{"a: 1\nb: {c: 1\nd: 2\n", 2, "did not find expected ',' or '}'"},
		{"x: 1\ny: \"\\q\"\n", 2, "found unknown escape character"},
		{"a: 1\n\n\nb: 'open\n", 4, "found unexpected end of stream"},
		{"key: value: x\n", 1, "mapping values are not allowed in this context"},
		{"a: @x\n", 1, "found character that cannot start any token"},
	}
	for _, tc := range tests {
		_, issues := parseTree([]byte(tc.src))
		if len(issues) != 1 {
			t.Errorf("%q: issues = %v", tc.src, issues)
			continue
		}
		is := issues[0]
		if is.Line != tc.line || is.Column != 1 || is.Message != "malformed YAML/JSON: "+tc.msg {
			t.Errorf("%q: got %v, want line %d %q", tc.src, is, tc.line, tc.msg)
		}
	}
}

func TestPositions(t *testing.T) {
	src := "document:\n  dsl: '1.0.0'\ndo:\n  - first:\n      set: {x: 1, y: [a, b]}\n  - second:\n      wait:\n        seconds: 2\n"
	root := mustTree(t, src)
	tests := map[string]Pos{
		"":                          {1, 1},
		"/document":                 {1, 1},
		"/document/dsl":             {2, 3},
		"/do":                       {3, 1},
		"/do/0":                     {4, 5},
		"/do/0/first":               {4, 5},
		"/do/0/first/set":           {5, 7},
		"/do/0/first/set/x":         {5, 13},
		"/do/0/first/set/y":         {5, 19},
		"/do/0/first/set/y/1":       {5, 26},
		"/do/1/second/wait/seconds": {8, 9},
	}
	for ptr, want := range tests {
		if got, ok := root.find(ptr); !ok || got != want {
			t.Errorf("find(%q) = %v %v, want %v", ptr, got, ok, want)
		}
	}
	for _, ptr := range []string{"/nope", "/do/2", "/do/01", "/do/-1", "/do/x", "do", "/document/dsl/x", "/do/0/first/set/y/9", "/a~2b"} {
		if p, ok := root.find(ptr); ok {
			t.Errorf("find(%q) = %v, want none", ptr, p)
		}
	}
}

// positionsByWalk maps every pointer of a tree to its position the simple
// way: entries at their key, items at their value.
func positionsByWalk(m map[string]Pos, n *node, ptr string) {
	if _, ok := m[ptr]; !ok {
		m[ptr] = n.pos
	}
	for _, e := range n.keys {
		p := ptr + "/" + escapeKey(e.key)
		m[p] = e.keyPos
		positionsByWalk(m, e.val, p)
	}
	for i, it := range n.items {
		positionsByWalk(m, it, ptr+"/"+strconv.Itoa(i))
	}
}

func TestFindAgreesWithFullWalk(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "valid", "*"))
	files = append(files, samplePath(t, "payment-processing"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		root, issues := parseTree(data)
		if len(issues) > 0 {
			t.Fatalf("%s: %v", f, issues)
		}
		all := map[string]Pos{}
		positionsByWalk(all, root, "")
		for ptr, want := range all {
			if got, ok := root.find(ptr); !ok || got != want {
				t.Errorf("%s: find(%q) = %v %v, want %v", f, ptr, got, ok, want)
			}
		}
	}
}

func TestTagPositionsOnLongAndNonASCIILines(t *testing.T) {
	tests := []struct {
		src  string
		ptr  string
		want Pos
	}{
		{"{\"é\": \"ü!\", \"a\": [1, !!str 2, 3]}", "/a/1", Pos{Line: 1, Column: 28}},
		{"a: 1\r\nb: [x, !!str 2]\r\n", "/b/1", Pos{Line: 2, Column: 14}},
		{"a: 1\rb: !!str 2\r", "/b", Pos{Line: 2, Column: 1}},
		{"a:\n  - ü: !!str 2", "/a/0/ü", Pos{Line: 2, Column: 5}},
	}
	for _, tc := range tests {
		root := mustTree(t, tc.src)
		if got, ok := root.find(tc.ptr); !ok || got != tc.want {
			t.Errorf("%q: find(%q) = %v %v, want %v", tc.src, tc.ptr, got, ok, tc.want)
		}
	}
	root := mustTree(t, "{\"é\": \"ü!\", \"a\": [1, !!str 2, 3]}")
	if v := root.get("a").items[1]; v.pos != (Pos{Line: 1, Column: 28}) || v.str != "2" {
		t.Errorf("tagged value = %+v", v)
	}
	root = mustTree(t, "a: 1\rb: !!str 2\r")
	if v := root.get("b"); v.pos != (Pos{Line: 2, Column: 10}) || v.str != "2" {
		t.Errorf("tagged value after CR = %+v", v)
	}
	// A long single line holding many values and a '!' (the tag check
	// walks the source once, not once per value).
	var sb strings.Builder
	sb.WriteString(`{"x": "hi!", "a": [`)
	for i := 0; i < 20000; i++ {
		sb.WriteString(`"é", `)
	}
	sb.WriteString(`!!str 7]}`)
	root = mustTree(t, sb.String())
	if v := root.get("a").items[20000]; v.str != "7" || v.pos.Column != 19+20000*5+7 {
		t.Errorf("last item = %+v", v)
	}
}
