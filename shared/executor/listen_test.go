package executor

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/telemetry"
)

// eventMessages counts the event continuations among delivered bodies, by
// case.
func eventMessages(bodies []string) map[string]int {
	out := map[string]int{}
	for _, b := range bodies {
		m, err := message.Decode([]byte(b))
		if err == nil && m.Continue != nil && m.Continue.Reason == message.ReasonEvent {
			out[m.Continue.CaseID]++
		}
	}
	return out
}

// An adjuster's decision reaches the one claim it correlates with (and the
// uncorrelated listener, as before), not every waiting claim; an event that
// matches nothing is counted.
func TestEventsReachOnlyTheCasesTheyCorrelateWith(t *testing.T) {
	e := newEnv(t, nil)
	x, m := e.executor(DefaultConfig())
	const n = 12
	claims := make([]string, n)
	for i := range n {
		in := sampleInput(t, "insurance-claim").(map[string]any)
		in["claimId"] = fmt.Sprintf("clm-corr-%d", i)
		key := fmt.Sprintf("corr-%d", i)
		e.send(startMessage("acme", "insurance", "insurance-claim", key, in))
		claims[i] = message.CaseID("acme", "insurance", "insurance-claim", key)
	}
	e.send(startMessage("acme", "test", "any-decision", "any-1", map[string]any{}))
	anyCase := message.CaseID("acme", "test", "any-decision", "any-1")
	e.pump(x, func() bool {
		subs, _ := e.cases.Subscribers(e.ctx, "acme")
		return len(subs) == n+1
	}, 2*time.Minute)

	ev := standin.AdjusterDecision("clm-corr-5", "decision-5")
	ev["knhktenant"] = "acme"
	e.send(ev)
	seen := e.pump(x, func() bool { return e.ended(claims[5]) && e.ended(anyCase) }, time.Minute)
	if got, want := eventMessages(seen), map[string]int{claims[5]: 1, anyCase: 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("event messages by case = %v, want %v", got, want)
	}
	for i, id := range claims {
		if i == 5 {
			continue
		}
		for _, r := range e.chain(id) {
			if r.Type == history.EventReceived {
				t.Fatalf("claim %d received another claim's decision", i)
			}
		}
	}
	if subs, _ := e.cases.Subscribers(e.ctx, "acme"); len(subs) != n-1 {
		t.Fatalf("waiting after one decision: %d cases, want %d", len(subs), n-1)
	}

	// A decision for no waiting claim: no message, one count.
	none := standin.AdjusterDecision("clm-nobody", "decision-x")
	none["knhktenant"] = "acme"
	e.send(none)
	seen = e.pump(x, func() bool { return true }, time.Minute)
	for range 3 {
		ev := e.receive(1)
		for _, r := range ev.Records {
			seen = append(seen, r.Body)
		}
		if len(ev.Records) > 0 {
			e.handle(x, ev, 30*time.Second)
		}
	}
	if got := eventMessages(seen); len(got) != 0 {
		t.Fatalf("an unmatched event was delivered: %v", got)
	}
	var buf bytes.Buffer
	_ = m.Flush(&buf)
	// The claims' own review requests match no listen task either.
	if got := emfSum(t, buf.Bytes(), telemetry.EventsUnmatched); got != n+1 {
		t.Errorf("EventsUnmatched = %v, want %d", got, n+1)
	}
	if got := emfSum(t, buf.Bytes(), telemetry.EventsDelivered); got != 2 {
		t.Errorf("EventsDelivered = %v, want 2", got)
	}
	if !strings.Contains(strings.Join(seen, "\n"), "clm-nobody") {
		t.Errorf("the unmatched event was never handled")
	}
}
