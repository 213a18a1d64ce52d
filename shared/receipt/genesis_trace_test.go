package receipt

import (
	"strings"
	"testing"
)

// The genesis may record the case's trace context: it is part of the
// canonical receipt (so the hash covers it), survives decoding and the
// event round trip, and a genesis without it encodes exactly as before.
func TestGenesisTraceParent(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	plain, err := New(nil, "acme", "case-1", genesisEvent("acme"))
	if err != nil {
		t.Fatal(err)
	}
	ev := genesisEvent("acme")
	g := *ev.Genesis
	g.TraceParent = tp
	ev.Genesis = &g
	traced, err := New(nil, "acme", "case-1", ev)
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := plain.Canonical()
	tc, _ := traced.Canonical()
	if strings.Contains(string(pc), "traceparent") {
		t.Errorf("a genesis without trace context names one: %s", pc)
	}
	if !strings.Contains(string(tc), `"tenant":"acme","traceparent":"`+tp+`","version"`) {
		t.Errorf("canonical genesis %s: want traceparent in key order", tc)
	}
	if plain.Hash == traced.Hash {
		t.Error("the hash does not cover the trace context")
	}
	back, err := Decode(tc)
	if err != nil {
		t.Fatal(err)
	}
	if back.Genesis.TraceParent != tp || back.Hash != traced.Hash || len(VerifyReceipt(back)) != 0 {
		t.Errorf("decoded %+v, findings %v", back.Genesis, VerifyReceipt(back))
	}
	e, err := back.Event(nil)
	if err != nil || e.Genesis.TraceParent != tp {
		t.Errorf("event genesis %+v, %v", e.Genesis, err)
	}
	for _, bad := range []string{"00-zz", "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", tp + "x"} {
		g.TraceParent = bad
		if _, err := New(nil, "acme", "case-1", ev); err == nil {
			t.Errorf("traceparent %q accepted", bad)
		}
	}
}
