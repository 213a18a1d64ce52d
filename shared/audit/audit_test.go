package audit

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/merkle"
	"github.com/knhk/knhk/shared/signer"
)

var (
	day  = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	from = day
	to   = day.Add(48 * time.Hour)
)

// ended builds a two-receipt case that ended at end; big detaches its
// output.
func ended(t testing.TB, caseID string, end time.Time, big bool) []*receipt.Receipt {
	t.Helper()
	out := json.RawMessage(`{"ok":true}`)
	if big {
		out = json.RawMessage(`{"blob":"` + strings.Repeat("x", receipt.InlineLimit) + `"}`)
	}
	var rs []*receipt.Receipt
	var prev *receipt.Receipt
	for _, ev := range []history.Event{
		{Type: history.CaseStarted, Input: json.RawMessage(`{}`), Started: end.Add(-time.Second), Genesis: &history.Genesis{Tenant: "acme",
			Namespace: "ns", Workflow: "wf", Version: "1", DescriptorHash: fmt.Sprintf("%064x", 7)}},
		{Type: history.CaseCompleted, Output: out, Started: end},
	} {
		r, err := receipt.New(prev, "acme", caseID, ev)
		if err != nil {
			t.Fatal(err)
		}
		rs, prev = append(rs, r), r
	}
	return rs
}

// fixture is a good export of [from, to) and what it was made from.
type fixture struct {
	fs      fstest.MapFS
	key     *signer.Local
	pub     crypto.PublicKey
	entries []checkpoint.Entry // the whole log
	cases   int                // cases in the period
}

// build makes a log of four checkpoints: the anchor (before the period,
// with a case that ended before it), two in the period splitting n cases,
// and one after it that signs a case ended just before to and one ended
// after (and the extra heads); every signed case is archived against the
// checkpoint that was the latest when it was signed, and the period is
// exported.
func build(t testing.TB, n int, extra ...merkle.Head) fixture {
	t.Helper()
	ctx := context.Background()
	key, err := signer.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := key.PublicKey(ctx)
	log, err := checkpoint.VerifyLog(nil, pub)
	if err != nil {
		t.Fatal(err)
	}
	type batch struct {
		at    time.Time
		cases map[string]time.Time
	}
	in1, in2 := map[string]time.Time{}, map[string]time.Time{}
	for i := range n {
		id := fmt.Sprintf("c-%04d", i)
		if i%2 == 0 {
			in1[id] = day.Add(time.Hour + time.Duration(i)*time.Millisecond)
		} else {
			in2[id] = day.Add(25*time.Hour + time.Duration(i)*time.Millisecond)
		}
	}
	batches := []batch{
		{day.Add(-12 * time.Hour), map[string]time.Time{"before": day.Add(-13 * time.Hour)}},
		{day.Add(12 * time.Hour), in1},
		{day.Add(36 * time.Hour), in2},
		{to.Add(30 * time.Minute), map[string]time.Time{"late": to.Add(-time.Second), "after": to.Add(10 * time.Minute)}},
	}
	var index []archive.Summary
	objects := map[string][]byte{}
	for b, bt := range batches {
		chains := map[string][]*receipt.Receipt{}
		var heads []merkle.Head
		for _, id := range slices.Sorted(maps.Keys(bt.cases)) {
			end := bt.cases[id]
			rs := ended(t, id, end, id == "c-0000")
			last := rs[len(rs)-1]
			chains[id] = rs
			heads = append(heads, merkle.Head{Tenant: last.Tenant, CaseID: id, Seq: last.Seq, Hash: last.Hash})
		}
		if b == 3 {
			heads = append(heads, extra...)
		}
		e, _, err := log.Append(ctx, heads, fmt.Sprintf("p%d", b), bt.at, key)
		if err != nil {
			t.Fatal(err)
		}
		log.Add(e)
		for _, id := range slices.Sorted(maps.Keys(chains)) {
			rs := chains[id]
			refs := log.Case(id)
			p, h, err := log.Proof(refs[len(refs)-1])
			if err != nil {
				t.Fatal(err)
			}
			blobs := map[string][]byte{}
			for _, r := range rs {
				for _, d := range r.Detached {
					blobs[d.Hash] = d.Bytes
				}
			}
			a, err := archive.New(rs, blobs, p, h, pub)
			if err != nil {
				t.Fatal(err)
			}
			data, err := archive.Encode(a)
			if err != nil {
				t.Fatal(err)
			}
			s, err := archive.Summarize(a, data)
			if err != nil {
				t.Fatal(err)
			}
			s.VersionID = "v-" + id
			objects[s.SHA256] = data
			if !s.Ended.Before(from) && s.Ended.Before(to) {
				index = append(index, s)
			}
		}
	}
	slices.SortFunc(index, func(a, b archive.Summary) int { return a.Ended.Compare(b.Ended) }) // as the index lists them
	entries := log.Entries()
	set, anchor, err := Select(entries, from, to, index)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Assemble(from, to, to.Add(time.Hour), set, anchor, index, pub)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for _, s := range index {
		if err := CheckObject(s, objects[s.SHA256]); err != nil {
			t.Fatal(err)
		}
		fsys[CasePath(s.SHA256)] = &fstest.MapFile{Data: objects[s.SHA256]}
	}
	for p, data := range files {
		fsys[p] = &fstest.MapFile{Data: data}
	}
	return fixture{fs: fsys, key: key, pub: pub, entries: entries, cases: len(index)}
}

// manifest decodes the fixture's manifest.
func (f fixture) manifest(t *testing.T) *Manifest {
	t.Helper()
	m, err := DecodeManifest(f.fs[ManifestFile].Data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// write sets a file and its manifest entry, as someone who rewrites the
// unsigned parts of an export would.
func (f fixture) write(t *testing.T, p string, data []byte) {
	t.Helper()
	m := f.manifest(t)
	sum := sha256.Sum256(data)
	fl := File{Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	found := false
	for i := range m.Files {
		if m.Files[i].Path == p {
			m.Files[i], found = fl, true
		}
	}
	if !found {
		m.Files = append(m.Files, fl)
		for i := len(m.Files) - 1; i > 0 && m.Files[i].Path < m.Files[i-1].Path; i-- {
			m.Files[i], m.Files[i-1] = m.Files[i-1], m.Files[i]
		}
	}
	f.fs[p] = &fstest.MapFile{Data: data}
	f.putManifest(t, m)
}

// remove deletes a file and its manifest entry.
func (f fixture) remove(t *testing.T, p string) {
	t.Helper()
	m := f.manifest(t)
	for i := range m.Files {
		if m.Files[i].Path == p {
			m.Files = append(m.Files[:i], m.Files[i+1:]...)
			break
		}
	}
	delete(f.fs, p)
	f.putManifest(t, m)
}

func (f fixture) putManifest(t *testing.T, m *Manifest) {
	t.Helper()
	b, err := EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	f.fs[ManifestFile] = &fstest.MapFile{Data: b}
}

func (f fixture) index(t *testing.T) []archive.Summary {
	t.Helper()
	var ss []archive.Summary
	if err := json.Unmarshal(f.fs[IndexFile].Data, &ss); err != nil {
		t.Fatal(err)
	}
	return ss
}

func (f fixture) setIndex(t *testing.T, ss []archive.Summary) {
	t.Helper()
	b, _ := json.Marshal(ss)
	f.write(t, IndexFile, b)
}

func (f fixture) checkpoints(t *testing.T) []checkpoint.Entry {
	t.Helper()
	var cf checkpointsFile
	if err := json.Unmarshal(f.fs[CheckpointsFile].Data, &cf); err != nil {
		t.Fatal(err)
	}
	return cf.Entries
}

func (f fixture) setCheckpoints(t *testing.T, es []checkpoint.Entry) {
	t.Helper()
	b, _ := json.Marshal(checkpointsFile{V: 1, Entries: es})
	f.write(t, CheckpointsFile, b)
}

// caseOf returns the index entry of a case.
func (f fixture) caseOf(t *testing.T, id string) archive.Summary {
	t.Helper()
	for _, s := range f.index(t) {
		if s.CaseID == id {
			return s
		}
	}
	t.Fatalf("case %s not indexed", id)
	return archive.Summary{}
}

// fork signs, with the log's key, a checkpoint in the place of e whose
// tree of the same size is not an extension of its predecessor's.
func (f fixture) fork(t *testing.T, e checkpoint.Entry) checkpoint.Entry {
	t.Helper()
	fake := make([]merkle.Head, e.Head.Size)
	for i := range fake {
		fake[i] = merkle.Head{Tenant: "acme", CaseID: fmt.Sprintf("forged-%d", i), Seq: 1, Hash: fmt.Sprintf("%064x", i)}
	}
	h := e.Head
	h.Root = merkle.FromHeads(fake).Root().String()
	sig, _, err := f.key.SignMessage(context.Background(), h.Message())
	if err != nil {
		t.Fatal(err)
	}
	h.Signature = base64.StdEncoding.EncodeToString(sig)
	if err := h.Verify(f.pub); err != nil {
		t.Fatal(err)
	}
	e.Head = h
	return e
}

// TestVerify: a good export verifies and reports its period, anchor,
// checkpoints and cases; each way an export can be incomplete or changed
// fails with the error that names it.
func TestVerify(t *testing.T) {
	other, err := signer.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	otherPub, _ := other.PublicKey(context.Background())
	tests := []struct {
		name    string
		change  func(t *testing.T, f fixture)
		key     crypto.PublicKey // the key the auditor supplies; the log's when nil
		witness func(f fixture) *checkpoint.TreeHead
		extra   []merkle.Head // heads the last checkpoint also signs
		want    error         // nil: verifies
	}{
		{name: "good export", change: func(*testing.T, fixture) {}},
		{name: "missing case (file and manifest entry removed)", want: ErrMissingCase, change: func(t *testing.T, f fixture) {
			f.remove(t, CasePath(f.caseOf(t, "c-0001").SHA256))
		}},
		{name: "missing case file (still in the manifest)", want: ErrMissingCase, change: func(t *testing.T, f fixture) {
			delete(f.fs, CasePath(f.caseOf(t, "c-0002").SHA256))
		}},
		{name: "dropped checkpoint", want: ErrSequence, change: func(t *testing.T, f fixture) {
			es := f.checkpoints(t)
			f.setCheckpoints(t, append(es[:2:2], es[3:]...))
		}},
		{name: "dropped anchor", want: ErrPeriod, change: func(t *testing.T, f fixture) {
			f.setCheckpoints(t, f.checkpoints(t)[1:])
		}},
		{name: "dropped anchor, manifest claims none", want: ErrPeriod, change: func(t *testing.T, f fixture) {
			f.setCheckpoints(t, f.checkpoints(t)[1:])
			m := f.manifest(t)
			m.Anchor = nil
			f.putManifest(t, m)
		}},
		{name: "checkpoint does not extend its predecessor", want: ErrNotExtension, change: func(t *testing.T, f fixture) {
			es := f.checkpoints(t)
			es[len(es)-1] = f.fork(t, es[len(es)-1])
			f.setCheckpoints(t, es)
		}},
		{name: "modified archived receipt (index and manifest rewritten to match)", want: ErrCase, change: func(t *testing.T, f fixture) {
			ss := f.index(t)
			i := slices.IndexFunc(ss, func(s archive.Summary) bool { return s.CaseID == "c-0001" })
			old := CasePath(ss[i].SHA256)
			data := []byte(strings.Replace(string(f.fs[old].Data), `"ok":true`, `"ok":false`, 1))
			if string(data) == string(f.fs[old].Data) {
				t.Fatal("the receipt was not changed")
			}
			sum := sha256.Sum256(data)
			ss[i].SHA256 = hex.EncodeToString(sum[:])
			f.remove(t, old)
			f.write(t, CasePath(ss[i].SHA256), data)
			f.setIndex(t, ss)
		}},
		{name: "modified archived receipt", want: ErrManifest, change: func(t *testing.T, f fixture) {
			p := CasePath(f.caseOf(t, "c-0003").SHA256)
			data := []byte(strings.Replace(string(f.fs[p].Data), `"ok":true`, `"ok":false`, 1))
			if string(data) == string(f.fs[p].Data) {
				t.Fatal("the receipt was not changed")
			}
			f.fs[p].Data = data
		}},
		{name: "wrong key", key: otherPub, want: ErrKey, change: func(*testing.T, fixture) {}},
		{name: "wrong key, in the export too", key: otherPub, want: ErrSequence, change: func(t *testing.T, f fixture) {
			pem, _ := checkpoint.EncodePublicKeyPEM(otherPub)
			f.write(t, PublicKeyFile, pem)
		}},
		{name: "case dropped from the index", want: ErrIndex, change: func(t *testing.T, f fixture) {
			f.setIndex(t, f.index(t)[1:])
		}},
		{name: "index entry outside the period", want: ErrIndex, change: func(t *testing.T, f fixture) {
			ss := f.index(t)
			ss[0].Ended = to
			f.setIndex(t, ss)
		}},
		{name: "unlisted case file", want: ErrManifest, change: func(t *testing.T, f fixture) {
			f.fs[CasePath(fmt.Sprintf("%064x", 1))] = &fstest.MapFile{Data: []byte("{}")}
		}},
		{name: "witness held", change: func(*testing.T, fixture) {}, witness: func(f fixture) *checkpoint.TreeHead { return &f.entries[1].Head }},
		{name: "witness before the export", want: ErrWitness, change: func(t *testing.T, f fixture) {
			f.setCheckpoints(t, f.checkpoints(t)[2:])
			m := f.manifest(t)
			m.Anchor = ptr(2)
			f.putManifest(t, m)
		}, witness: func(f fixture) *checkpoint.TreeHead { return &f.entries[1].Head }},
		{name: "witness differs", want: ErrWitness, change: func(*testing.T, fixture) {}, witness: func(f fixture) *checkpoint.TreeHead {
			h := f.entries[2].Head
			h.Period = "other"
			return &h
		}},
		{name: "a later checkpoint signs an archived case again", want: ErrCase, change: func(*testing.T, fixture) {},
			extra: []merkle.Head{{Tenant: "acme", CaseID: "c-0001", Seq: 7, Hash: fmt.Sprintf("%064x", 9)}}},
		{name: "a case's signed head moves back", want: ErrSequence, change: func(*testing.T, fixture) {},
			extra: []merkle.Head{{Tenant: "acme", CaseID: "c-0001", Seq: 0, Hash: fmt.Sprintf("%064x", 9)}}},
		{name: "manifest missing", want: ErrManifest, change: func(t *testing.T, f fixture) {
			delete(f.fs, ManifestFile)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := build(t, 6, tc.extra...)
			tc.change(t, f)
			key := tc.key
			if key == nil {
				key = f.pub
			}
			var w *checkpoint.TreeHead
			if tc.witness != nil {
				w = tc.witness(f)
			}
			rep, err := Verify(f.fs, key, w)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("good export: %v", err)
				}
				if rep.Cases != f.cases || rep.Cases != 7 || rep.Checkpoints != 4 || rep.Anchor == nil || *rep.Anchor != 0 ||
					rep.From != from.Format(TimeLayout) || rep.Latest.Seq != 3 {
					t.Fatalf("report %+v", rep)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestSelect: the exported sequence runs from the anchor to the last
// checkpoint of the period, widened to the checkpoints the cases are
// proved in; with no checkpoint before the period there is no anchor.
func TestSelect(t *testing.T) {
	f := build(t, 2)
	tests := []struct {
		name     string
		from, to time.Time
		index    []archive.Summary
		first    uint64
		n        int
		anchor   *uint64
	}{
		{name: "period with anchor", from: from, to: to, first: 0, n: 3, anchor: ptr(0)},
		{name: "widened to a case's checkpoint", from: from, to: to, index: []archive.Summary{{CaseID: "late", Checkpoint: 3}}, first: 0, n: 4, anchor: ptr(0)},
		{name: "no anchor", from: day.Add(-30 * 24 * time.Hour), to: day, first: 0, n: 1},
		{name: "later period", from: to, to: to.Add(time.Hour), first: 2, n: 2, anchor: ptr(2)},
		{name: "nothing", from: day.Add(-30 * 24 * time.Hour), to: day.Add(-29 * 24 * time.Hour), n: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, anchor, err := Select(f.entries, tc.from, tc.to, tc.index)
			if err != nil {
				t.Fatal(err)
			}
			if len(set) != tc.n || (tc.n > 0 && set[0].Head.Seq != tc.first) {
				t.Fatalf("%d checkpoints from %v, want %d from %d", len(set), set, tc.n, tc.first)
			}
			if (anchor == nil) != (tc.anchor == nil) || (anchor != nil && *anchor != *tc.anchor) {
				t.Fatalf("anchor %v, want %v", anchor, tc.anchor)
			}
		})
	}
}

func ptr(v uint64) *uint64 { return &v }

// FuzzDecodeManifest: whatever decodes re-encodes to a manifest that
// decodes to the same, and names only files of an export.
func FuzzDecodeManifest(f *testing.F) {
	fx := build(f, 2)
	f.Add(fx.fs[ManifestFile].Data)
	f.Add([]byte(`{"format":"knhk.audit","v":1,"from":"2026-05-01T00:00:00Z","to":"2026-05-02T00:00:00Z","created":"2026-05-02T00:00:00Z","anchor":null,"files":[{"path":"../x","size":1,"sha256":"00"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeManifest(data)
		if err != nil {
			if !errors.Is(err, ErrManifest) {
				t.Fatalf("error not wrapping ErrManifest: %v", err)
			}
			return
		}
		for _, fl := range m.Files {
			if !ValidPath(fl.Path) || strings.Contains(fl.Path, "..") || strings.HasPrefix(fl.Path, "/") {
				t.Fatalf("accepted path %q", fl.Path)
			}
		}
		b, err := EncodeManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeManifest(b)
		if err != nil {
			t.Fatalf("re-encoded manifest does not decode: %v", err)
		}
		b2, _ := EncodeManifest(again)
		if string(b) != string(b2) {
			t.Fatalf("manifest does not round-trip")
		}
	})
}

// BenchmarkVerify1000 verifies an export of 1,000 cases (four checkpoints).
func BenchmarkVerify1000(b *testing.B) {
	f := build(b, 999) // 999 in the two period checkpoints, and "late"
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := Verify(f.fs, f.pub, nil)
		if err != nil || rep.Cases != 1000 {
			b.Fatalf("%v %+v", err, rep)
		}
	}
}

// TestAssemble: an export of a period with no checkpoints and no cases
// verifies; Assemble refuses a period that is not one, an index entry
// without a SHA-256 and two entries naming one object; CheckObject refuses
// bytes that are not the indexed object.
func TestAssemble(t *testing.T) {
	f := build(t, 2)
	files, err := Assemble(from, to, to, nil, nil, nil, f.pub)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for p, data := range files {
		fsys[p] = &fstest.MapFile{Data: data}
	}
	if rep, err := Verify(fsys, f.pub, nil); err != nil || rep.Cases != 0 || rep.Checkpoints != 0 {
		t.Fatalf("empty export: %+v %v", rep, err)
	}
	good := f.index(t)[0]
	noSum := good
	noSum.SHA256 = ""
	tests := []struct {
		name     string
		from, to time.Time
		index    []archive.Summary
	}{
		{"empty period", to, to, nil},
		{"reversed period", to, from, nil},
		{"no sha256", from, to, []archive.Summary{noSum}},
		{"one object twice", from, to, []archive.Summary{good, good}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Assemble(tc.from, tc.to, to, nil, nil, tc.index, f.pub); err == nil {
				t.Fatal("assembled")
			}
		})
	}
	data := f.fs[CasePath(good.SHA256)].Data
	if err := CheckObject(good, data); err != nil {
		t.Fatalf("the indexed object: %v", err)
	}
	if err := CheckObject(good, append(data[:len(data):len(data)], ' ')); err == nil {
		t.Fatal("CheckObject accepted other bytes")
	}
}
