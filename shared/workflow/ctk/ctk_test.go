package ctk

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cucumber/godog"
	yaml "go.yaml.in/yaml/v3"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/engine"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// featureDir finds the conformance features: $KNHK_CTK_DIR, or
// ../shared/sw-spec/ctk beside the module root.
func featureDir(t *testing.T) string {
	if d := os.Getenv("KNHK_CTK_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "sw-spec", "ctk")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

func TestConformance(t *testing.T) {
	dir := featureDir(t)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("conformance features not found at %s (set KNHK_CTK_DIR): %v", dir, err)
	}
	client := standIns(t)
	var total, passed atomic.Int64
	suite := godog.TestSuite{
		Name: "ctk",
		ScenarioInitializer: func(sc *godog.ScenarioContext) {
			w := &world{client: client}
			sc.After(func(ctx context.Context, _ *godog.Scenario, err error) (context.Context, error) {
				total.Add(1)
				if err == nil {
					passed.Add(1)
				}
				return ctx, nil
			})
			w.register(sc)
		},
		Options: &godog.Options{
			Format:   "progress",
			Paths:    []string{dir},
			TestingT: t,
			Strict:   true,
			Output:   nil,
		},
	}
	code := suite.Run()
	t.Logf("CTK: %d/%d scenarios passed", passed.Load(), total.Load())
	if code != 0 || passed.Load() != total.Load() || total.Load() == 0 {
		t.Fatalf("conformance failed: %d/%d scenarios passed", passed.Load(), total.Load())
	}
}

// world is one scenario's state.
type world struct {
	client *http.Client
	wf     *dsl.Workflow
	input  any
	res    *engine.RunResult
}

func (w *world) register(sc *godog.ScenarioContext) {
	sc.Step(`^a workflow with definition:$`, w.definition)
	sc.Step(`^given the workflow input is:$`, w.givenInput)
	sc.Step(`^the workflow input is:$`, w.givenInput)
	sc.Step(`^the workflow is executed$`, w.execute)
	sc.Step(`^the workflow should complete$`, w.shouldComplete)
	sc.Step(`^the workflow should complete with output:$`, w.shouldCompleteWith)
	sc.Step(`^the workflow should fault$`, w.shouldFault)
	sc.Step(`^the workflow should fault with error:$`, w.shouldFaultWith)
	sc.Step(`^the workflow should cancel$`, w.shouldCancel)
	sc.Step(`^the workflow output should have properties (.+)$`, w.hasProperties)
	sc.Step(`^the workflow output should have a '([^']+)' property with value:$`, w.propertyValue)
	sc.Step(`^the workflow output should have a '([^']+)' property containing (\d+) items$`, w.propertyItems)
	sc.Step(`^(\S+) should run first$`, w.runFirst)
	sc.Step(`^(\S+) should run last$`, w.runLast)
	sc.Step(`^(\S+) should run after (\S+)$`, w.runAfter)
}

func (w *world) definition(doc *godog.DocString) error {
	wf, err := dsl.Load([]byte(doc.Content))
	if err != nil {
		return fmt.Errorf("load workflow: %w", err)
	}
	w.wf = wf
	return nil
}

func parseYAML(s string) (any, error) {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return nil, err
	}
	return expr.Normalize(v), nil
}

func (w *world) givenInput(doc *godog.DocString) error {
	v, err := parseYAML(doc.Content)
	w.input = v
	return err
}

func (w *world) execute(ctx context.Context) error {
	input := w.input
	if input == nil {
		input = map[string]any{}
	}
	res, err := engine.Run(ctx, w.wf, input, engine.RunOptions{CaseID: "ctk", HTTPClient: w.client})
	if err != nil {
		return err
	}
	w.res = res
	return nil
}

func (w *world) shouldComplete() error {
	if w.res.Status != engine.StatusCompleted {
		return fmt.Errorf("status %q, error %+v", w.res.Status, w.res.Error)
	}
	return nil
}

func (w *world) shouldCompleteWith(doc *godog.DocString) error {
	if err := w.shouldComplete(); err != nil {
		return err
	}
	want, err := parseYAML(doc.Content)
	if err != nil {
		return err
	}
	if !sameJSON(w.res.Output, want) {
		return fmt.Errorf("output %s, want %s", js(w.res.Output), js(want))
	}
	return nil
}

func (w *world) shouldFault() error {
	if w.res.Status != engine.StatusFaulted {
		return fmt.Errorf("status %q, want faulted (output %s)", w.res.Status, js(w.res.Output))
	}
	return nil
}

func (w *world) shouldCancel() error {
	if w.res.Status != engine.StatusCancelled {
		return fmt.Errorf("status %q, want cancelled", w.res.Status)
	}
	return nil
}

func (w *world) shouldFaultWith(doc *godog.DocString) error {
	if err := w.shouldFault(); err != nil {
		return err
	}
	want, err := parseYAML(doc.Content)
	if err != nil {
		return err
	}
	got := map[string]any{}
	raw, _ := json.Marshal(w.res.Error)
	_ = json.Unmarshal(raw, &got)
	for k, v := range want.(map[string]any) {
		if !sameJSON(got[k], v) {
			return fmt.Errorf("error.%s = %s, want %s (error %s)", k, js(got[k]), js(v), raw)
		}
	}
	return nil
}

var quoted = regexp.MustCompile(`'([^']+)'`)

func (w *world) hasProperties(list string) error {
	if err := w.shouldComplete(); err != nil {
		return err
	}
	for _, m := range quoted.FindAllStringSubmatch(list, -1) {
		if _, ok := lookup(w.res.Output, m[1]); !ok {
			return fmt.Errorf("output has no %q: %s", m[1], js(w.res.Output))
		}
	}
	return nil
}

func (w *world) propertyValue(path string, doc *godog.DocString) error {
	want, err := parseYAML(doc.Content)
	if err != nil {
		return err
	}
	got, ok := lookup(w.res.Output, path)
	if !ok || !sameJSON(got, want) {
		return fmt.Errorf("%s = %s, want %s", path, js(got), js(want))
	}
	return nil
}

func (w *world) propertyItems(path string, n int) error {
	got, ok := lookup(w.res.Output, path)
	l, isList := got.([]any)
	if !ok || !isList || len(l) != n {
		return fmt.Errorf("%s = %s, want %d items", path, js(got), n)
	}
	return nil
}

// order lists the top-level tasks in the order they finished.
func (w *world) order() []string {
	var names []string
	for _, e := range w.res.History {
		switch e.Type {
		case history.TaskCompleted, history.TaskSkipped, history.TaskFaulted, history.BranchJoined, history.EventEmitted:
		default:
			continue
		}
		parts := strings.Split(e.Task, "/")
		if len(parts) == 4 && parts[1] == "do" {
			names = append(names, parts[3])
		}
	}
	return names
}

func (w *world) runFirst(name string) error {
	o := w.order()
	if len(o) == 0 || o[0] != name {
		return fmt.Errorf("run order %v: %s did not run first", o, name)
	}
	return nil
}

func (w *world) runLast(name string) error {
	o := w.order()
	if len(o) == 0 || o[len(o)-1] != name {
		return fmt.Errorf("run order %v: %s did not run last", o, name)
	}
	return nil
}

func (w *world) runAfter(name, before string) error {
	o := w.order()
	for i := 1; i < len(o); i++ {
		if o[i] == name && o[i-1] == before {
			return nil
		}
	}
	return fmt.Errorf("run order %v: %s did not run right after %s", o, name, before)
}

func lookup(v any, path string) (any, bool) {
	cur := v
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(expr.Normalize(a))
	jb, err2 := json.Marshal(expr.Normalize(b))
	if err1 != nil || err2 != nil {
		return false
	}
	var x, y any
	_ = json.Unmarshal(ja, &x)
	_ = json.Unmarshal(jb, &y)
	cx, _ := json.Marshal(x)
	cy, _ := json.Marshal(y)
	return string(cx) == string(cy)
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// standIns serves local stand-ins for the services the features call and
// returns a client whose transport sends every request to them, whatever
// host the request names (the handler routes by Host).
func standIns(t *testing.T) *http.Client {
	srv := httptest.NewServer(http.HandlerFunc(serveStandIn))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	dialer := &net.Dialer{}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: rewrite{tr}}
}

// rewrite downgrades https to http so the plain local stand-in can answer;
// the Host header keeps the name the workflow used.
type rewrite struct{ next http.RoundTripper }

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	c := req.Clone(req.Context())
	c.URL.Scheme = "http"
	return r.next.RoundTrip(c)
}

var pets = map[string]map[string]any{
	"1": {"id": 1, "name": "Rex", "status": "available"},
	"2": {"id": 2, "name": "Milou", "status": "available"},
	"3": {"id": 3, "name": "Felix", "status": "sold"},
}

func serveStandIn(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	switch host {
	case "petstore.swagger.io":
		servePetStore(w, r)
	case "httpbin.org":
		serveHTTPBin(w, r)
	default:
		http.Error(w, "unknown host", http.StatusBadGateway)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func servePetStore(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/v2")
	switch {
	case p == "/swagger.json":
		writeJSON(w, petStoreDoc)
	case p == "/pet/findByStatus":
		status := r.URL.Query().Get("status")
		out := []any{}
		for _, id := range []string{"1", "2", "3"} {
			if pets[id]["status"] == status {
				out = append(out, pets[id])
			}
		}
		writeJSON(w, out)
	case strings.HasPrefix(p, "/pet/") && strings.Count(p, "/") == 2:
		pet, ok := pets[strings.TrimPrefix(p, "/pet/")]
		if !ok {
			http.Error(w, `{"code":1,"type":"error","message":"Pet not found"}`, http.StatusNotFound)
			return
		}
		writeJSON(w, pet)
	default:
		http.NotFound(w, r)
	}
}

func serveHTTPBin(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) == 3 && parts[0] == "basic-auth" {
		user, pass, ok := r.BasicAuth()
		if !ok || user != parts[1] || pass != parts[2] {
			w.Header().Set("WWW-Authenticate", `Basic realm="stand-in"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		writeJSON(w, map[string]any{"authenticated": true, "user": user})
		return
	}
	http.NotFound(w, r)
}

// petStoreDoc is a Swagger 2.0 description of the stand-in pet store.
var petStoreDoc = map[string]any{
	"swagger":  "2.0",
	"host":     "petstore.swagger.io",
	"basePath": "/v2",
	"schemes":  []any{"https", "http"},
	"paths": map[string]any{
		"/pet/findByStatus": map[string]any{
			"get": map[string]any{
				"operationId": "findPetsByStatus",
				"parameters": []any{
					map[string]any{"name": "status", "in": "query", "required": true, "type": "array", "items": map[string]any{"type": "string"}},
				},
			},
		},
		"/pet/{petId}": map[string]any{
			"get": map[string]any{
				"operationId": "getPetById",
				"parameters": []any{
					map[string]any{"name": "petId", "in": "path", "required": true, "type": "integer"},
				},
			},
		},
	},
}
