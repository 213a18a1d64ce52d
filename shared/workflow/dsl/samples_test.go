package dsl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleNames are the product's sample workflows under events/workflows.
var sampleNames = []string{
	"payment-processing", "cross-border-payment", "order-routing",
	"insurance-claim", "grid-operations", "supply-chain-replenishment",
}

func samplePath(t testing.TB, name string) string {
	return filepath.Join(repoRoot(t), "events", "workflows", name+".yaml")
}

func TestSamplesValidate(t *testing.T) {
	var schemaCheck func([]byte) error
	if _, err := os.Stat(filepath.Join(specDir(t), "workflow.schema.yaml")); err == nil {
		s := officialSchema(t)
		schemaCheck = func(data []byte) error {
			v, err := yamlToJSONValue(data)
			if err != nil {
				return err
			}
			return s.Validate(v)
		}
	}
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "events", "workflows", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < len(sampleNames) {
		t.Fatalf("found %d samples, want at least %d", len(files), len(sampleNames))
	}
	for _, name := range sampleNames {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(samplePath(t, name))
			if err != nil {
				t.Fatal(err)
			}
			w, err := Load(data)
			if err != nil {
				t.Fatalf("sample does not validate:\n%v", err)
			}
			if w.Document.Name != name || !strings.HasPrefix(w.Document.DSL, "1.0.") {
				t.Fatalf("document = %+v", w.Document)
			}
			if schemaCheck != nil {
				if err := schemaCheck(data); err != nil {
					t.Fatalf("the official schema rejects the sample: %v", err)
				}
			}
			in, err := os.ReadFile(filepath.Join(repoRoot(t), "events", "inputs", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var v map[string]any
			if err := json.Unmarshal(in, &v); err != nil {
				t.Fatalf("sample input: %v", err)
			}
			// Every HTTP endpoint uses a *.knhk.local host the tests can map.
			for _, u := range endpoints(w.Do) {
				if !strings.HasPrefix(u, "http://") || !strings.Contains(strings.SplitN(strings.TrimPrefix(u, "http://"), "/", 2)[0], ".knhk.local") {
					t.Errorf("endpoint %q is not on a *.knhk.local host", u)
				}
			}
		})
	}
}

// endpoints lists the HTTP endpoints called anywhere in l.
func endpoints(l TaskList) []string {
	var out []string
	for _, nt := range l {
		t := nt.Task
		switch {
		case t.Call != nil && t.Call.HTTP != nil:
			out = append(out, t.Call.HTTP.Endpoint.URI)
		case t.Do != nil:
			out = append(out, endpoints(t.Do.Tasks)...)
		case t.Fork != nil:
			out = append(out, endpoints(t.Fork.Branches)...)
		case t.For != nil:
			out = append(out, endpoints(t.For.Do)...)
		case t.Try != nil:
			out = append(out, endpoints(t.Try.Try)...)
			out = append(out, endpoints(t.Try.Catch.Do)...)
		}
	}
	return out
}

func BenchmarkParseValidatePayment(b *testing.B) {
	data, err := os.ReadFile(samplePath(b, "payment-processing"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Load(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParsePayment measures parsing alone (YAML to typed model).
func BenchmarkParsePayment(b *testing.B) {
	data, err := os.ReadFile(samplePath(b, "payment-processing"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseValidatePaymentCold measures parsing and validating with
// every expression compiled afresh (as for a descriptor seen for the first
// time).
func BenchmarkParseValidatePaymentCold(b *testing.B) {
	data, err := os.ReadFile(samplePath(b, "payment-processing"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		checked.mu.Lock()
		checked.m = nil
		checked.mu.Unlock()
		if _, err := Load(data); err != nil {
			b.Fatal(err)
		}
	}
}
