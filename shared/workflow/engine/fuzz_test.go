package engine

import (
	"context"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/workflow/dsl"
)

// FuzzRun parses arbitrary workflow documents and runs those that parse on
// arbitrary JSON input, with no network and a small step budget: neither
// the compiler nor the core may panic, and every run must end or wait.
func FuzzRun(f *testing.F) {
	seeds := []string{
		header + "do:\n  - a:\n      set:\n        x: ${ .x + 1 }\n",
		splitJoin,
		choice,
		multiChoice,
		deferred,
		header + "do:\n  - l:\n      for:\n        in: .items\n      while: .n < 3\n      do:\n        - s:\n            set:\n              n: ${ .n + 1 }\n",
		header + "do:\n  - t:\n      try:\n        - r:\n            raise:\n              error:\n                type: https://e/x\n                status: 500\n      catch:\n        as: e\n        do:\n          - s:\n              set:\n                got: ${ $e.status }\n",
		header + "do:\n  - w:\n      wait: PT1S\n      timeout:\n        after:\n          seconds: 1\n",
	}
	for _, s := range seeds {
		f.Add(s, `{"x":1,"n":0,"items":[1,2]}`)
	}
	f.Fuzz(func(t *testing.T, src, input string) {
		wf, err := dsl.Parse([]byte(src))
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		res, err := Run(ctx, wf, decodeJSON([]byte(input)), RunOptions{
			Options:    Options{StepBudget: 200},
			HTTPClient: offline,
			MaxStimuli: 200,
			Clock:      func() time.Time { return t0 },
		})
		if err != nil {
			return
		}
		if res.Status == StatusNew {
			t.Fatalf("the case never started")
		}
	})
}
