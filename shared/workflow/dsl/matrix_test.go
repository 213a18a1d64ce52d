package dsl

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// matrixSections maps each subsection of docs/dsl.md's support matrix to
// the schema definition whose properties it must list: a $defs name, and
// for a call the title of its variant.
var matrixSections = map[string][2]string{
	"every task":     {"taskBase", ""},
	"call: http":     {"callTask", "CallHTTP"},
	"call: openapi":  {"callTask", "CallOpenAPI"},
	"call: grpc":     {"callTask", "CallGRPC"},
	"call: asyncapi": {"callTask", "CallAsyncAPI"},
	"call: a2a":      {"callTask", "CallA2A"},
	"call: mcp":      {"callTask", "CallMCP"},
	"call: function": {"callTask", "CallFunction"},
	"do":             {"doTask", ""},
	"emit":           {"emitTask", ""},
	"for":            {"forTask", ""},
	"fork":           {"forkTask", ""},
	"listen":         {"listenTask", ""},
	"raise":          {"raiseTask", ""},
	"run":            {"runTask", ""},
	"set":            {"setTask", ""},
	"switch":         {"switchTask", ""},
	"try":            {"tryTask", ""},
	"wait":           {"waitTask", ""},
	"workflow":       {"", ""},
}

// schemaPaths lists the property paths of a schema node up to depth
// segments, through oneOf/anyOf/allOf alternatives but not through $ref
// (referenced definitions have sections of their own or are documented as
// a whole).
func schemaPaths(n map[string]any, prefix string, depth int) []string {
	var out []string
	for _, k := range []string{"oneOf", "anyOf", "allOf"} {
		alts, _ := n[k].([]any)
		for _, a := range alts {
			if m, ok := a.(map[string]any); ok {
				out = append(out, schemaPaths(m, prefix, depth)...)
			}
		}
	}
	props, _ := n["properties"].(map[string]any)
	for name, v := range props {
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		out = append(out, p)
		if m, ok := v.(map[string]any); ok && depth > 1 {
			out = append(out, schemaPaths(m, p, depth-1)...)
		}
	}
	return out
}

// TestSupportMatrixNamesEverySchemaProperty keeps docs/dsl.md's support
// matrix complete: every property the official schema defines for a task
// (and for the workflow document) has a row in its section.
func TestSupportMatrixNamesEverySchemaProperty(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(specDir(t), "workflow.schema.yaml"))
	if err != nil {
		t.Skipf("official DSL schema not available: %v", err)
	}
	var schema map[string]any
	if err := yaml.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	defs, _ := schema["$defs"].(map[string]any)
	docs, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "dsl.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, matrix, ok := strings.Cut(string(docs), "\n## Support matrix\n")
	if !ok {
		t.Fatal("docs/dsl.md has no \"## Support matrix\" section")
	}
	matrix, _, _ = strings.Cut(matrix, "\n## ")
	sections := map[string]string{}
	for _, part := range strings.Split(matrix, "\n### ")[1:] {
		title, body, _ := strings.Cut(part, "\n")
		sections[strings.Trim(title, "` ")] = body
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)`")
	for title, def := range matrixSections {
		body, ok := sections[title]
		if !ok {
			t.Errorf("the support matrix has no section %q", title)
			continue
		}
		var node map[string]any
		switch {
		case def[0] == "":
			node = schema
		case def[1] == "":
			node, _ = defs[def[0]].(map[string]any)
		default:
			alts, _ := defs[def[0]].(map[string]any)["oneOf"].([]any)
			for _, a := range alts {
				if m, _ := a.(map[string]any); m["title"] == def[1] {
					node = m
				}
			}
		}
		if node == nil {
			t.Errorf("section %q: no schema definition %v", title, def)
			continue
		}
		depth := 3
		if def[0] == "" {
			depth = 2
		}
		var rows []string
		for _, m := range row.FindAllStringSubmatch(body, -1) {
			rows = append(rows, m[1])
		}
		for _, p := range schemaPaths(node, "", depth) {
			if !slices.Contains(rows, p) {
				t.Errorf("section %q lacks a row for `%s`", title, p)
			}
		}
	}
}
