package engine

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/workflow/dsl"
)

func repoRoot(t *testing.T) string {
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
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func TestSamples(t *testing.T) {
	root := repoRoot(t)
	files, _ := filepath.Glob(filepath.Join(root, "events", "workflows", "*.yaml"))
	if len(files) == 0 {
		t.Skip("no sample workflows under events/workflows")
	}
	srv := httptest.NewServer(standin.Handler())
	defer srv.Close()
	client := standin.Client(srv.Listener.Addr().String())
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wf, err := dsl.Load(data)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			var input any
			if raw, err := os.ReadFile(filepath.Join(root, "events", "inputs", name+".json")); err == nil {
				if err := json.Unmarshal(raw, &input); err != nil {
					t.Fatalf("input: %v", err)
				}
			}
			secrets := map[string]any{}
			for _, s := range wf.Use.Secrets {
				secrets[s] = map[string]any{"token": "t-" + s, "username": "u", "password": "p"}
			}
			res, err := Run(context.Background(), wf, input, RunOptions{
				CaseID: name, HTTPClient: client, Events: sampleEvents(wf, input),
				Options: Options{Secrets: secrets},
			})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			t.Logf("%s: %s output %s error %+v (%d events)", name, res.Status, js(res.Output), res.Error, len(res.History))
			if res.Status != StatusCompleted {
				t.Fatalf("status %s, error %+v", res.Status, res.Error)
			}
			if got := js(res.Output); got != standin.Outputs[name] {
				t.Fatalf("output\n got %s\nwant %s", got, standin.Outputs[name])
			}
		})
	}
}

// sampleEvents builds, for every listen task of wf, an event each filter
// accepts: an approval, correlated by subject with the input's claimId.
func sampleEvents(wf *dsl.Workflow, input any) []map[string]any {
	in, _ := input.(map[string]any)
	var out []map[string]any
	var walk func(tl dsl.TaskList)
	walk = func(tl dsl.TaskList) {
		for _, nt := range tl {
			t := nt.Task
			switch {
			case t.Listen != nil:
				var filters []dsl.EventFilter
				if t.Listen.To.One != nil {
					filters = append(filters, *t.Listen.To.One)
				}
				filters = append(filters, t.Listen.To.All...)
				filters = append(filters, t.Listen.To.Any...)
				for _, f := range filters {
					ev := map[string]any{"specversion": "1.0", "id": nt.Name, "source": "sample", "subject": in["claimId"],
						"data": map[string]any{"approved": true, "decision": "approved", "approvedAmount": 1000, "adjuster": "adjuster-1"}}
					for k, v := range f.With {
						ev[k] = v
					}
					out = append(out, ev)
				}
			case t.Do != nil:
				walk(t.Do.Tasks)
			case t.Try != nil:
				walk(t.Try.Try)
			case t.Fork != nil:
				walk(t.Fork.Branches)
			case t.For != nil:
				walk(t.For.Do)
			}
		}
	}
	walk(wf.Do)
	return out
}
