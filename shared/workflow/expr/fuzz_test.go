package expr

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// FuzzEval compiles and evaluates arbitrary expressions on arbitrary JSON;
// neither step may panic.
func FuzzEval(f *testing.F) {
	seeds := []struct{ src, doc string }{
		{"${ .a }", `{"a":1}`},
		{".colors + [\"red\"]", `{"colors":[]}`},
		{"${ {x: .[0]} }", `[1,2]`},
		{"to_entries", `{"a":{"b":null}}`},
		{"tostring | ascii_downcase", `"ABC"`},
		{"$input.x // $context", `null`},
		{"[.[] | . * 2]", `[1.5, 2]`},
		{"ltrimstr(\"a\")", `"abc"`},
		{"getpath([\"a\",0])", `{"a":[true]}`},
	}
	for _, s := range seeds {
		f.Add(s.src, s.doc)
	}
	f.Fuzz(func(t *testing.T, src, doc string) {
		var in any
		if err := json.Unmarshal([]byte(doc), &in); err != nil {
			in = doc
		}
		e, err := Compile(src, "item")
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, _ = e.Eval(ctx, in, Vars{Input: in, Extra: map[string]any{"item": in}})
		_, _ = e.EvalBool(ctx, in, Vars{})
	})
}
