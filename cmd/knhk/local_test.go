package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/knhk/knhk/shared/localaws"
)

func runLocal(t *testing.T, args ...string) (string, error) {
	t.Helper()
	// Flags keep values across executions of the same command tree.
	if cmd, _, err := root.Find(args); err == nil {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				_ = sv.Replace(nil)
			} else {
				_ = f.Value.Set(f.DefValue)
			}
		})
	}
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	t.Cleanup(func() { root.SetArgs(nil); root.SetOut(nil); root.SetErr(nil) })
	err := root.Execute()
	return out.String(), err
}

func TestLocalDeployRefusesWithoutEndpoint(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "")
	_, err := runLocal(t, "local", "deploy", "--template", "x.json", "--out", filepath.Join(t.TempDir(), "o.json"))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "no endpoint") {
		t.Fatalf("err = %v, want exit 2 naming the missing endpoint", err)
	}
}

func TestParseParams(t *testing.T) {
	got, err := parseParams([]string{"A=1", "B=x=y", "C="})
	if err != nil || got["A"] != "1" || got["B"] != "x=y" || got["C"] != "" || len(got) != 3 {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"A", "=1"} {
		if _, err := parseParams([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestLocalDeploy(t *testing.T) {
	ep := localaws.StartT(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	dir := t.TempDir()
	outFile := filepath.Join(dir, "outputs.json")
	args := []string{"local", "deploy", "--endpoint", ep.URL, "--out", outFile,
		"--template", filepath.Join("..", "..", "localstack", "provision", "testdata", "features.template.json"), "--param", "Suffix=cli"}
	out, err := runLocal(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"created  AWS::SQS::Queue", "skipped  AWS::Lambda::Function", "stack-state.json"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	var outs map[string]string
	if err := json.Unmarshal(b, &outs); err != nil || outs["AuditName"] != "audit-cli" {
		t.Fatalf("outputs %s: %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "stack-state.json")); err != nil {
		t.Errorf("state file: %v", err)
	}
	out, err = runLocal(t, args...)
	if err != nil || !strings.Contains(out, "no changes") {
		t.Fatalf("second deploy: %v\n%s", err, out)
	}
}
