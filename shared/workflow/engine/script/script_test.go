package script

import (
	"context"
	"reflect"
	"testing"
	"time"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestRun(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want any
	}{
		{"printed JSON is the output", Request{Code: `console.log(JSON.stringify({a: 1, b: [true, "x"]}))`},
			map[string]any{"a": 1, "b": []any{true, "x"}}},
		{"printed text is a string", Request{Code: `console.log("hello", "world")`}, "hello world"},
		{"several lines stay text", Request{Code: `console.log(1); console.log(2)`}, "1\n2"},
		{"the completion value when nothing is printed", Request{Code: `const x = {n: 20}; x.n * 2 + 2`}, 42},
		{"undefined completion is null", Request{Code: `let y = 1;`}, nil},
		{"argv from an array", Request{Code: `argv.length + ":" + argv.join(",")`, Arguments: []any{"a", "b"}}, "2:a,b"},
		{"process.argv as node has it", Request{Code: `process.argv.slice(2)`, Arguments: []any{"x"}}, []any{"x"}},
		{"named arguments are globals", Request{Code: `greeting + ", " + who.name`, Arguments: map[string]any{"greeting": "Hello", "who": map[string]any{"name": "Ada"}}}, "Hello, Ada"},
		{"environment is process.env", Request{Code: `process.env.REGION`, Environment: map[string]any{"REGION": "eu-west-1"}}, "eu-west-1"},
		{"stdin", Request{Code: `stdin.toUpperCase()`, Stdin: "abc"}, "ABC"},
		{"the clock is the task's start", Request{Code: `new Date().toISOString() + " " + Date.now()`, Time: start},
			"2026-03-01T12:00:00.000Z " + "1772366400000"},
		{"stderr", Request{Code: `console.error("oops"); console.log("fine")`, Return: ReturnStderr}, "oops"},
		{"code 0", Request{Code: `1`, Return: ReturnCode}, 0},
		{"code 1 when the script throws", Request{Code: `throw new Error("bad")`, Return: ReturnCode}, 1},
		{"all", Request{Code: `console.log("o"); throw "e"`, Return: ReturnAll}, map[string]any{"code": 1, "stdout": "o", "stderr": "e"}},
		{"none", Request{Code: `console.log("ignored")`, Return: ReturnNone}, nil},
		{"no I/O in the sandbox", Request{Code: `[typeof require, typeof fetch, typeof setTimeout, typeof XMLHttpRequest, typeof module].join()`},
			"undefined,undefined,undefined,undefined,undefined"},
	}
	var rn Runner
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Language = LanguageJS
			got, err := rn.Run(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("error: %+v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestRunFaults(t *testing.T) {
	tests := []struct {
		name   string
		rn     *Runner
		req    Request
		status int
		typ    string
	}{
		{"python", &Runner{}, Request{Language: "python", Code: "print(1)"}, 400, errConfiguration},
		{"syntax error", &Runner{}, Request{Language: LanguageJS, Code: "function ("}, 400, errConfiguration},
		{"a throw faults the task", &Runner{}, Request{Language: LanguageJS, Code: `throw new TypeError("no")`}, 500, errRuntime},
		{"an endless loop is stopped", &Runner{MaxTime: 50 * time.Millisecond}, Request{Language: LanguageJS, Code: `for (;;) {}`}, 408, errTimeout},
		{"the task's timeout stops it earlier", &Runner{MaxTime: time.Hour}, Request{Language: LanguageJS, Code: `while (true) {}`, Timeout: 30 * time.Millisecond}, 408, errTimeout},
		{"deep recursion", &Runner{MaxStack: 64}, Request{Language: LanguageJS, Code: `function f(n) { return f(n + 1) } f(0)`}, 500, errRuntime},
		{"too much output", &Runner{MaxOutput: 1024}, Request{Language: LanguageJS, Code: `for (;;) console.log("xxxxxxxxxxxxxxxx")`}, 413, errRuntime},
		{"too large a result", &Runner{MaxOutput: 1024}, Request{Language: LanguageJS, Code: `"x".repeat(2000)`}, 413, errRuntime},
		{"too much memory", &Runner{MaxHeap: 16 << 20, MaxTime: 20 * time.Second}, Request{Language: LanguageJS, Code: `const a = []; for (;;) a.push({k: "v" + a.length})`}, 507, errRuntime},
		{"unknown return", &Runner{}, Request{Language: LanguageJS, Code: `1`, Return: "exitcode"}, 400, errConfiguration},
		{"argument names must be identifiers", &Runner{}, Request{Language: LanguageJS, Code: `1`, Arguments: map[string]any{"a-b": 1}}, 400, errConfiguration},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.rn.Run(context.Background(), tc.req)
			if err == nil {
				t.Fatal("no error")
			}
			if err.Status != tc.status || err.Type != tc.typ {
				t.Fatalf("got %d %s (%s), want %d %s", err.Status, err.Type, err.Detail, tc.status, tc.typ)
			}
		})
	}
}

func TestRunIsDeterministic(t *testing.T) {
	var rn Runner
	code := `[Math.random(), Math.random(), Date.now()]`
	run := func(seed uint64) any {
		v, err := rn.Run(context.Background(), Request{Language: LanguageJS, Code: code, Seed: seed, Time: start})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, b, c := run(7), run(7), run(8)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different results: %v %v", a, b)
	}
	if reflect.DeepEqual(a, c) {
		t.Fatalf("different seeds, same random numbers: %v", a)
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := (&Runner{MaxTime: time.Hour}).Run(ctx, Request{Language: LanguageJS, Code: `for (;;) {}`})
	if err == nil || err.Status != 503 {
		t.Fatalf("got %+v, want a 503 stop", err)
	}
}

func FuzzRun(f *testing.F) {
	for _, s := range []string{`1`, `console.log("x")`, `throw 1`, `for(;;){}`, `JSON.parse("{")`, `[1,2,3].map(x => x*2)`, `new Proxy({}, {})`} {
		f.Add(s)
	}
	rn := &Runner{MaxTime: 20 * time.Millisecond, MaxOutput: 4096}
	f.Fuzz(func(t *testing.T, code string) {
		v, err := rn.Run(context.Background(), Request{Language: LanguageJS, Code: code})
		if err != nil && (err.Type == "" || err.Detail == "") {
			t.Fatalf("an error without type or detail: %+v", err)
		}
		if err == nil {
			_ = v
		}
	})
}

func BenchmarkRun(b *testing.B) {
	var rn Runner
	req := Request{Language: LanguageJS, Code: `const t = items.reduce((s, i) => s + i.price * i.qty, 0); ({total: t, n: items.length})`,
		Arguments: map[string]any{"items": []any{map[string]any{"price": 2.5, "qty": 4}, map[string]any{"price": 10, "qty": 1}}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rn.Run(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
