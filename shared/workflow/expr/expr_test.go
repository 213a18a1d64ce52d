package expr

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestIsExpressionAndUnwrap(t *testing.T) {
	cases := []struct {
		in     string
		isExpr bool
		prog   string
	}{
		{"${ .a }", true, ".a"},
		{"  ${.a}  ", true, ".a"},
		{".a", false, ".a"},
		{"${}", true, ""},
		{"$", false, "$"},
		{"plain text", false, "plain text"},
		{"${ {a: 1} }", true, "{a: 1}"},
	}
	for _, c := range cases {
		if got := IsExpression(c.in); got != c.isExpr {
			t.Errorf("IsExpression(%q) = %v, want %v", c.in, got, c.isExpr)
		}
		if got := Unwrap(c.in); got != c.prog {
			t.Errorf("Unwrap(%q) = %q, want %q", c.in, got, c.prog)
		}
	}
}

func TestEval(t *testing.T) {
	vars := Vars{
		Context:  map[string]any{"k": "ctx"},
		Input:    map[string]any{"petId": 1},
		Workflow: map[string]any{"id": "wf-1"},
		Runtime:  map[string]any{"name": "knhk"},
		Extra:    map[string]any{"color": "red", "index": 2},
	}
	cases := []struct {
		src  string
		in   any
		want any
	}{
		{"${ .a }", map[string]any{"a": 1}, 1},
		{".a + 1", map[string]any{"a": 1}, 2},
		{"${ $context.k }", nil, "ctx"},
		{"${ $input.petId }", nil, 1},
		{"${ $workflow.id }", nil, "wf-1"},
		{"${ $runtime.name }", nil, "knhk"},
		{"${ [$color, $index] }", nil, []any{"red", 2}},
		{"${ .colors + [\"red\"] }", map[string]any{}, []any{"red"}},
		{"${ empty }", 1, nil},
		{"${ \"Hello \\(.n)!\" }", map[string]any{"n": "Jo"}, "Hello Jo!"},
		{"${ env }", nil, map[string]any{}},
		{"${ $ENV }", nil, map[string]any{}},
		{"${ 1 | debug }", nil, 1},
		{"", 5, 5},
	}
	for _, c := range cases {
		e, err := Compile(c.src, "color", "$index")
		if err != nil {
			t.Fatalf("Compile(%q): %v", c.src, err)
		}
		got, err := e.Eval(context.Background(), c.in, vars)
		if err != nil {
			t.Fatalf("Eval(%q): %v", c.src, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Eval(%q) = %#v, want %#v", c.src, got, c.want)
		}
	}
}

func TestNondeterministicFunctionsAreDisabled(t *testing.T) {
	for _, src := range []string{"now", "input", "[inputs]", "0 | localtime", "halt", "halt_error", "\"x\" | halt_error(1)", "0 | mktime"} {
		e, err := Compile(src)
		if err != nil {
			continue // rejected at compile time is fine too
		}
		if _, err := e.Eval(context.Background(), nil, Vars{}); err == nil {
			t.Errorf("%s: evaluation succeeded, want an error", src)
		}
	}
}

func TestErrors(t *testing.T) {
	if _, err := Compile("${ .a | }"); err == nil {
		t.Fatal("want a parse error")
	}
	if _, err := Compile("$nope"); err == nil {
		t.Fatal("want an undeclared-variable error")
	}
	if _, err := Compile("unknownfn(1)"); err == nil {
		t.Fatal("want an unknown-function error")
	}
	e := MustCompile(".a + 1")
	_, err := e.Eval(context.Background(), map[string]any{"a": "x"}, Vars{})
	var xe *Error
	if !errors.As(err, &xe) {
		t.Fatalf("want *Error, got %v", err)
	}
	p := xe.Problem("/do/0/x")
	if p.Type != ErrorType || p.Status != 400 || p.Instance != "/do/0/x" {
		t.Fatalf("problem = %+v", p)
	}
	if _, err := MustCompile(".a").EvalBool(context.Background(), map[string]any{"a": 1}, Vars{}); err == nil {
		t.Fatal("EvalBool on a number: want an error")
	}
	ok, err := MustCompile(`.a == "x"`).EvalBool(context.Background(), map[string]any{"a": "x"}, Vars{})
	if err != nil || !ok {
		t.Fatalf("EvalBool = %v, %v", ok, err)
	}
}

func TestEvalHonoursContext(t *testing.T) {
	e := MustCompile("def f: f; f")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := e.Eval(ctx, nil, Vars{}); err == nil {
		t.Fatal("an endless program under a deadline must fail")
	}
}

func TestTemplate(t *testing.T) {
	src := map[string]any{
		"shape": "circle",
		"size":  "${ .configuration.size }",
		"list":  []any{"${ .n }", "lit", map[string]any{"deep": "${ .n + 1 }"}},
		"const": map[string]any{"a": []any{1, "b"}},
	}
	tpl, err := CompileTemplate(src)
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]any{"configuration": map[string]any{"size": 6}, "n": 1}
	got, err := tpl.Eval(context.Background(), in, Vars{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"shape": "circle",
		"size":  6,
		"list":  []any{1, "lit", map[string]any{"deep": 2}},
		"const": map[string]any{"a": []any{1, "b"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	c, _ := CompileTemplate(map[string]any{"a": ".not-an-expression"})
	if !c.IsConstant() {
		t.Fatal("a template without ${} must be constant")
	}
	if _, err := CompileTemplate(map[string]any{"a": "${ .a | }"}); err == nil {
		t.Fatal("want a compile error from a bad leaf")
	}
	var cache Cache
	v, err := EvalTemplate(context.Background(), &cache, []any{"${ . * 2 }"}, 21, Vars{})
	if err != nil || !reflect.DeepEqual(v, []any{42}) {
		t.Fatalf("EvalTemplate = %v, %v", v, err)
	}
}

func TestCache(t *testing.T) {
	var c Cache
	a, err := c.Compile(".a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Compile(".a")
	x, _ := c.Compile(".a", "item")
	if a != b {
		t.Fatal("same source must give the same compiled expression")
	}
	if a == x {
		t.Fatal("different declared variables must not share an entry")
	}
	if c.Len() != 2 {
		t.Fatalf("Len = %d, want 2", c.Len())
	}
	if _, err := c.Compile(".a |"); err == nil {
		t.Fatal("want an error")
	}
}

func TestNormalize(t *testing.T) {
	type pet struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	cases := []struct {
		in, want any
	}{
		{int64(3), 3},
		{uint8(2), 2},
		{float32(1.5), 1.5},
		{json.Number("7"), 7},
		{json.Number("1.25"), 1.25},
		{map[string]string{"a": "b"}, map[string]any{"a": "b"}},
		{[]string{"x"}, []any{"x"}},
		{map[string]any{"n": int64(1)}, map[string]any{"n": 1}},
		{[]any{map[string]int{"k": 1}}, []any{map[string]any{"k": 1}}},
		{pet{ID: 1, Name: "Rex"}, map[string]any{"id": float64(1), "name": "Rex"}},
		{json.RawMessage(`{"a":[1]}`), map[string]any{"a": []any{float64(1)}}},
		{map[any]any{"k": 1}, map[string]any{"k": 1}},
	}
	for _, c := range cases {
		if got := Normalize(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Normalize(%#v) = %#v, want %#v", c.in, got, c.want)
		}
	}
	m := map[string]any{"a": 1, "b": []any{"x"}}
	if n := Normalize(m).(map[string]any); &n == nil || len(n) != 2 {
		t.Fatal("normal map changed")
	}
}

func TestUses(t *testing.T) {
	e := MustCompile("${ $task.name + $context.x }")
	if !e.Uses("task") || !e.Uses("context") || e.Uses("workflow") {
		t.Fatal("Uses must report the variables the expression mentions")
	}
	tpl, _ := CompileTemplate(map[string]any{"a": []any{"x", "${ $workflow.id }"}})
	if !tpl.Uses("workflow") || tpl.Uses("task") {
		t.Fatal("Template.Uses must look into nested expressions")
	}
}

// TestNormalizeDeepIsLinear pins that a deeply nested value whose leaf
// changes is normalized once per level (it used to take 2^depth steps).
func TestNormalizeDeepIsLinear(t *testing.T) {
	var v any = json.Number("1")
	for range 200 {
		v = []any{map[string]any{"a": v}}
	}
	n := Normalize(v)
	for range 200 {
		n = n.([]any)[0].(map[string]any)["a"]
	}
	if n != 1 {
		t.Fatalf("leaf %v (%T)", n, n)
	}
}
