package receipt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt/jcs"
)

const descHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func genesisEvent(tenant string) history.Event {
	return history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{"order":"A-1","amount":120.50}`),
		Genesis: &history.Genesis{Tenant: tenant, Namespace: "payments", Workflow: "charge", Version: "1.0.0", DescriptorHash: descHash},
		Started: t0}
}

func taskEvent(i int) history.Event {
	return history.Event{Type: history.TaskCompleted, Task: fmt.Sprintf("/do/%d/charge", i), Attempt: i % 3,
		Input:   json.RawMessage(fmt.Sprintf(`{"orderId":"ord-%06d","amount":120.5,"currency":"EUR"}`, i)),
		Output:  json.RawMessage(fmt.Sprintf(`{"status":"captured","authCode":"X%05d"}`, i)),
		Started: t0.Add(time.Duration(i) * time.Second), Ended: t0.Add(time.Duration(i)*time.Second + 137*time.Millisecond)}
}

// buildChain returns a chain of n receipts (genesis plus n-1 task events).
func buildChain(t testing.TB, tenant, caseID string, n int) []*Receipt {
	t.Helper()
	var rs []*Receipt
	var prev *Receipt
	for i := 0; i < n; i++ {
		ev := taskEvent(i)
		if i == 0 {
			ev = genesisEvent(tenant)
		}
		r, err := New(prev, tenant, caseID, ev, WithUsage(Usage{BilledMs: 12, ReadUnits: 0.5, WriteUnits: 1, Requests: 2}))
		if err != nil {
			t.Fatalf("New %d: %v", i, err)
		}
		rs = append(rs, r)
		prev = r
	}
	return rs
}

func lines(t testing.TB, rs []*Receipt) [][]byte {
	t.Helper()
	out := make([][]byte, len(rs))
	for i, r := range rs {
		b, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

func decodeAll(t testing.TB, ls [][]byte) []*Receipt {
	t.Helper()
	rs := make([]*Receipt, len(ls))
	for i, l := range ls {
		r, err := Decode(l)
		if err != nil {
			t.Fatalf("decode %d: %v\n%s", i, err, l)
		}
		rs[i] = r
	}
	return rs
}

func TestChainRoundTrip(t *testing.T) {
	rs := buildChain(t, "acme", "case-1", 20)
	if f := VerifyChain(rs); len(f) != 0 {
		t.Fatalf("fresh chain: %v", f)
	}
	if rs[0].PrevHash != ZeroHash || rs[0].Seq != 0 || rs[1].PrevHash != rs[0].Hash || rs[19].Seq != 19 {
		t.Fatal("links or sequence wrong")
	}
	if rs[3].DurationMs != 137 || rs[0].InputHash == "" || rs[0].Genesis == nil {
		t.Fatalf("fields: %+v", rs[3])
	}
	back := decodeAll(t, lines(t, rs))
	if f := VerifyChain(back); len(f) != 0 {
		t.Fatalf("decoded chain: %v", f)
	}
	for i := range rs {
		if back[i].Hash != rs[i].Hash {
			t.Fatalf("hash %d changed by round trip", i)
		}
		h, err := back[i].ComputeHash()
		if err != nil || h != rs[i].Hash {
			t.Fatalf("ComputeHash %d: %s %v", i, h, err)
		}
	}
	// Same content, same hash: hashing is deterministic across builds.
	again := buildChain(t, "acme", "case-1", 20)
	if again[19].Hash != rs[19].Hash {
		t.Fatal("hash not deterministic")
	}
}

// A golden vector: if this changes, every stored chain stops verifying.
func TestGoldenHash(t *testing.T) {
	r, err := New(nil, "acme", "case-1", history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{"b":1,"a":"x"}`),
		Genesis: &history.Genesis{Tenant: "acme", Namespace: "ns", Workflow: "wf", Version: "1", DescriptorHash: descHash}, Started: t0})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := r.Canonical()
	want := `{"attempt":0,"caseId":"case-1","genesis":{"descriptorHash":"` + descHash + `","namespace":"ns","tenant":"acme","version":"1","workflow":"wf"},"hash":"` + r.Hash + `","input":{"a":"x","b":1},"inputHash":"d9a8fd6ea4ad5d1bd3cd6a1d4ed4aab6f1b66b47f0c9cf8ef3f6d4e4ee1e4d28","prevHash":"` + ZeroHash + `","seq":0,"started":"2026-03-01T12:00:00Z","tenant":"acme","type":"case.started","v":1}`
	// Recompute the input hash independently of the package.
	want = strings.Replace(want, "d9a8fd6ea4ad5d1bd3cd6a1d4ed4aab6f1b66b47f0c9cf8ef3f6d4e4ee1e4d28", sha256Hex([]byte(`{"a":"x","b":1}`)), 1)
	if string(c) != want {
		t.Fatalf("canonical form\n got %s\nwant %s", c, want)
	}
	body := strings.Replace(want, `"hash":"`+r.Hash+`",`, "", 1)
	if got := sha256Hex(append([]byte(Domain), body...)); got != r.Hash {
		t.Fatalf("hash %s, want SHA-256(domain||body) %s", r.Hash, got)
	}
}

// mirror is a reflection-encoded twin of the receipt used to check the
// hand-written encoder against the generic canonicalizer.
type mirror struct {
	V          int             `json:"v"`
	Tenant     string          `json:"tenant"`
	CaseID     string          `json:"caseId"`
	Seq        int64           `json:"seq"`
	Type       history.Type    `json:"type"`
	Task       string          `json:"task,omitempty"`
	Branch     string          `json:"branch,omitempty"`
	Attempt    int             `json:"attempt"`
	Input      json.RawMessage `json:"input,omitempty"`
	InputHash  string          `json:"inputHash,omitempty"`
	Output     json.RawMessage `json:"output,omitempty"`
	OutputHash string          `json:"outputHash,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	DataHash   string          `json:"dataHash,omitempty"`
	Error      *history.Error  `json:"error,omitempty"`
	Genesis    *Genesis        `json:"genesis,omitempty"`
	Started    string          `json:"started,omitempty"`
	Ended      string          `json:"ended,omitempty"`
	DurationMs int64           `json:"durationMs,omitempty"`
	Usage      *Usage          `json:"usage,omitempty"`
	PrevHash   string          `json:"prevHash"`
	Hash       string          `json:"hash"`
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeLayout)
}

func TestEncoderMatchesCanonicalizer(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	strs := []string{"", "a", "é\"\\\n\x01", "\U0001F600", "/do/0/x~1y", "\u2028"}
	pick := func() string { return strs[rng.IntN(len(strs))] }
	for i := 0; i < 500; i++ {
		ev := taskEvent(i)
		ev.Type = []history.Type{history.TaskFaulted, history.TimerFired, history.BranchJoined}[rng.IntN(3)]
		ev.Task, ev.Branch = pick(), pick()
		ev.Started = t0.Add(time.Duration(rng.Int64N(1e12)))
		ev.Ended = ev.Started.Add(time.Duration(rng.Int64N(1e10)))
		if rng.IntN(2) == 0 {
			ev.Error = &history.Error{Type: pick(), Status: rng.IntN(600), Title: pick(), Detail: pick(), Instance: pick()}
		}
		if rng.IntN(2) == 0 {
			q, _ := json.Marshal(pick())
			ev.Data = json.RawMessage(`{"z":[1,2.25,-0,1e30],"a":` + string(q) + `}`)
		}
		prev := buildChain(t, "t\u00e9nant", "c"+pick(), 1)[0]
		r, err := New(prev, prev.Tenant, prev.CaseID, ev, WithUsage(Usage{BilledMs: rng.Int64N(1e6), ReadUnits: rng.Float64() * 10, WriteUnits: float64(rng.IntN(4)) / 2, Requests: rng.Int64N(9)}))
		if err != nil {
			t.Fatal(err)
		}
		m := mirror{V: r.V, Tenant: r.Tenant, CaseID: r.CaseID, Seq: r.Seq, Type: r.Type, Task: r.Task, Branch: r.Branch, Attempt: r.Attempt,
			Input: r.Input, InputHash: r.InputHash, Output: r.Output, OutputHash: r.OutputHash, Data: r.Data, DataHash: r.DataHash,
			Error: r.Error, Genesis: r.Genesis, Started: fmtTime(r.Started), Ended: fmtTime(r.Ended), DurationMs: r.DurationMs,
			Usage: r.Usage, PrevHash: r.PrevHash, Hash: r.Hash}
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		want, err := jcs.Canonicalize(raw)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := r.Canonical()
		if !bytes.Equal(got, want) {
			t.Fatalf("encoder differs from canonicalizer\n got %s\nwant %s", got, want)
		}
		if _, err := Decode(got); err != nil {
			t.Fatalf("decode: %v", err)
		}
	}
}

func TestNewRejects(t *testing.T) {
	g := buildChain(t, "acme", "c", 1)[0]
	bad := []struct {
		name         string
		prev         *Receipt
		tenant, cid  string
		ev           history.Event
		wantWrongSeq bool
	}{
		{"no genesis first", nil, "acme", "c", taskEvent(1), false},
		{"genesis without genesis", nil, "acme", "c", history.Event{Type: history.CaseStarted}, false},
		{"genesis tenant", nil, "other", "c", genesisEvent("acme"), false},
		{"bad descriptor", nil, "acme", "c", func() history.Event {
			e := genesisEvent("acme")
			e.Genesis.DescriptorHash = strings.ToUpper(descHash)
			return e
		}(), false},
		{"second genesis", g, "acme", "c", genesisEvent("acme"), false},
		{"unknown type", g, "acme", "c", history.Event{Type: "task.exploded"}, false},
		{"bad input json", g, "acme", "c", history.Event{Type: history.TaskStarted, Input: json.RawMessage(`{"a":}`)}, false},
		{"duplicate key", g, "acme", "c", history.Event{Type: history.TaskStarted, Input: json.RawMessage(`{"a":1,"a":2}`)}, false},
		{"negative attempt", g, "acme", "c", history.Event{Type: history.TaskStarted, Attempt: -1}, false},
		{"ended before started", g, "acme", "c", history.Event{Type: history.TaskCompleted, Started: t0, Ended: t0.Add(-time.Second)}, false},
		{"other case", g, "acme", "d", taskEvent(1), true},
		{"empty tenant", nil, "", "c", genesisEvent(""), false},
		{"invalid utf8", g, "acme", "c", history.Event{Type: history.TaskStarted, Task: "\xff"}, false},
	}
	for _, c := range bad {
		_, err := New(c.prev, c.tenant, c.cid, c.ev)
		if err == nil {
			t.Errorf("%s: want error", c.name)
			continue
		}
		if c.wantWrongSeq != errors.Is(err, ErrWrongChain) {
			t.Errorf("%s: error %v", c.name, err)
		}
	}
}

func TestDetachedPayload(t *testing.T) {
	g := buildChain(t, "acme", "c", 1)[0]
	big := `{"blob":"` + strings.Repeat("x", InlineLimit) + `"}`
	r, err := New(g, "acme", "c", history.Event{Type: history.TaskCompleted, Output: json.RawMessage(big)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Output != nil || len(r.Detached) != 1 || r.Detached[0].Hash != r.OutputHash || r.OutputHash != sha256Hex([]byte(big)) {
		t.Fatalf("large output not detached: %d inline bytes, %d blobs", len(r.Output), len(r.Detached))
	}
	c, _ := r.Canonical()
	if len(c) > 2000 {
		t.Fatalf("receipt carries the payload: %d bytes", len(c))
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := buildChain(t, "acme", "c", 2)[1].Canonical()
	s := string(good)
	mut := map[string]string{
		"spacing":         strings.Replace(s, `,"caseId"`, `, "caseId"`, 1),
		"member order":    strings.Replace(strings.Replace(s, `"attempt":1,`, ``, 1), `"v":1}`, `"v":1,"attempt":1}`, 1),
		"case of name":    strings.Replace(s, `"caseId"`, `"CaseId"`, 1),
		"unknown member":  strings.Replace(s, `"v":1}`, `"v":1,"w":1}`, 1),
		"duplicate":       strings.Replace(s, `"v":1}`, `"v":1,"v":1}`, 1),
		"missing seq":     strings.Replace(s, `"seq":1,`, ``, 1),
		"seq string":      strings.Replace(s, `"seq":1,`, `"seq":"1",`, 1),
		"seq fraction":    strings.Replace(s, `"seq":1,`, `"seq":1.5,`, 1),
		"negative seq":    strings.Replace(s, `"seq":1,`, `"seq":-1,`, 1),
		"upper hex":       strings.Replace(s, `"prevHash":"`, `"prevHash":"A`, 1)[:len(s)],
		"short hash":      strings.Replace(s, `"prevHash":"`, `"prevHash":"0`, 1),
		"version":         strings.Replace(s, `"v":1}`, `"v":2}`, 1),
		"type":            strings.Replace(s, `"type":"task.completed"`, `"type":"task.done"`, 1),
		"time zone":       strings.Replace(s, `Z","task"`, `+00:00","task"`, 1),
		"not json":        s[:len(s)-1],
		"array":           `[` + s + `]`,
		"uppercase bool":  strings.Replace(s, `"attempt":1`, `"attempt":true`, 1),
		"input no hash":   strings.Replace(s, `"inputHash"`, `"inputHashX"`, 1),
		"noncanon number": strings.Replace(s, `"amount":120.5`, `"amount":120.50`, 1),
	}
	for name, m := range mut {
		if m == s {
			t.Fatalf("%s: mutation did not apply", name)
		}
		if _, err := Decode([]byte(m)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: want ErrMalformed, got %v", name, err)
		}
	}
	if _, err := Decode(append(good, '\n')); err != nil {
		t.Errorf("trailing newline: %v", err)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func kinds(fs []Finding) []Kind {
	var ks []Kind
	for _, f := range fs {
		ks = append(ks, f.Kind)
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

// forge rewrites a receipt line with edit and gives it a correct hash of
// its own, as a writer with table access could.
func forge(t *testing.T, line []byte, edit func(*Receipt)) []byte {
	t.Helper()
	v, err := jcs.Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	r, err := FromValue(v)
	if err != nil {
		t.Fatal(err)
	}
	edit(r)
	r.body = nil
	h, err := r.ComputeHash()
	if err != nil {
		t.Fatal(err)
	}
	r.Hash = h
	out, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTamperFindings(t *testing.T) {
	base := lines(t, buildChain(t, "acme", "case-9", 10))
	clone := func() [][]byte {
		out := make([][]byte, len(base))
		for i := range base {
			out[i] = slices.Clone(base[i])
		}
		return out
	}
	cases := []struct {
		name   string
		tamper func([][]byte) [][]byte
		want   []Kind
		seq    int64
	}{
		{"byte of a field", func(ls [][]byte) [][]byte {
			ls[4] = bytes.Replace(ls[4], []byte("captured"), []byte("capturex"), 1)
			return ls
		}, []Kind{HashMismatch, PayloadMismatch}, 4},
		{"task pointer", func(ls [][]byte) [][]byte {
			ls[6] = bytes.Replace(ls[6], []byte(`/do/6/charge`), []byte(`/do/6/chargf`), 1)
			return ls
		}, []Kind{HashMismatch}, 6},
		{"delete", func(ls [][]byte) [][]byte { return slices.Delete(ls, 5, 6) }, []Kind{Gap}, 5},
		{"delete tail is invisible without checkpoint", func(ls [][]byte) [][]byte { return ls[:9] }, nil, 0},
		{"swap", func(ls [][]byte) [][]byte { ls[3], ls[4] = ls[4], ls[3]; return ls }, []Kind{Gap, UnexpectedSeq}, 3},
		{"insert forged", func(ls [][]byte) [][]byte {
			f := forge(t, ls[5], func(r *Receipt) { r.Task = "/do/5/refund" })
			return slices.Insert(ls, 5, f)
		}, []Kind{BrokenLink, UnexpectedSeq}, 5},
		{"forged payload", func(ls [][]byte) [][]byte {
			ls[2] = forge(t, ls[2], func(r *Receipt) { r.Output = []byte(`{"status":"refunded"}`) })
			return ls
		}, []Kind{BrokenLink, PayloadMismatch}, 2},
		{"forged link", func(ls [][]byte) [][]byte {
			ls[7] = forge(t, ls[7], func(r *Receipt) { r.PrevHash = ZeroHash })
			return ls
		}, []Kind{BrokenLink}, 7},
		{"genesis type", func(ls [][]byte) [][]byte {
			ls[0] = forge(t, ls[0], func(r *Receipt) { r.Type = history.TaskStarted })
			return ls
		}, []Kind{BrokenLink, GenesisInvalid}, 0},
		{"genesis missing", func(ls [][]byte) [][]byte { return ls[1:] }, []Kind{Gap}, 0},
		{"foreign receipt", func(ls [][]byte) [][]byte {
			ls[8] = forge(t, ls[8], func(r *Receipt) { r.CaseID = "case-8" })
			return ls
		}, []Kind{BrokenLink, CaseMismatch}, 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := VerifyChain(decodeAll(t, c.tamper(clone())))
			if got := kinds(fs); !slices.Equal(got, c.want) {
				t.Fatalf("kinds %v, want %v: %v", got, c.want, fs)
			}
			for _, f := range fs {
				if f.Tenant != "acme" || f.CaseID == "" {
					t.Errorf("finding lacks its chain: %+v", f)
				}
			}
			if len(fs) > 0 && fs[0].Seq != c.seq {
				t.Errorf("first finding at seq %d, want %d: %v", fs[0].Seq, c.seq, fs)
			}
		})
	}
}

// Every single-byte change to a stored receipt is either rejected by the
// decoder or reported by the verifier.
func TestEveryByteFlipDetected(t *testing.T) {
	ls := lines(t, buildChain(t, "acme", "c", 3))
	for i := range ls[1] {
		for _, x := range []byte{0x01, 0x20, 0x80} {
			m := slices.Clone(ls[1])
			m[i] ^= x
			r, err := Decode(m)
			if err != nil {
				continue
			}
			rs := decodeAll(t, ls)
			rs[1] = r
			if len(VerifyChain(rs)) == 0 {
				t.Fatalf("flip %#x at %d undetected: %s", x, i, m)
			}
		}
	}
}

func TestVerifyFrom(t *testing.T) {
	rs := buildChain(t, "acme", "c", 10)
	w, fs := VerifyFrom(Watermark{Seq: 4, Hash: rs[4].Hash}, rs[5:])
	if len(fs) != 0 || w.Seq != 9 || w.Hash != rs[9].Hash {
		t.Fatalf("clean continuation: %v %v", w, fs)
	}
	w, fs = VerifyFrom(Watermark{Seq: 4, Hash: rs[3].Hash}, rs[5:])
	if !slices.Equal(kinds(fs), []Kind{BrokenLink}) || w.Seq != 4 {
		t.Fatalf("wrong watermark hash: %v %v", w, fs)
	}
	ls := lines(t, rs)
	ls[7] = bytes.Replace(ls[7], []byte("ord-"), []byte("ord_"), 1)
	w, fs = VerifyFrom(Watermark{Seq: 4, Hash: rs[4].Hash}, decodeAll(t, ls[5:]))
	if w.Seq != 6 || len(fs) == 0 || fs[0].Kind != HashMismatch || fs[0].Seq != 7 {
		t.Fatalf("tampered continuation: %v %v", w, fs)
	}
	w, fs = VerifyFrom(Watermark{Seq: 4, Hash: rs[4].Hash}, rs[6:])
	if w.Seq != 4 || !slices.Equal(kinds(fs), []Kind{Gap}) {
		t.Fatalf("gap after watermark: %v %v", w, fs)
	}
}

func TestEventKey(t *testing.T) {
	a := buildChain(t, "acme", "c", 3)
	b := buildChain(t, "acme", "d", 2)
	ev := taskEvent(2)
	other, err := New(b[1], "acme", "d", ev)
	if err != nil {
		t.Fatal(err)
	}
	ka, _ := a[2].EventKey()
	ko, _ := other.EventKey()
	if ka != ko {
		t.Fatal("same event content at another position must have the same key")
	}
	for name, change := range map[string]func(*history.Event){
		"attempt": func(e *history.Event) { e.Attempt++ },
		"task":    func(e *history.Event) { e.Task += "x" },
		"branch":  func(e *history.Event) { e.Branch = "b" },
		"output":  func(e *history.Event) { e.Output = json.RawMessage(`{}`) },
		"ended":   func(e *history.Event) { e.Ended = e.Ended.Add(time.Millisecond) },
		"type":    func(e *history.Event) { e.Type = history.TaskFaulted },
		"error":   func(e *history.Event) { e.Error = &history.Error{Type: "x", Status: 500} },
	} {
		e := taskEvent(2)
		change(&e)
		r, err := New(b[1], "acme", "d", e)
		if err != nil {
			t.Fatal(err)
		}
		if k, _ := r.EventKey(); k == ka {
			t.Errorf("%s change kept the event key", name)
		}
	}
}

func TestNilReceiptsAreFindings(t *testing.T) {
	rs := buildChain(t, "acme", "c", 3)
	fs := VerifyChain([]*Receipt{rs[0], nil, rs[1], rs[2]})
	if got := kinds(fs); !slices.Equal(got, []Kind{Malformed}) {
		t.Fatalf("%v", fs)
	}
	if got := kinds(VerifyReceipt(nil)); !slices.Equal(got, []Kind{Malformed}) {
		t.Fatal(got)
	}
	if _, fs := VerifyFrom(Watermark{}, []*Receipt{nil}); len(fs) != 1 {
		t.Fatal(fs)
	}
}

func TestNewRejectsOutOfRange(t *testing.T) {
	g := buildChain(t, "acme", "c", 1)[0]
	for name, ev := range map[string]history.Event{
		"year":   {Type: history.TaskStarted, Started: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"status": {Type: history.TaskFaulted, Error: &history.Error{Type: "x", Status: -1}},
	} {
		if _, err := New(g, "acme", "c", ev); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A receipt gives back the event it records, key included, so a chain can be
// replayed into engine state.
func TestEventRoundTrip(t *testing.T) {
	g := &history.Genesis{Tenant: "acme", Namespace: "payments", Workflow: "pay", Version: "1.0.0",
		DescriptorHash: strings.Repeat("ab", 32)}
	evs := []history.Event{
		{Type: history.CaseStarted, Input: json.RawMessage(`{"amount":12.5}`), Genesis: g},
		{Type: history.TaskCompleted, Task: "/do/0/check", Key: "/0[2]", Attempt: 1,
			Input: json.RawMessage(`{"b":1,"a":2}`), Output: json.RawMessage(`[1,2]`), Data: json.RawMessage(`{"then":"x"}`)},
		{Type: history.TaskFaulted, Task: "/do/1/x", Key: "/1", Error: &history.Error{Type: "t", Status: 400, Instance: "/do/1/x"}},
	}
	var prev *Receipt
	for i, ev := range evs {
		r, err := New(prev, "acme", "case-1", ev)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := Decode(mustCanonical(t, r))
		if err != nil {
			t.Fatal(err)
		}
		got, err := dec.Event(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.Type != ev.Type || got.Task != ev.Task || got.Key != ev.Key || got.Attempt != ev.Attempt {
			t.Fatalf("event %d: got %+v, want %+v", i, got, ev)
		}
		for _, pair := range [][2]json.RawMessage{{got.Input, ev.Input}, {got.Output, ev.Output}, {got.Data, ev.Data}} {
			if !jsonEqual(t, pair[0], pair[1]) {
				t.Fatalf("event %d: payload %s, want %s", i, pair[0], pair[1])
			}
		}
		if (got.Genesis == nil) != (ev.Genesis == nil) || (got.Genesis != nil && *got.Genesis != *ev.Genesis) {
			t.Fatalf("event %d: genesis %+v", i, got.Genesis)
		}
		if (got.Error == nil) != (ev.Error == nil) || (got.Error != nil && *got.Error != *ev.Error) {
			t.Fatalf("event %d: error %+v", i, got.Error)
		}
		prev = r
	}
	// The key is part of the hashed content.
	a, _ := New(nil, "acme", "c", evs[0])
	b1, _ := New(a, "acme", "c", history.Event{Type: history.TimerFired, Key: "/0~retry1"})
	b2, _ := New(a, "acme", "c", history.Event{Type: history.TimerFired, Key: "/0~retry2"})
	if b1.Hash == b2.Hash {
		t.Fatal("receipts differing only in key hash alike")
	}
}

func TestEventDetachedPayload(t *testing.T) {
	big := json.RawMessage(`"` + strings.Repeat("x", InlineLimit+10) + `"`)
	g := &history.Genesis{Tenant: "t", Namespace: "n", Workflow: "w", Version: "1", DescriptorHash: strings.Repeat("00", 32)}
	r, err := New(nil, "t", "c", history.Event{Type: history.CaseStarted, Input: big, Genesis: g})
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[string][]byte{}
	for _, b := range r.Detached {
		blobs[b.Hash] = b.Bytes
	}
	if _, err := r.Event(nil); err == nil {
		t.Fatal("a detached payload resolved without a blob store")
	}
	ev, err := r.Event(func(h string) ([]byte, error) { return blobs[h], nil })
	if err != nil || !jsonEqual(t, ev.Input, big) {
		t.Fatalf("resolved input: %v", err)
	}
	if _, err := r.Event(func(string) ([]byte, error) { return []byte(`"forged"`), nil }); err == nil {
		t.Fatal("a blob that does not match its hash was accepted")
	}
}

func mustCanonical(t *testing.T, r *Receipt) []byte {
	t.Helper()
	b, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// A correctly hashed and linked receipt after the terminal one, and a second
// genesis, are findings of their own kinds, from a whole chain and from a
// watermark that remembers the end.
func TestAfterTerminalAndSecondGenesis(t *testing.T) {
	rs := buildChain(t, "acme", "c", 4)
	end := func(prev *Receipt) *Receipt {
		r, err := New(prev, "acme", "c", history.Event{Type: history.CaseCompleted, Output: json.RawMessage(`{"ok":true}`), Started: t0})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	done := append(slices.Clone(rs), end(rs[3]))
	if fs := VerifyChain(done); len(fs) != 0 {
		t.Fatalf("ended chain: %v", fs)
	}
	w, _ := VerifyFrom(Watermark{Seq: -1}, done)
	if w.Ended != 4 || w.Seq != 4 {
		t.Fatalf("watermark of an ended chain: %+v", w)
	}
	again := append(slices.Clone(done), end(done[4]))
	fs := VerifyChain(again)
	if !slices.Equal(kinds(fs), []Kind{AfterTerminal}) || fs[0].Seq != 5 {
		t.Fatalf("second case.completed: %v", fs)
	}
	if _, fs := VerifyFrom(w, again[5:]); !slices.Equal(kinds(fs), []Kind{AfterTerminal}) {
		t.Fatalf("after terminal from a watermark: %v", fs)
	}
	if got := (Watermark{Seq: 3, Hash: rs[3].Hash}).Through(again[4:]); got.Ended != 4 || got.Seq != 5 {
		t.Fatalf("Through: %+v", got)
	}

	ls := lines(t, rs)
	ls[3] = forge(t, ls[3], func(r *Receipt) {
		r.Type = history.CaseStarted
		r.Genesis = &Genesis{Tenant: "acme", Namespace: "payments", Workflow: "charge", Version: "1.0.0", DescriptorHash: descHash}
	})
	fs = VerifyChain(decodeAll(t, ls))
	if !slices.Equal(kinds(fs), []Kind{SecondGenesis}) || fs[0].Seq != 3 {
		t.Fatalf("second genesis: %v", fs)
	}
}
