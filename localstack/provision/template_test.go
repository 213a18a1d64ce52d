package provision

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/quick"
)

func TestOrder(t *testing.T) {
	tmpl, err := ParseTemplate([]byte(`{"Resources":{
		"Alias":{"Type":"AWS::KMS::Alias","Properties":{"TargetKeyId":{"Fn::GetAtt":["Key","Arn"]}}},
		"Key":{"Type":"AWS::KMS::Key"},
		"Queue":{"Type":"AWS::SQS::Queue","Properties":{"KmsMasterKeyId":{"Fn::Sub":"${Key.Arn}"},"RedrivePolicy":{"deadLetterTargetArn":{"Fn::GetAtt":["Dlq","Arn"]}}}},
		"Dlq":{"Type":"AWS::SQS::Queue","DependsOn":"Key"},
		"Policy":{"Type":"AWS::SQS::QueuePolicy","Properties":{"Queues":[{"Ref":"Queue"}],"X":{"Ref":"AWS::Region"}}}
	}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Order()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Key", "Alias", "Dlq", "Queue", "Policy"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestOrderErrors(t *testing.T) {
	tests := []struct{ name, tmpl, want string }{
		{"cycle", `{"Resources":{"A":{"Type":"T","Properties":{"x":{"Ref":"B"}}},"B":{"Type":"T","Properties":{"x":{"Fn::GetAtt":["A","Arn"]}}}}}`, "circular"},
		{"unknown DependsOn", `{"Resources":{"A":{"Type":"T","DependsOn":["Nope"]}}}`, "unknown resource Nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := ParseTemplate([]byte(tc.tmpl))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tmpl.Order(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestParseTemplateErrors(t *testing.T) {
	for name, s := range map[string]string{
		"not json":     `{`,
		"no resources": `{"Resources":{}}`,
		"no type":      `{"Resources":{"A":{"Properties":{}}}}`,
	} {
		if _, err := ParseTemplate([]byte(s)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestPhysicalName checks names are deterministic, distinct per logical id
// and within the service's length limit.
func TestPhysicalName(t *testing.T) {
	e := &env{stack: "KnhkStack"}
	if a, b := e.physicalName("WorkQueue", 80), e.physicalName("WorkQueue", 80); a != b {
		t.Fatalf("not deterministic: %s vs %s", a, b)
	}
	prop := func(stackName, id string, max uint8) bool {
		limit := int(max%200) + 20
		e := &env{stack: stackName}
		n := e.physicalName(id, limit)
		other := e.physicalName(id+"x", limit)
		return len(n) <= limit && n != other && n == e.physicalName(id, limit)
	}
	if err := quick.Check(prop, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSameJSON(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`{"deadLetterTargetArn":"arn","maxReceiveCount":5}`, `{"maxReceiveCount":"5","deadLetterTargetArn":"arn"}`, true},
		{`{"maxReceiveCount":5}`, `{"maxReceiveCount":6}`, false},
		{`{"Statement":[{"Effect":"Deny"}]}`, `{"Statement":[{"Effect":"Allow"}]}`, false},
		{`30`, `30`, true},
		{``, `{}`, false},
	}
	for _, tc := range tests {
		if got := sameJSON(tc.a, tc.b); got != tc.want {
			t.Errorf("sameJSON(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestDesiredQueueAttributes(t *testing.T) {
	got, err := desiredQueueAttributes(map[string]any{
		"VisibilityTimeout": 360.0, "KmsMasterKeyId": "arn:key", "FifoQueue": true,
		"RedrivePolicy": map[string]any{"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 5.0},
		"QueueName":     "ignored-here",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"VisibilityTimeout": "360", "KmsMasterKeyId": "arn:key", "FifoQueue": "true",
		"RedrivePolicy": `{"deadLetterTargetArn":"arn:dlq","maxReceiveCount":5}`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// FuzzParseTemplate: any input either parses into a template whose Order
// is a permutation of its resources, or fails with an error.
func FuzzParseTemplate(f *testing.F) {
	if b, err := os.ReadFile("testdata/features.template.json"); err == nil {
		f.Add(string(b))
	}
	f.Add(`{"Resources":{"A":{"Type":"T","DependsOn":"B"},"B":{"Type":"T"}}}`)
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := ParseTemplate([]byte(s))
		if err != nil {
			return
		}
		order, err := tmpl.Order()
		if err != nil {
			return
		}
		if len(order) != len(tmpl.Resources) {
			t.Fatalf("order has %d ids for %d resources", len(order), len(tmpl.Resources))
		}
		seen := map[string]bool{}
		for _, id := range order {
			if seen[id] {
				t.Fatalf("%s twice in order", id)
			}
			seen[id] = true
			for _, d := range tmpl.Resources[id].dependsOn() {
				if !seen[d] {
					t.Fatalf("%s before its dependency %s", id, d)
				}
			}
		}
	})
}

// BenchmarkPlan measures parsing, ordering and resolving every property of
// the features template with stand-in physical values.
func BenchmarkPlan(b *testing.B) {
	raw, err := os.ReadFile("testdata/features.template.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		tmpl, err := ParseTemplate(raw)
		if err != nil {
			b.Fatal(err)
		}
		order, err := tmpl.Order()
		if err != nil {
			b.Fatal(err)
		}
		r := &Resolver{
			Params:    map[string]any{"AWS::Region": "us-east-1", "Suffix": "dev"},
			Ref:       func(id string) (any, error) { return "http://h/1/" + id, nil },
			Attr:      func(id, attr string) (any, error) { return id + "." + attr, nil },
			Condition: func(string) (bool, error) { return false, nil },
		}
		for _, id := range order {
			if _, err := r.Resolve(tmpl.Resources[id].Properties); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestTypesDocumented keeps docs/local-aws.md in step with the handler table.
func TestTypesDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "local-aws.md"))
	if err != nil {
		t.Fatal(err)
	}
	types := Types()
	if len(types) < 7 {
		t.Fatalf("only %d honoured types: %v", len(types), types)
	}
	for _, typ := range types {
		if !strings.Contains(string(doc), "`"+typ+"`") {
			t.Errorf("docs/local-aws.md does not document %s", typ)
		}
	}
}
