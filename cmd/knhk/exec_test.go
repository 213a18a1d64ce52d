package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knhk/knhk/shared/history"
)

func execute(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetIn(strings.NewReader(stdin))
	err := root.Execute()
	return out.String(), err
}

func TestExec(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/pets/7" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		fmt.Fprint(w, `{"id":7,"name":"Rex"}`)
	}))
	defer srv.Close()
	dir := t.TempDir()
	wfPath := filepath.Join(dir, "wf.yaml")
	src := `document:
  dsl: '1.0.3'
  namespace: test
  name: pets
  version: '1.0.0'
do:
  - getPet:
      call: http
      with:
        method: get
        endpoint: ` + srv.URL + `/pets/{petId}
  - greet:
      set:
        greeting: ${ "Hello " + .name }
`
	if err := os.WriteFile(wfPath, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	hist, receipts := filepath.Join(dir, "history.jsonl"), filepath.Join(dir, "receipts.jsonl")

	out, err := execute(t, `{"petId": 7}`, "exec", wfPath, "--input", "-", "--history", hist, "--receipts", receipts)
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || got["greeting"] != "Hello Rex" {
		t.Fatalf("output %q (%v)", out, err)
	}
	f, err := os.Open(hist)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var types []history.Type
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e history.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		types = append(types, e.Type)
	}
	want := []history.Type{history.CaseStarted, history.EffectRequested, history.TaskCompleted, history.TaskCompleted, history.CaseCompleted}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("history %v, want %v", types, want)
	}
	// The receipts are the same events, chained: the next step a user takes
	// (verify --file) accepts them, and a changed line is found.
	if _, _, code := run(t, "verify", "--file", receipts); code != 0 {
		t.Fatalf("verify --file of exec's receipts exited %d", code)
	}
	lines, err := os.ReadFile(receipts)
	if err != nil || bytes.Count(lines, []byte("\n")) != len(want) {
		t.Fatalf("receipts file: %d lines (%v), want %d", bytes.Count(lines, []byte("\n")), err, len(want))
	}
	tampered := filepath.Join(dir, "tampered.jsonl")
	_ = os.WriteFile(tampered, bytes.Replace(lines, []byte(`"task.completed"`), []byte(`"task.faulted"`), 1), 0o600)
	if _, _, code := run(t, "verify", "--file", tampered); code != exitTampered {
		t.Fatalf("verify --file of a changed receipt exited %d, want %d", code, exitTampered)
	}

	inPath := filepath.Join(dir, "in.yaml")
	_ = os.WriteFile(inPath, []byte("petId: 8\n"), 0o600)
	out, err = execute(t, "", "exec", wfPath, "--input", inPath, "--receipts", "")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("a fault must exit 1, got %v", err)
	}
	var fault map[string]any
	if err := json.Unmarshal([]byte(out), &fault); err != nil || fault["status"] != float64(404) || fault["instance"] != "/do/0/getPet" {
		t.Fatalf("error output %q", out)
	}

	_, err = execute(t, "", "exec", filepath.Join(dir, "missing.yaml"))
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("a missing file must exit 2, got %v", err)
	}
}

// TestExecEventIDsAreUniquePerRun: the events a workflow emits under exec
// carry ids that differ between runs (each run is its own case), and a run
// given an idempotency key emits the same ids again.
func TestExecEventIDsAreUniquePerRun(t *testing.T) {
	dir := t.TempDir()
	wfPath := filepath.Join(dir, "emit.yaml")
	src := `document:
  dsl: '1.0.3'
  namespace: test
  name: notify
  version: '1.0.0'
do:
  - announce:
      emit:
        event:
          with:
            source: https://knhk.example/test
            type: com.knhk.test.announced.v1
            data: ${ . }
`
	if err := os.WriteFile(wfPath, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	id := func(args ...string) string {
		t.Helper()
		out, err := execute(t, `{"n":1}`, append([]string{"exec", wfPath, "--input", "-", "--receipts", "", "--history", ""}, args...)...)
		if err != nil {
			t.Fatalf("exec: %v", err)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(out), &ev); err != nil || ev["id"] == nil || ev["id"] == "" {
			t.Fatalf("output %q (%v), want the emitted event", out, err)
		}
		return fmt.Sprint(ev["id"])
	}
	a, b := id("--idempotency-key", ""), id("--idempotency-key", "")
	if a == b {
		t.Fatalf("two runs emitted the same event id %s", a)
	}
	k1, k2 := id("--idempotency-key", "order-7"), id("--idempotency-key", "order-7")
	if k1 != k2 || k1 == a || k1 == b {
		t.Fatalf("ids with one key %s and %s, without %s and %s: want the keyed runs equal and apart", k1, k2, a, b)
	}
	id("--idempotency-key", "") // leave the flag unset for later tests
}
