package message

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/quick"

	"github.com/knhk/knhk/shared/limits"
)

func TestDecodeSamples(t *testing.T) {
	want := map[string]Kind{
		"start-payment.json":                KindStart,
		"start-latest.json":                 KindStart,
		"start-by-reference.json":           KindStart,
		"start-claim.json":                  KindStart,
		"continue-timer.json":               KindContinue,
		"continue-branch.json":              KindContinue,
		"cloudevent-adjuster-decision.json": KindEvent,
		// valid as a message; the workflow's absence is the executor's finding
		"poison-unknown-workflow.json": KindStart,
	}
	for name, kind := range want {
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("..", "..", "events", "sqs", name))
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if m.Kind() != kind {
				t.Fatalf("kind = %s, want %s", m.Kind(), kind)
			}
		})
	}
}

func TestDecodeDefaults(t *testing.T) {
	m, err := Decode([]byte(`{"kind":"start","workflow":{"name":"order-routing"},"idempotencyKey":"k"}`))
	if err != nil {
		t.Fatal(err)
	}
	s := m.Start
	if s.Tenant != DefaultTenant || s.Workflow.Namespace != "default" || string(s.Input) != "{}" {
		t.Fatalf("defaults not applied: %+v", s)
	}
	if s.CaseID() != CaseID(DefaultTenant, "default", "order-routing", "k") {
		t.Fatal("CaseID does not use the defaults")
	}
}

func TestDecodeInvalid(t *testing.T) {
	big := `{"kind":"start","workflow":{"name":"a"},"idempotencyKey":"k","input":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	cases := []struct {
		name, body, field, msg string
	}{
		{"truncated", `{"kind":"start"`, "", "not a JSON object"},
		{"array", `[1,2]`, "", "not a JSON object"},
		{"no kind", `{"workflow":{"name":"a"}}`, "kind", "missing"},
		{"unknown kind", `{"kind":"stop"}`, "kind", `unknown kind "stop"`},
		{"no workflow name", `{"kind":"start","workflow":{},"idempotencyKey":"k"}`, "workflow.name", "required"},
		{"bad workflow name", `{"kind":"start","workflow":{"name":"Pay Ment"},"idempotencyKey":"k"}`, "workflow.name", "not a DSL name"},
		{"no key", `{"kind":"start","workflow":{"name":"a"}}`, "idempotencyKey", "required"},
		{"unknown field", `{"kind":"start","workflow":{"name":"a"},"idempotencyKey":"k","extra":1}`, "", "unknown field"},
		{"wrong type", `{"kind":"start","workflow":{"name":"a"},"idempotencyKey":7}`, "idempotencyKey", "wrong type"},
		{"both inputs", `{"kind":"start","workflow":{"name":"a"},"idempotencyKey":"k","input":{},"inputRef":"sha256:` + strings.Repeat("a", 64) + `"}`, "inputRef", "not both"},
		{"bad ref", `{"kind":"start","workflow":{"name":"a"},"idempotencyKey":"k","inputRef":"s3://b/k"}`, "inputRef", "sha256"},
		{"bad tenant", `{"kind":"start","tenant":"a b","workflow":{"name":"a"},"idempotencyKey":"k"}`, "tenant", "want 1-64"},
		{"bad traceparent", `{"kind":"start","workflow":{"name":"a"},"idempotencyKey":"k","trace":{"traceparent":"xyz"}}`, "trace.traceparent", "W3C"},
		{"oversized", big, "", "over the"},
		{"continue bad case", `{"kind":"continue","tenant":"t","caseId":"XYZ","reason":"timer","expectedSeq":1}`, "caseId", "32 lowercase hex"},
		{"continue no reason", `{"kind":"continue","tenant":"t","caseId":"` + strings.Repeat("a", 32) + `","expectedSeq":1}`, "reason", "required"},
		{"continue event missing", `{"kind":"continue","tenant":"t","caseId":"` + strings.Repeat("a", 32) + `","reason":"event","expectedSeq":1}`, "event", "required"},
		{"continue negative seq", `{"kind":"continue","tenant":"t","caseId":"` + strings.Repeat("a", 32) + `","reason":"retry","expectedSeq":-1}`, "expectedSeq", "negative"},
		{"cloudevent without id", `{"specversion":"1.0","source":"s","type":"t"}`, "", "invalid CloudEvent"},
		{"cloudevent bad version", `{"specversion":"9.9","id":"1","source":"s","type":"t"}`, "", "CloudEvent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode([]byte(c.body))
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want *message.Error", err)
			}
			if me.Field != c.field || !strings.Contains(me.Msg, c.msg) {
				t.Fatalf("got field %q msg %q, want field %q containing %q", me.Field, me.Msg, c.field, c.msg)
			}
		})
	}
}

func TestCaseIDProperties(t *testing.T) {
	same := func(a, b, c, d string) bool {
		return CaseID(a, b, c, d) == CaseID(a, b, c, d) && len(CaseID(a, b, c, d)) == 32
	}
	if err := quick.Check(same, nil); err != nil {
		t.Fatal(err)
	}
	// Moving a boundary between parts must change the id.
	distinct := func(a, b string) bool {
		return b == "" || CaseID("t", "ns", a+b, "") != CaseID("t", "ns", a, b)
	}
	if err := quick.Check(distinct, nil); err != nil {
		t.Fatal(err)
	}
	if !casePattern.MatchString(CaseID("t", "n", "w", "k")) {
		t.Fatal("CaseID does not match the continuation message's caseId pattern")
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"kind":"start","workflow":{"name":"a"},"idempotencyKey":"k"}`,
		`{"kind":"continue","tenant":"t","caseId":"00000000000000000000000000000000","reason":"timer","expectedSeq":1}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"a":1}}`,
		`{"kind":"continue","tenant":"t","caseId":"00000000000000000000000000000000","reason":"event","expectedSeq":1,"event":{"specversion":"1.0"}}`,
		`null`, `[]`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Decode(body)
		if err != nil {
			var me *Error
			if !errors.As(err, &me) || err.Error() == "" {
				t.Fatalf("error %v is not a specific *message.Error", err)
			}
			return
		}
		set := 0
		for _, ok := range []bool{m.Start != nil, m.Continue != nil, m.Event != nil} {
			if ok {
				set++
			}
		}
		if set != 1 {
			t.Fatalf("decoded message has %d parts set", set)
		}
		if m.Start != nil && m.Start.Tenant == "" {
			t.Fatal("start without tenant after defaults")
		}
	})
}

func TestAdmitLimits(t *testing.T) {
	start := func(input string) []byte {
		return []byte(`{"kind":"start","workflow":{"name":"a"},"idempotencyKey":"k","input":` + input + `}`)
	}
	for _, tc := range []struct {
		name, input string
		reason      limits.Reason
	}{
		{"flat", `{"a":1}`, ""},
		{"at the limit", strings.Repeat("[", limits.MaxDepth) + strings.Repeat("]", limits.MaxDepth), ""},
		{"512 deep", strings.Repeat("[", 512) + strings.Repeat("]", 512), limits.TooDeep},
		{"600 deep", strings.Repeat("[", 600) + strings.Repeat("]", 600), limits.TooDeep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := start(tc.input)
			if _, err := Decode(body); err != nil {
				t.Fatalf("Decode refuses what the executor must fault with a receipt: %v", err)
			}
			_, err := Admit(body)
			var le *limits.Error
			switch {
			case tc.reason == "" && err != nil:
				t.Fatal(err)
			case tc.reason != "" && (!errors.As(err, &le) || le.Reason != tc.reason):
				t.Fatalf("got %v, want %s", err, tc.reason)
			}
		})
	}
}
