package engine

import (
	"context"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/history"
)

// Workflow control-flow patterns (workflowpatterns.com numbering), one test
// each; docs/patterns.md maps them to the DSL.

func TestPattern_WCP01_Sequence(t *testing.T) {
	mustComplete(t, run(t, header+`do:
  - a:
      set:
        s: a
  - b:
      set:
        s: ${ .s + "b" }
`, nil, RunOptions{}), `{"s":"ab"}`)
}

const splitJoin = header + `do:
  - split:
      fork:
        branches:
          - left:
              set:
                side: left
          - right:
              set:
                side: right
  - join:
      set:
        sides: ${ map(.side) }
`

func TestPattern_WCP02_ParallelSplit(t *testing.T) {
	res := run(t, splitJoin, nil, RunOptions{})
	mustComplete(t, res, `{"sides":["left","right"]}`)
	if countType(res, history.BranchCompleted) != 2 {
		t.Fatal("both branches must run")
	}
}

func TestPattern_WCP03_Synchronization(t *testing.T) {
	res := run(t, splitJoin, nil, RunOptions{})
	mustComplete(t, res, `{"sides":["left","right"]}`)
	if countType(res, history.BranchJoined) != 1 {
		t.Fatal("the join must fire exactly once")
	}
}

const choice = header + `do:
  - route:
      switch:
        - big:
            when: .n > 10
            then: large
        - other:
            then: small
  - large:
      set:
        size: large
      then: merge
  - small:
      set:
        size: small
      then: merge
  - merge:
      set:
        merged: ${ .size }
`

func TestPattern_WCP04_ExclusiveChoice(t *testing.T) {
	mustComplete(t, run(t, choice, map[string]any{"n": 11}, RunOptions{}), `{"merged":"large"}`)
	mustComplete(t, run(t, choice, map[string]any{"n": 1}, RunOptions{}), `{"merged":"small"}`)
}

func TestPattern_WCP05_SimpleMerge(t *testing.T) {
	for _, n := range []int{1, 11} {
		res := run(t, choice, map[string]any{"n": n}, RunOptions{})
		merges := 0
		for _, e := range res.History {
			if e.Type == history.TaskCompleted && e.Task == "/do/3/merge" {
				merges++
			}
		}
		if merges != 1 {
			t.Fatalf("n=%d: merge ran %d times", n, merges)
		}
	}
}

const multiChoice = header + `do:
  - choose:
      fork:
        branches:
          - email:
              if: .email
              set:
                sent: email
          - sms:
              if: .sms
              set:
                sent: sms
          - post:
              if: .post
              set:
                sent: post
  - merge:
      set:
        sent: ${ [.[] | .sent // empty] }
`

func TestPattern_WCP06_MultiChoice(t *testing.T) {
	res := run(t, multiChoice, map[string]any{"email": true, "sms": false, "post": true}, RunOptions{})
	mustComplete(t, res, `{"sent":["email","post"]}`)
	if countType(res, history.TaskSkipped) != 1 {
		t.Fatal("the unchosen branch must be skipped")
	}
}

func TestPattern_WCP07_StructuredSynchronizingMerge(t *testing.T) {
	res := run(t, multiChoice, map[string]any{"email": false, "sms": true, "post": false}, RunOptions{})
	mustComplete(t, res, `{"sent":["sms"]}`)
	if countType(res, history.BranchJoined) != 1 {
		t.Fatal("the merge must wait for the chosen branches once")
	}
}

func TestPattern_WCP09_StructuredDiscriminator(t *testing.T) {
	res := run(t, header+`do:
  - race:
      fork:
        compete: true
        branches:
          - fast:
              set:
                winner: fast
          - slow:
              set:
                winner: slow
`, nil, RunOptions{})
	mustComplete(t, res, `{"winner":"fast"}`)
	if countType(res, history.BranchCompleted) != 1 {
		t.Fatal("only the first finisher may complete")
	}
}

func TestPattern_WCP10_ArbitraryCycles(t *testing.T) {
	mustComplete(t, run(t, header+`do:
  - inc:
      set:
        n: ${ .n + 1 }
  - check:
      switch:
        - again:
            when: .n < 5
            then: inc
        - done:
            then: end
`, map[string]any{"n": 0}, RunOptions{}), `{"n":5}`)
}

func TestPattern_WCP11_ImplicitTermination(t *testing.T) {
	res := run(t, header+`do:
  - work:
      fork:
        branches:
          - a:
              wait: PT1S
          - b:
              set:
                b: true
`, nil, RunOptions{})
	if res.Status != StatusCompleted {
		t.Fatalf("the case must end when no work remains: %s", res.Status)
	}
}

func TestPattern_WCP13_MultipleInstancesDesignTime(t *testing.T) {
	mustComplete(t, run(t, header+`do:
  - inspect:
      fork:
        branches:
          - i1:
              set:
                ok: 1
          - i2:
              set:
                ok: 2
          - i3:
              set:
                ok: 3
  - total:
      set:
        sum: ${ map(.ok) | add }
`, nil, RunOptions{}), `{"sum":6}`)
}

func TestPattern_WCP14_MultipleInstancesRuntimeKnowledge(t *testing.T) {
	mustComplete(t, run(t, header+`do:
  - each:
      for:
        each: item
        in: .items
      do:
        - add:
            set:
              sum: ${ .sum + $item }
              items: ${ .items }
`, map[string]any{"items": []any{1, 2, 3, 4}, "sum": 0}, RunOptions{}), `{"items":[1,2,3,4],"sum":10}`)
}

const deferred = header + `do:
  - wait:
      listen:
        to:
          any:
            - with:
                type: order.paid
            - with:
                type: order.cancelled
  - outcome:
      set:
        got: ${ .[0].kind }
`

func TestPattern_WCP16_DeferredChoice(t *testing.T) {
	for _, typ := range []string{"order.paid", "order.cancelled"} {
		res := run(t, deferred, nil, RunOptions{Events: []map[string]any{
			{"specversion": "1.0", "id": "1", "source": "shop", "type": "unrelated", "data": map[string]any{"kind": "x"}},
			{"specversion": "1.0", "id": "2", "source": "shop", "type": typ, "data": map[string]any{"kind": typ}},
		}})
		mustComplete(t, res, `{"got":"`+typ+`"}`)
	}
}

func TestPattern_WCP19_CancelTask(t *testing.T) {
	mustComplete(t, run(t, header+`do:
  - guarded:
      try:
        - slow:
            wait: PT1H
            timeout:
              after:
                seconds: 1
      catch:
        errors:
          with:
            type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
        do:
          - fallback:
              set:
                cancelled: true
`, nil, RunOptions{}), `{"cancelled":true}`)
}

func TestPattern_WCP20_CancelCase(t *testing.T) {
	wf := load(t, header+"do:\n  - wait:\n      wait: PT1H\n  - never:\n      set:\n        x: 1\n")
	p, _ := Compile(wf)
	st := NewState()
	ctx := context.Background()
	if _, err := p.Decide(ctx, st, Start{Time: t0}, Options{}); err != nil {
		t.Fatal(err)
	}
	dec, err := p.Decide(ctx, st, Cancel{Reason: "operator", Time: t0}, Options{})
	if err != nil || st.Status != StatusCancelled || len(dec.Events) != 1 {
		t.Fatalf("cancel: %v, %s", err, st.Status)
	}
	dec, _ = p.Decide(ctx, st, TimerFired{ID: "/0", Time: t0}, Options{})
	if len(dec.Events) != 0 {
		t.Fatal("a cancelled case must not advance")
	}
}

func TestPattern_WCP21_StructuredLoop(t *testing.T) {
	mustComplete(t, run(t, header+`do:
  - loop:
      for:
        in: '[range(100)]'
      while: .n < 3
      do:
        - inc:
            set:
              n: ${ .n + 1 }
`, map[string]any{"n": 0}, RunOptions{}), `{"n":3}`)
}

func TestPattern_WCP22_Recursion(t *testing.T) {
	res := run(t, header+`use:
  functions:
    countdown:
      do:
        - dec:
            set:
              n: ${ .n - 1 }
        - again:
            if: .n > 0
            call: countdown
do:
  - start:
      call: countdown
`, map[string]any{"n": 4}, RunOptions{})
	mustComplete(t, res, `{"n":0}`)
}

func TestPattern_WCP23_TransientTrigger(t *testing.T) {
	wf := load(t, header+"do:\n  - pause:\n      wait: PT1M\n  - hear:\n      listen:\n        to:\n          one:\n            with:\n              type: ping\n")
	p, _ := Compile(wf)
	st := NewState()
	ctx := context.Background()
	ping := map[string]any{"specversion": "1.0", "id": "1", "source": "s", "type": "ping", "data": 1}
	_, _ = p.Decide(ctx, st, Start{Time: t0}, Options{})
	dec, _ := p.Decide(ctx, st, EventArrived{Event: ping, Time: t0}, Options{})
	if len(dec.Events) != 0 {
		t.Fatal("a trigger nobody listens to must be lost")
	}
	_, _ = p.Decide(ctx, st, TimerFired{ID: "/0", Time: t0.Add(time.Minute)}, Options{})
	if st.Status != StatusRunning {
		t.Fatalf("the earlier trigger must not have been kept: %s", st.Status)
	}
	_, _ = p.Decide(ctx, st, EventArrived{Event: ping, Time: t0}, Options{})
	if st.Status != StatusCompleted {
		t.Fatalf("a trigger arriving while listening must be consumed: %s", st.Status)
	}
}

func TestPattern_WCP29_CancellingDiscriminator(t *testing.T) {
	res := run(t, header+`do:
  - race:
      fork:
        compete: true
        branches:
          - slow:
              wait: PT1H
          - fast:
              set:
                winner: fast
`, nil, RunOptions{})
	mustComplete(t, res, `{"winner":"fast"}`)
	if countType(res, history.TimerFired) != 0 {
		t.Fatal("the losing branch must be cancelled, not awaited")
	}
}

func TestPattern_WCP43_ExplicitTermination(t *testing.T) {
	res := run(t, header+`do:
  - a:
      set:
        done: true
      then: end
  - b:
      set:
        done: false
`, nil, RunOptions{})
	mustComplete(t, res, `{"done":true}`)
}

func countType(res *RunResult, typ history.Type) int {
	n := 0
	for _, e := range res.History {
		if e.Type == typ {
			n++
		}
	}
	return n
}
