package dsl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dlclark/regexp2"
	"github.com/santhosh-tekuri/jsonschema/v6"
	yaml "go.yaml.in/yaml/v3"
)

// stricter lists the corpus documents that the official schema accepts but
// KNHK rejects, with the semantic rule (documented in docs/dsl.md) each one
// breaks.
var stricter = map[string]string{
	"undeclared-function.yaml":            "undeclared function",
	"undeclared-error.yaml":               "undeclared error",
	"undeclared-retry.yaml":               "undeclared retry policy",
	"undeclared-timeout.yaml":             "undeclared timeout",
	"undeclared-auth.yaml":                "undeclared authentication policy",
	"undeclared-secret.yaml":              "undeclared secret",
	"then-unknown.yaml":                   "then names no sibling task",
	"then-cousin.yaml":                    "then names a task of another list",
	"switch-then-unknown.yaml":            "switch case then names no sibling task",
	"duplicate-task-name.yaml":            "duplicate task name",
	"jq-syntax.yaml":                      "jq syntax error",
	"jq-undefined-variable.yaml":          "jq variable not in scope",
	"run-container.yaml":                  "unsupported run container",
	"run-shell.yaml":                      "unsupported run shell",
	"auth-oauth2-authorization-code.yaml": "unsupported oauth2 grant authorization_code",
	"run-script-python.yaml":              "unsupported python script",
	"dsl-version-2.yaml":                  "document.dsl must be 1.0.x",
	"duration-months.yaml":                "calendar durations",
	"unknown-top-level.yaml":              "unknown top-level property",
	"negative-duration.yaml":              "negative inline duration",
	"schedule.yaml":                       "unsupported schedule",
	"task-nesting-too-deep.yaml":          "task nesting limit",
	"jitter-inverted.yaml":                "jitter.from above jitter.to",
	"evaluate-loose.yaml":                 "unsupported loose evaluation mode",
	"auth-digest.yaml":                    "unsupported digest authentication",
	"emit-without-attributes.yaml":        "emitted event without source and type",
	"empty-workflow.yaml":                 "workflow without tasks",
	"listen-foreach.yaml":                 "unsupported listen foreach",
	"dsl-prerelease.yaml":                 "document.dsl must be a 1.0.x release",
	"catalog-function.yaml":               "unsupported catalog function",
}

// repoRoot walks up from the working directory to the folder holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the package directory")
		}
		dir = parent
	}
}

// specDir is the folder holding the official schema: $KNHK_SW_SPEC, or
// ../shared/sw-spec beside the repository.
func specDir(t testing.TB) string {
	if d := os.Getenv("KNHK_SW_SPEC"); d != "" {
		return d
	}
	return filepath.Join(repoRoot(t), "..", "shared", "sw-spec")
}

// ecmaRegexp adapts regexp2 (ECMAScript mode, with lookaheads) to the schema
// compiler.
type ecmaRegexp struct{ re *regexp2.Regexp }

func (r ecmaRegexp) MatchString(s string) bool {
	ok, err := r.re.MatchString(s)
	return err == nil && ok
}

func (r ecmaRegexp) String() string { return r.re.String() }

// yamlToJSONValue converts YAML (or JSON) to the value the schema library
// validates, independently of the parser under test.
func yamlToJSONValue(data []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// officialSchema compiles the official workflow schema, or skips the test.
func officialSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	path := filepath.Join(specDir(t), "workflow.schema.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("official DSL schema not available (%v); set KNHK_SW_SPEC to the folder holding workflow.schema.yaml", err)
	}
	doc, err := yamlToJSONValue(data)
	if err != nil {
		t.Fatalf("reading schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.UseRegexpEngine(func(s string) (jsonschema.Regexp, error) {
		re, err := regexp2.Compile(s, regexp2.ECMAScript)
		if err != nil {
			return nil, err
		}
		return ecmaRegexp{re}, nil
	})
	const url = "https://serverlessworkflow.io/schemas/1.0.3/workflow.yaml"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(url)
	if err != nil {
		t.Fatalf("compiling schema: %v", err)
	}
	return s
}

// expectPattern is the first-line annotation of an invalid corpus document:
// "# expect: [line:col ]message fragment".
var expectPattern = regexp.MustCompile(`^# expect: (?:(\d+):(\d+) )?(.+)$`)

func TestCorpusAgainstOfficialSchema(t *testing.T) {
	schema := officialSchema(t)
	for _, dir := range []string{"valid", "invalid"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		jsonFiles, _ := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		files = append(files, jsonFiles...)
		if len(files) < 15 {
			t.Fatalf("testdata/%s holds only %d documents", dir, len(files))
		}
		for _, f := range files {
			name := filepath.Base(f)
			t.Run(dir+"/"+name, func(t *testing.T) {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				schemaErr := fmt.Errorf("not parsable")
				if v, err := yamlToJSONValue(data); err == nil {
					schemaErr = schema.Validate(v)
				}
				_, ourErr := Load(data)
				rule, isStricter := stricter[name]
				switch {
				case dir == "valid":
					if schemaErr != nil {
						t.Fatalf("corpus error: the official schema rejects a valid document: %v", schemaErr)
					}
					if ourErr != nil {
						t.Fatalf("rejected a valid document:\n%v", ourErr)
					}
				case isStricter:
					if schemaErr != nil {
						t.Fatalf("listed as stricter (%s) but the schema rejects it too: %v", rule, schemaErr)
					}
					if ourErr == nil {
						t.Fatalf("accepted a document breaking the rule %q", rule)
					}
				default:
					if schemaErr == nil {
						t.Fatalf("the schema accepts this invalid document: list it in stricter with its rule, or fix it")
					}
					if ourErr == nil {
						t.Fatalf("accepted a document the schema rejects: %v", schemaErr)
					}
				}
				if dir == "invalid" {
					checkExpectation(t, data, ourErr)
				}
			})
		}
	}
	for name := range stricter {
		if _, err := os.Stat(filepath.Join("testdata", "invalid", name)); err != nil {
			t.Errorf("stricter lists %s, which is not in testdata/invalid", name)
		}
	}
}

// checkExpectation asserts that one reported issue matches the document's
// "# expect:" annotation.
func checkExpectation(t *testing.T, data []byte, err error) {
	t.Helper()
	first, _, _ := strings.Cut(string(data), "\n")
	m := expectPattern.FindStringSubmatch(strings.TrimSpace(first))
	if m == nil {
		t.Fatalf("invalid corpus document lacks a first line '# expect: [line:col ]message'")
	}
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error is %T, want *Error", err)
	}
	for _, is := range e.Issues {
		if !strings.Contains(is.Message, m[3]) {
			continue
		}
		if m[1] != "" {
			l, _ := strconv.Atoi(m[1])
			c, _ := strconv.Atoi(m[2])
			if is.Line != l || is.Column != c {
				continue
			}
		}
		return
	}
	t.Fatalf("no issue matches %q:\n%v", strings.TrimPrefix(first, "# expect: "), err)
}
