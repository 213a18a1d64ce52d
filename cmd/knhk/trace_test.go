package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTraceCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	lines := []string{
		`{"traceId":"aa","spanId":"1","name":"process work","kind":"consumer","start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:00:00.100Z","attributes":{"knhk.case_id":"c-1"}}`,
		`{"traceId":"aa","spanId":"2","parentSpanId":"1","name":"task /do/0/charge","kind":"internal","start":"2026-01-01T00:00:00.050Z","end":"2026-01-01T00:00:00.100Z","status":"ERROR","statusMessage":"502 from the acquirer","attributes":{"knhk.task":"/do/0/charge"}}`,
		`{"traceId":"bb","spanId":"3","name":"process work","kind":"consumer","start":"2026-01-01T00:00:01Z","end":"2026-01-01T00:00:01.010Z","links":[{"traceId":"aa","spanId":"2"}]}`,
		`not a span`,
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runRoot(t, "trace", "c-1", "--spans", path, "--width", "10")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	for _, want := range []string{"trace aa · 2 spans · 100ms", "|██████████| process work", "|     █████|   task /do/0/charge",
		"ERROR task=/do/0/charge error=502 from the acquirer", "linked trace bb · 1 spans", "process work ↗1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, _, code := runRoot(t, "trace", "nobody", "--spans", path); code != 1 {
		t.Errorf("unknown case: exit %d, want 1", code)
	}
}
