package dsl

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

const nestedDoc = `document:
  dsl: '1.0.0'
  namespace: test
  name: nested
  version: '1.0.0'
do:
  - first:
      set:
        a: 1
  - tryIt:
      try:
        - inner:
            call: http
            with:
              method: get
              endpoint: http://a.knhk.local/x
      catch:
        do:
          - recover:
              set:
                b: 2
  - f:
      fork:
        branches:
          - b1:
              wait: PT1S
          - b2:
              do:
                - deep:
                    set:
                      c: 3
  - loop:
      for:
        in: ${ .items }
      do:
        - each:
            set:
              d: ${ $item }
`

func TestTaskPointersAndPositions(t *testing.T) {
	w, err := Load([]byte(nestedDoc))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Pos{}
	var walk func(TaskList)
	walk = func(l TaskList) {
		for _, nt := range l {
			got[nt.Task.Pointer] = nt.Task.Pos
			switch t := nt.Task; {
			case t.Try != nil:
				walk(t.Try.Try)
				walk(t.Try.Catch.Do)
			case t.Fork != nil:
				walk(t.Fork.Branches)
			case t.Do != nil:
				walk(t.Do.Tasks)
			case t.For != nil:
				walk(t.For.Do)
			}
		}
	}
	walk(w.Do)
	want := map[string]Pos{
		"/do/0/first":                          {7, 5},
		"/do/1/tryIt":                          {10, 5},
		"/do/1/tryIt/try/0/inner":              {12, 11},
		"/do/1/tryIt/catch/do/0/recover":       {19, 13},
		"/do/2/f":                              {22, 5},
		"/do/2/f/fork/branches/0/b1":           {25, 13},
		"/do/2/f/fork/branches/1/b2":           {27, 13},
		"/do/2/f/fork/branches/1/b2/do/0/deep": {29, 19},
		"/do/3/loop":                           {32, 5},
		"/do/3/loop/do/0/each":                 {36, 11},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pointers/positions:\n got %v\nwant %v", got, want)
	}
	if p, ok := w.Position("/do/1/tryIt/try/0/inner/with/endpoint"); !ok || p != (Pos{16, 15}) {
		t.Fatalf("Position(endpoint) = %v, %v", p, ok)
	}
}

func TestTypedModel(t *testing.T) {
	data := mustRead(t, "testdata/valid/try-retry.yaml")
	w, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	r := w.Use.Retries["standard"]
	want := &RetryPolicy{
		Delay:   &Duration{Value: 2 * time.Second},
		Backoff: &Backoff{Kind: BackoffExponential, Params: map[string]any{}},
		Limit:   &RetryLimit{Attempt: &AttemptLimit{Count: 5}, Duration: &Duration{Value: 5 * time.Minute}},
		Jitter:  &Jitter{From: Duration{Value: 100 * time.Millisecond}, To: Duration{Value: 500 * time.Millisecond}},
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("retry policy = %+v", r)
	}
	tr := w.Do[0].Task.Try
	if tr == nil || tr.Catch.Retry.Ref != "standard" || tr.Catch.As != "failure" || tr.Catch.Errors.Status != 503 {
		t.Fatalf("try = %+v", tr)
	}
	call := tr.Try[0].Task.Call
	if call.HTTP == nil || call.HTTP.Method != "get" || call.HTTP.Endpoint.URI != "http://score.knhk.local/score" {
		t.Fatalf("http args = %+v", call.HTTP)
	}
	if k := w.Do[0].Task.Kind(); k != KindTry {
		t.Fatalf("kind = %q", k)
	}

	w, err = Load(mustRead(t, "testdata/valid/http-post-auth.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if a := w.Use.Authentications["ledger"]; a.Scheme != AuthBearer || a.Secret != "ledgerToken" {
		t.Fatalf("ledger auth = %+v", a)
	}
	notify := w.Do[1].Task.Call.HTTP
	if notify.Endpoint.Authentication.Policy.Basic.Username != "hook" || notify.Body != "${ . }" {
		t.Fatalf("notify = %+v", notify)
	}

	w, err = Load(mustRead(t, "testdata/valid/switch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	wantCases := []SwitchCase{{Name: "large", When: "${ .amount > 10000 }", Then: "review"}, {Name: "default", Then: "approve"}}
	if got := w.Do[0].Task.Switch.Cases; !reflect.DeepEqual(got, wantCases) {
		t.Fatalf("cases = %+v", got)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseISODuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"PT1M30S", 90 * time.Second, ""},
		{"P1DT2H", 26 * time.Hour, ""},
		{"PT0.5S", 500 * time.Millisecond, ""},
		{"P2W", 14 * 24 * time.Hour, ""},
		{"PT1.5H", 90 * time.Minute, ""},
		{"P1W2DT3H4M5.006S", (9*24+3)*time.Hour + 4*time.Minute + 5006*time.Millisecond, ""},
		{"PT0S", 0, ""},
		{"P", 0, "invalid"},
		{"PT", 0, "invalid"},
		{"P1DT", 0, "invalid"},
		{"1M", 0, "invalid"},
		{"PT1S1M", 0, "out of place"},
		{"P1H", 0, "out of place"},
		{"PT1D", 0, "out of place"},
		{"PT1", 0, "without unit"},
		{"PT.5S", 0, "invalid"},
		{"PT5.S", 0, "invalid"},
		{"P1Y", 0, "unsupported: years and months"},
		{"P1M", 0, "unsupported: years and months"},
		{"P99999999999999999999D", 0, "too long"},
		{"pt1s", 0, "invalid"},
	}
	for _, tc := range tests {
		got, err := ParseISODuration(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseISODuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseISODuration(%q) error = %v; want %q", tc.in, err, tc.err)
		}
	}
}

// TestDurationRoundTrip checks that any combination of whole units, written
// as ISO 8601 and as an inline object, parses to the same sum.
func TestDurationRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		days, hours, mins, secs, ms := rng.Int63n(400), rng.Int63n(48), rng.Int63n(120), rng.Int63n(120), rng.Int63n(1000)
		want := time.Duration(days)*24*time.Hour + time.Duration(hours)*time.Hour + time.Duration(mins)*time.Minute + time.Duration(secs)*time.Second + time.Duration(ms)*time.Millisecond
		iso := fmt.Sprintf("P%dDT%dH%dM%d.%03dS", days, hours, mins, secs, ms)
		got, err := ParseISODuration(iso)
		if err != nil || got != want {
			t.Fatalf("ParseISODuration(%q) = %v, %v; want %v", iso, got, err, want)
		}
		doc := fmt.Sprintf("document: {dsl: '1.0.0', namespace: t, name: d, version: '1.0.0'}\ndo:\n  - w:\n      wait: {days: %d, hours: %d, minutes: %d, seconds: %d, milliseconds: %d}\n", days, hours, mins, secs, ms)
		w, err := Load([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Do[0].Task.Wait.Duration.Value; got != want {
			t.Fatalf("inline %s = %v; want %v", doc, got, want)
		}
	}
}

func TestJSONAndYAMLGiveTheSameModel(t *testing.T) {
	y := "document:\n  dsl: '1.0.0'\n  namespace: t\n  name: same\n  version: '1.0.0'\ndo:\n  - a:\n      call: http\n      with:\n        method: post\n        endpoint: http://a.knhk.local/x\n        body:\n          n: 1\n          f: 1.5\n          ok: true\n          none: null\n          list: [1, two]\n  - b:\n      wait: PT2S\n      then: end\n"
	j := `{"document":{"dsl":"1.0.0","namespace":"t","name":"same","version":"1.0.0"},"do":[{"a":{"call":"http","with":{"method":"post","endpoint":"http://a.knhk.local/x","body":{"n":1,"f":1.5,"ok":true,"none":null,"list":[1,"two"]}}}},{"b":{"wait":"PT2S","then":"end"}}]}`
	wy, err := Load([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	wj, err := Load([]byte(j))
	if err != nil {
		t.Fatal(err)
	}
	strip := func(l TaskList) {
		for _, nt := range l {
			nt.Task.Pos = Pos{}
		}
	}
	strip(wy.Do)
	strip(wj.Do)
	wy.root, wj.root, wy.exprs, wj.exprs = nil, nil, nil, nil
	if !reflect.DeepEqual(wy, wj) {
		t.Fatalf("YAML and JSON models differ:\n%+v\n%+v", wy.Do[0].Task.Call, wj.Do[0].Task.Call)
	}
	body := wy.Do[0].Task.Call.HTTP.Body.(map[string]any)
	if body["n"] != int64(1) || body["f"] != 1.5 || body["ok"] != true || body["none"] != nil {
		t.Fatalf("body = %#v", body)
	}
}

func TestLimitsAndMalformedInput(t *testing.T) {
	deep := "document: {dsl: '1.0.0', namespace: t, name: d, version: '1.0.0'}\ndo:\n  - a:\n      set:\n        x: " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n"
	tests := []struct {
		name string
		doc  []byte
		want string
	}{
		{"oversized", append([]byte("# "), make([]byte, MaxDocumentBytes)...), "the limit is 1048576 bytes"},
		{"empty", nil, "empty document"},
		{"not utf8", []byte("document: \xff\xfe"), "not valid UTF-8"},
		{"scalar root", []byte("hello"), "workflow must be an object"},
		{"two documents", []byte("a: 1\n---\nb: 2\n"), "more than one YAML document"},
		{"deep values", []byte(deep), "nesting deeper than 64 levels"},
		{"alias", []byte("document: &d {dsl: '1.0.0'}\ndo: *d\n"), "unsupported: YAML anchors"},
		{"duplicate key", []byte("document: {}\ndocument: {}\ndo: []\n"), `mapping key "document" already defined`},
		{"unclosed flow", []byte("do: [\n"), "malformed YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.doc)
			var e *Error
			if !errors.As(err, &e) || len(e.Issues) == 0 {
				t.Fatalf("err = %v, want *Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			for _, is := range e.Issues {
				if is.Line < 1 || is.Column < 1 {
					t.Fatalf("issue without a position: %v", is)
				}
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Load([]byte("document:\n  dsl: '1.0.0'\n  namespace: t\n  name: f\n  version: '1.0.0'\ndo:\n  - a:\n      wait: soon\n  - a:\n      call: undeclared\n"))
	if err == nil {
		t.Fatal("accepted")
	}
	want := "/do/0/a/wait 8:13: invalid ISO 8601 duration \"soon\""
	if err.Error() != want {
		t.Fatalf("error =\n%v\nwant\n%v", err, want)
	}
	// Semantic issues are all reported, in document order.
	_, err = Load([]byte("document:\n  dsl: '1.0.0'\n  namespace: t\n  name: f\n  version: '1.0.0'\ndo:\n  - a:\n      call: undeclared\n  - a:\n      set:\n        x: ${ .[ }\n"))
	want = "/do/0/a/call 8:7: function \"undeclared\" is not declared under use.functions\n" +
		"/do/1/a 9:5: duplicate task name \"a\" in this list\n"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "/do/1/a/set/x 11:9: invalid runtime expression") {
		t.Fatalf("error =\n%v", err)
	}
}

func TestHash(t *testing.T) {
	if got := Hash([]byte("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("Hash = %s", got)
	}
	if Hash([]byte("a")) == Hash([]byte("a ")) {
		t.Fatal("hash ignores bytes")
	}
}

func TestValidateNil(t *testing.T) {
	if issues := Validate(nil); len(issues) != 1 {
		t.Fatalf("Validate(nil) = %v", issues)
	}
}

func TestIsExpressionMatchesSchemaPattern(t *testing.T) {
	re := regexp.MustCompile(`^\s*\$\{.+\}\s*$`)
	inputs := []string{"${ . }", "${.}", "${}", "  ${ .a }  ", "${ .a", ".a }", "x${ .a }", "${ .a }x", "${\n.a }", "\t${ 1 }\n", "${{}}", "$ { . }", "${ .a }}", ""}
	rng := rand.New(rand.NewSource(2))
	alphabet := []byte("${} .\n\tab")
	for i := 0; i < 5000; i++ {
		b := make([]byte, rng.Intn(8))
		for j := range b {
			b[j] = alphabet[rng.Intn(len(alphabet))]
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		if got, want := IsExpression(s), re.MatchString(s); got != want {
			t.Fatalf("IsExpression(%q) = %v, pattern says %v", s, got, want)
		}
	}
}

func TestTaskByPointerAndListenTypes(t *testing.T) {
	src := `document: {dsl: '1.0.0', namespace: t, name: w, version: '1.0.0'}
do:
  - outer:
      try:
        - waitDecision:
            listen:
              to:
                any:
                  - with: {type: com.example.approved}
                  - with: {type: com.example.rejected, source: https://x}
      catch:
        do:
          - anyEvent:
              listen:
                to:
                  one:
                    with: {source: https://y}
  - branches:
      fork:
        branches:
          - left:
              set: {a: 1}
`
	w, err := Load([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for ptr, want := range map[string]string{
		"/do/0/outer":                              "outer",
		"/do/0/outer/try/0/waitDecision":           "waitDecision",
		"/do/0/outer/catch/do/0/anyEvent":          "anyEvent",
		"/do/1/branches/fork/branches/0/left":      "left",
		"/do/9/none":                               "",
		"/do/0/outer/try/0/waitDecision/not/there": "",
	} {
		got := w.Task(ptr)
		if (got == nil) != (want == "") || (got != nil && got.Pointer != ptr) {
			t.Errorf("Task(%q) = %v, want %q", ptr, got, want)
		}
	}
	if got := w.Task("/do/0/outer/try/0/waitDecision").Listen.EventTypes(); len(got) != 2 || got[0] != "com.example.approved" || got[1] != "com.example.rejected" {
		t.Errorf("EventTypes = %v", got)
	}
	if got := w.Task("/do/0/outer/catch/do/0/anyEvent").Listen.EventTypes(); got != nil {
		t.Errorf("a filter without a type must accept any type, got %v", got)
	}
}
