package dsl

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// ctkDefinition finds the workflow definitions embedded in the Conformance
// Test Kit's feature files.
var ctkDefinition = regexp.MustCompile(`(?s)Given a workflow with definition:\s*\n(\s*)"""yaml\n(.*?)\n\s*"""`)

// TestConformanceKitDocuments checks that every workflow of the CTK is
// accepted both by the official schema and by Load.
func TestConformanceKitDocuments(t *testing.T) {
	schema := officialSchema(t)
	files, _ := filepath.Glob(filepath.Join(specDir(t), "ctk", "*.feature"))
	if len(files) == 0 {
		t.Skip("conformance kit features not available")
	}
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range ctkDefinition.FindAllStringSubmatch(string(data), -1) {
			indent := m[1]
			var b strings.Builder
			for _, line := range strings.Split(m[2], "\n") {
				b.WriteString(strings.TrimPrefix(line, indent))
				b.WriteByte('\n')
			}
			doc := []byte(b.String())
			n++
			t.Run(filepath.Base(f)+"#"+strconv.Itoa(i), func(t *testing.T) {
				v, err := yamlToJSONValue(doc)
				if err != nil {
					t.Fatal(err)
				}
				if err := schema.Validate(v); err != nil {
					t.Fatalf("schema rejects CTK document: %v", err)
				}
				if _, err := Load(doc); err != nil {
					t.Fatalf("CTK document rejected:\n%v\n%s", err, doc)
				}
			})
		}
	}
	if n < 10 {
		t.Fatalf("found only %d CTK documents", n)
	}
}
