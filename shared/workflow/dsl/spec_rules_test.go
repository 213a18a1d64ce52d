package dsl

import (
	"strings"
	"testing"
)

// issuesOf parses src and returns its validation issues as "pointer message"
// lines.
func issuesOf(t *testing.T, src string) []string {
	t.Helper()
	w, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	var out []string
	for _, is := range Validate(w) {
		out = append(out, is.Pointer+" "+is.Message)
	}
	return out
}

func doc(dsl, body string) string {
	return "document:\n  dsl: '" + dsl + "'\n  namespace: t\n  name: f\n  version: '1.0.0'\n" + body
}

// TestDocumentDSLMustBeAReleased1_0Version pins document.dsl to the releases
// the runtime implements: 1.0.x, not its alphas or release candidates.
func TestDocumentDSLMustBeAReleased1_0Version(t *testing.T) {
	set := "do:\n  - a:\n      set:\n        x: 1\n"
	for _, tc := range []struct {
		dsl string
		ok  bool
	}{
		{"1.0.0", true}, {"1.0.3", true}, {"1.0.12", true},
		{"1.0.0-alpha5", false}, {"1.0.0-rc1", false}, {"1.0.1+build", false},
		{"1.1.0", false}, {"2.0.0", false},
	} {
		got := issuesOf(t, doc(tc.dsl, set))
		if tc.ok != (len(got) == 0) {
			t.Errorf("dsl %q: issues %v, want ok %v", tc.dsl, got, tc.ok)
		}
		if !tc.ok && (len(got) != 1 || !strings.HasPrefix(got[0], "/document/dsl unsupported: DSL version")) {
			t.Errorf("dsl %q: issues %v, want one unsupported DSL version", tc.dsl, got)
		}
	}
}

// TestCatalogFunctionReferenceIsUnsupported pins the DSL's catalog function
// reference, {name}:{version}@{catalog}: it is reported as an unsupported
// catalog, not as an undeclared function.
func TestCatalogFunctionReferenceIsUnsupported(t *testing.T) {
	got := issuesOf(t, doc("1.0.0", "do:\n  - a:\n      call: log:1.0.0@default\n"))
	want := `/do/0/a/call unsupported: function "log:1.0.0" from catalog "default" (catalogs are not supported)`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("issues %v, want [%s]", got, want)
	}
	got = issuesOf(t, doc("1.0.0", "do:\n  - a:\n      call: undeclared\n"))
	if len(got) != 1 || !strings.Contains(got[0], `function "undeclared" is not declared under use.functions`) {
		t.Fatalf("an undeclared function: issues %v", got)
	}
}

// TestListenForeachIsUnsupported pins that a listen task's foreach, which
// the runtime does not run, is refused when the workflow is validated
// rather than when a case reaches it.
func TestListenForeachIsUnsupported(t *testing.T) {
	got := issuesOf(t, doc("1.0.0", `do:
  - l:
      listen:
        to:
          one:
            with:
              type: x
      foreach:
        item: ev
        do:
          - s:
              set:
                v: ${ $ev }
`))
	if len(got) != 1 || !strings.HasPrefix(got[0], "/do/0/l/foreach unsupported: listen.foreach") {
		t.Fatalf("issues %v", got)
	}
}

// TestRunWorkflowWithoutAwaitIsUnsupported pins run.await: false for a
// sub-workflow, which the runtime would otherwise run awaited in silence.
func TestRunWorkflowWithoutAwaitIsUnsupported(t *testing.T) {
	run := func(await string) []string {
		return issuesOf(t, doc("1.0.0", "do:\n  - child:\n      run:\n"+await+"        workflow:\n          namespace: t\n          name: child\n          version: '1.0.0'\n"))
	}
	if got := run("        await: false\n"); len(got) != 1 || !strings.HasPrefix(got[0], "/do/0/child/run/await unsupported: await false for a workflow") {
		t.Fatalf("issues %v", got)
	}
	if got := run(""); len(got) != 0 {
		t.Fatalf("an awaited sub-workflow: issues %v", got)
	}
}
