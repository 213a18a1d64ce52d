package dsl

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// genValue writes a random YAML value nested depth levels deep, mixing block
// and flow styles, and returns it.
func genValue(rng *rand.Rand, depth, indent int, flow bool) string {
	pad := strings.Repeat(" ", indent)
	if depth == 0 {
		return []string{"1", "x", "'q [ {'", `"a # [b"`, "${ .a[0] }"}[rng.Intn(5)]
	}
	if flow || rng.Intn(4) == 0 {
		if rng.Intn(2) == 0 {
			return "[" + genValue(rng, depth-1, 0, true) + ", 2]"
		}
		return "{k: " + genValue(rng, depth-1, 0, true) + "}"
	}
	if rng.Intn(2) == 0 {
		return "\n" + pad + "- " + strings.TrimPrefix(genValue(rng, depth-1, indent+2, false), "\n"+strings.Repeat(" ", indent+2))
	}
	return "\n" + pad + "k:" + spaceIfScalar(genValue(rng, depth-1, indent+2, false))
}

func spaceIfScalar(s string) string {
	if strings.HasPrefix(s, "\n") {
		return s
	}
	return " " + s
}

// yamlDepth measures the real nesting of a decoded value.
func yamlDepth(v any) int {
	switch x := v.(type) {
	case map[string]any:
		d := 0
		for _, e := range x {
			d = max(d, yamlDepth(e))
		}
		return d + 1
	case []any:
		d := 0
		for _, e := range x {
			d = max(d, yamlDepth(e))
		}
		return d + 1
	}
	return 0
}

// TestScanShapeNeverUnderestimatesDepth checks the pre-parse depth estimate
// against the real depth of random documents.
func TestScanShapeNeverUnderestimatesDepth(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	checked := 0
	for i := 0; i < 3000; i++ {
		depth := 1 + rng.Intn(12)
		doc := "root:" + spaceIfScalar(genValue(rng, depth, 2, false)) + "\n"
		var v any
		if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
			continue
		}
		checked++
		real := yamlDepth(v)
		if got := scanShape([]byte(doc)).depth; got < real {
			t.Fatalf("scanShape depth = %d < real depth %d for:\n%s", got, real, doc)
		}
	}
	if checked < 2000 {
		t.Fatalf("only %d of 3000 generated documents were valid YAML", checked)
	}
}

func TestDeepSourceRefusedBeforeParsing(t *testing.T) {
	for _, doc := range []string{
		strings.Repeat("[", 200000),
		strings.Repeat("- ", 100000) + "x",
		strings.Repeat("{a: ", 100000),
		"a:\n" + strings.Repeat(" ", 10) + "b: " + strings.Repeat("[", 70) + "1" + strings.Repeat("]", 70) + "\n",
	} {
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), "nesting deeper than 64 levels") {
			t.Fatalf("err = %v", err)
		}
	}
	// Brackets inside quotes and comments do not count.
	doc := fmt.Sprintf("a: '%s'\nb: \"%s\" # %s\n", strings.Repeat("[", 100), strings.Repeat("{", 100), strings.Repeat("[", 100))
	if d := scanShape([]byte(doc)).depth; d > 2 {
		t.Fatalf("scanShape depth = %d for quoted brackets", d)
	}
}

func TestBlockScalarsDoNotCountAsNesting(t *testing.T) {
	text := strings.Repeat("            see [note {1 ([[[\n", 200)
	tests := []struct {
		doc  string
		want bool // true if it must stay under the limit
	}{
		{"a:\n  b: |\n" + text + "  c: 1\n", true},
		{"a:\n  - >-\n" + text, true},
		{"a:\n  b: |2 # comment\n" + text, true},
		{"a:\n  b: x|\n" + strings.Repeat("  [", 70), false},
	}
	for i, tc := range tests {
		d := scanShape([]byte(tc.doc)).depth
		if (d <= maxDepth) != tc.want {
			t.Errorf("case %d: scanShape depth = %d", i, d)
		}
	}
	w, err := Load([]byte("document: {dsl: '1.0.0', namespace: t, name: b, version: '1.0.0'}\ndo:\n  - s:\n      set:\n        note: |\n" + text))
	if err != nil || !strings.Contains(w.Do[0].Task.Set.Values["note"].(string), "see [note") {
		t.Fatalf("Load: %v", err)
	}
}

func TestWideCollectionsRefusedBeforeParsing(t *testing.T) {
	var block, flow, ok strings.Builder
	block.WriteString("set:\n")
	flow.WriteString("set: [")
	for i := 0; i <= MaxEntries; i++ {
		fmt.Fprintf(&block, "  k%d: %d\n", i, i)
		fmt.Fprintf(&flow, "%d, ", i)
	}
	flow.WriteString("0]\n")
	for _, doc := range []string{block.String(), flow.String()} {
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), "more than 4096 entries") {
			t.Fatalf("err = %v", err)
		}
	}
	// Entries of sibling collections are counted separately, and commas in
	// quoted strings not at all.
	ok.WriteString("a:\n")
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&ok, "  k%d: 'x, y'\n", i)
	}
	ok.WriteString("b:\n")
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&ok, "  - [1, 2, \"3, 4\"]\n")
	}
	if sh := scanShape([]byte(ok.String())); sh.width != 3000 {
		t.Fatalf("width = %d, want 3000", sh.width)
	}
}
