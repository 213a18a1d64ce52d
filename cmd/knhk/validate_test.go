package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runRoot runs the CLI in-process and returns stdout, stderr and the exit
// status main would use.
func runRoot(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	root.SetContext(context.Background()) // not the context of a previous run
	t.Cleanup(func() { root.SetArgs(nil); root.SetOut(nil); root.SetErr(nil) })
	code := 0
	if err := root.Execute(); err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return out.String(), errOut.String(), code
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("document:\n  dsl: '1.0.0'\n  namespace: t\n  name: good\n  version: '1.0.0'\ndo:\n  - a:\n      set:\n        x: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("document:\n  dsl: '1.0.0'\n  namespace: t\n  name: bad\n  version: '1.0.0'\ndo:\n  - a:\n      wait: soon\n  - b:\n      call: nowhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := runRoot(t, "validate", good)
	if code != 0 || errOut != "" || !strings.Contains(out, good+": ok (t/good 1.0.0, sha256 ") {
		t.Fatalf("valid file: code=%d stdout=%q stderr=%q", code, out, errOut)
	}

	_, errOut, code = runRoot(t, "validate", good, bad)
	if code != 2 {
		t.Fatalf("exit = %d, want 2", code)
	}
	want := bad + ":8:13: /do/0/a/wait: invalid ISO 8601 duration \"soon\"\n"
	if errOut != want {
		t.Fatalf("stderr =\n%q\nwant\n%q", errOut, want)
	}

	_, errOut, code = runRoot(t, "validate", filepath.Join(dir, "missing.yaml"))
	if code != 2 || !strings.Contains(errOut, "missing.yaml:0:0: /: read workflow:") {
		t.Fatalf("missing file: code=%d stderr=%q", code, errOut)
	}

	if _, _, code = runRoot(t, "validate"); code != 1 {
		t.Fatalf("no args: exit = %d, want 1 (usage error)", code)
	}
}

func TestValidateCommandSamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "events", "workflows", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	_, errOut, code := runRoot(t, append([]string{"validate"}, files...)...)
	if code != 0 {
		t.Fatalf("samples invalid (exit %d):\n%s", code, errOut)
	}
}
