package audit

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/merkle"
)

// Errors of Verify, each naming what failed; ErrManifest is the fifth.
var (
	ErrKey          = errors.New("the export's public key is not the supplied key")
	ErrSequence     = errors.New("the checkpoints are not one append-only sequence")
	ErrNotExtension = errors.New("a checkpoint does not extend its predecessor")
	ErrPeriod       = errors.New("the checkpoints do not anchor the period")
	ErrIndex        = errors.New("the archive index of the period does not match the cases")
	ErrMissingCase  = errors.New("a case of the period's index is missing")
	ErrCase         = errors.New("an archived case does not verify")
	ErrWitness      = errors.New("the export does not hold the witnessed checkpoint")
)

// maxSmall bounds the checkpoints, index and key files read.
const maxSmall = 1 << 30

// Report is what a verified export proves.
type Report struct {
	From        string               `json:"from"`
	To          string               `json:"to"`
	Anchor      *uint64              `json:"anchor"`
	Checkpoints int                  `json:"checkpoints"`
	First       *checkpoint.TreeHead `json:"first,omitempty"`
	Latest      *checkpoint.TreeHead `json:"latest,omitempty"`
	Cases       int                  `json:"cases"`
	Files       int                  `json:"files"`
}

// Verify checks an export offline with only the checkpoint public key, in
// this order: the manifest decodes and the checkpoints, index and key
// files match it; the export's key is pub; the checkpoints form one
// append-only sequence (signatures, numbering, predecessor links, sizes,
// consistency proofs) that holds the witness, if any, anchored before the
// period; every case the index
// lists is present, matches the manifest and its index entry, ended in the
// period, verifies (chain, payloads, inclusion) and is proved in a
// checkpoint of the export that no later checkpoint contradicts; no case
// file is unlisted or outside the index. A witness, when not nil, is a tree
// head kept from before (the previous audit's latest) that the export must
// hold unchanged. The first failure is returned.
func Verify(fsys fs.FS, pub crypto.PublicKey, witness *checkpoint.TreeHead) (*Report, error) {
	raw, err := readLimited(fsys, ManifestFile, MaxManifest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	m, err := DecodeManifest(raw)
	if err != nil {
		return nil, err
	}
	from, to, _ := m.Period()
	rep := &Report{From: m.From, To: m.To, Anchor: m.Anchor, Files: len(m.Files)}

	keyPEM, err := listed(fsys, m, PublicKeyFile, maxSmall)
	if err != nil {
		return nil, err
	}
	if err := sameKey(keyPEM, pub); err != nil {
		return nil, err
	}

	cpData, err := listed(fsys, m, CheckpointsFile, maxSmall)
	if err != nil {
		return nil, err
	}
	var cf checkpointsFile
	if err := strict(cpData, &cf); err != nil || cf.V != 1 {
		return nil, fmt.Errorf("%w: %s: not a version 1 checkpoint file (%v)", ErrSequence, CheckpointsFile, err)
	}
	es := cf.Entries
	if err := verifySequence(es, pub); err != nil {
		return nil, err
	}
	if witness != nil {
		if err := checkWitness(es, *witness); err != nil {
			return nil, err
		}
	}
	if err := checkAnchor(es, m.Anchor, from); err != nil {
		return nil, err
	}
	rep.Checkpoints = len(es)
	if len(es) > 0 {
		rep.First, rep.Latest = &es[0].Head, &es[len(es)-1].Head
	}

	idxData, err := listed(fsys, m, IndexFile, maxSmall)
	if err != nil {
		return nil, err
	}
	var index []archive.Summary
	if err := strict(idxData, &index); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrIndex, IndexFile, err)
	}
	last := lastSigned(es)
	inIndex := make(map[string]bool, len(index))
	seen := make(map[string]bool, len(index))
	for _, s := range index {
		if seen[s.CaseID] {
			return nil, fmt.Errorf("%w: case %s is listed twice", ErrIndex, s.CaseID)
		}
		seen[s.CaseID] = true
		if s.Ended.Before(from) || !s.Ended.Before(to) {
			return nil, fmt.Errorf("%w: case %s ended %s, outside [%s, %s)", ErrIndex, s.CaseID, s.Ended.Format(time.RFC3339Nano), m.From, m.To)
		}
		if !isHash(s.SHA256) {
			return nil, fmt.Errorf("%w: case %s: sha256 %q", ErrIndex, s.CaseID, s.SHA256)
		}
		p := CasePath(s.SHA256)
		inIndex[p] = true
		if err := verifyCase(fsys, m, p, s, es, last, pub); err != nil {
			return nil, err
		}
	}
	rep.Cases = len(index)
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, CasesDir+"/") && !inIndex[f.Path] {
			return nil, fmt.Errorf("%w: %s is not a case of the index", ErrIndex, f.Path)
		}
	}
	dir, err := fs.ReadDir(fsys, CasesDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: read %s: %w", ErrManifest, CasesDir, err)
	}
	for _, d := range dir {
		if p := CasesDir + "/" + d.Name(); !inIndex[p] {
			return nil, fmt.Errorf("%w: %s is not listed", ErrManifest, p)
		}
	}
	return rep, nil
}

// verifyCase checks one indexed case's file.
func verifyCase(fsys fs.FS, m *Manifest, p string, s archive.Summary, es []checkpoint.Entry, last map[string]int64, pub crypto.PublicKey) error {
	if _, ok := m.File(p); !ok {
		return fmt.Errorf("%w: case %s (%s) is not in the manifest", ErrMissingCase, s.CaseID, p)
	}
	data, err := listed(fsys, m, p, archive.MaxSize)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: case %s: %w", ErrMissingCase, s.CaseID, err)
	}
	if err != nil {
		return err
	}
	a, err := archive.Decode(data)
	if err != nil {
		return fmt.Errorf("%w: case %s: %w", ErrCase, s.CaseID, err)
	}
	if err := archive.Verify(a, pub); err != nil {
		return fmt.Errorf("%w: case %s: %w", ErrCase, s.CaseID, err)
	}
	got, err := archive.Summarize(a, data)
	if err != nil {
		return fmt.Errorf("%w: case %s: %w", ErrCase, s.CaseID, err)
	}
	if got.Tenant != s.Tenant || got.CaseID != s.CaseID || !got.Ended.Equal(s.Ended) || got.HeadSeq != s.HeadSeq ||
		got.HeadHash != s.HeadHash || got.Checkpoint != s.Checkpoint || got.Key != s.Key || got.Size != s.Size || got.SHA256 != s.SHA256 {
		return fmt.Errorf("%w: case %s: the object is not the one its index entry describes", ErrIndex, s.CaseID)
	}
	if len(es) == 0 || a.TreeHead.Seq < es[0].Head.Seq || a.TreeHead.Seq > es[len(es)-1].Head.Seq ||
		es[a.TreeHead.Seq-es[0].Head.Seq].Head != a.TreeHead {
		return fmt.Errorf("%w: case %s is proved in checkpoint %d, which is not a checkpoint of the export", ErrCase, s.CaseID, a.TreeHead.Seq)
	}
	if seq, ok := last[a.CaseID]; ok && seq > a.Proof.Leaf.Seq {
		return fmt.Errorf("%w: case %s: a checkpoint signs head seq %d after the archived terminal seq %d", ErrCase, s.CaseID, seq, a.Proof.Leaf.Seq)
	}
	return nil
}

// verifySequence checks that es is one contiguous part of an append-only
// checkpoint log signed by pub. The first entry is taken on its signature
// (its predecessors are not exported); if it is the log's first, it must
// have no predecessor. A case's signed heads only move forward, in one
// tenant.
func verifySequence(es []checkpoint.Entry, pub crypto.PublicKey) error {
	var prev *checkpoint.TreeHead
	last := map[string]merkle.Head{}
	for i := range es {
		h := &es[i].Head
		fail := func(target error, format string, a ...any) error {
			return fmt.Errorf("%w: checkpoint %d (%s): %s", target, h.Seq, h.Period, fmt.Sprintf(format, a...))
		}
		if err := h.Verify(pub); err != nil {
			return fail(ErrSequence, "%v", err)
		}
		if !sortedLeaves(es[i].Leaves) {
			return fail(ErrSequence, "leaves not sorted by tenant and case, or a case twice")
		}
		for _, lf := range es[i].Leaves {
			if l, ok := last[lf.CaseID]; ok && (lf.Seq <= l.Seq || lf.Tenant != l.Tenant) {
				return fail(ErrSequence, "case %s moves from %s seq %d to %s seq %d", lf.CaseID, l.Tenant, l.Seq, lf.Tenant, lf.Seq)
			}
			last[lf.CaseID] = lf
		}
		root, _ := merkle.ParseHash(h.Root)
		proof, err := parseHashes(es[i].Consistency)
		if err != nil {
			return fail(ErrSequence, "consistency proof: %v", err)
		}
		if prev == nil {
			if h.Seq == 0 {
				if h.Prev != merkle.ZeroHash || h.Size != uint64(len(es[i].Leaves)) {
					return fail(ErrSequence, "the log's first checkpoint has a predecessor or %d leaves for size %d", len(es[i].Leaves), h.Size)
				}
				if err := merkle.VerifyConsistency(0, h.Size, merkle.Hash{}, root, proof); err != nil {
					return fail(ErrNotExtension, "%v", err)
				}
			}
			prev = h
			continue
		}
		if h.Seq != prev.Seq+1 {
			return fail(ErrSequence, "follows checkpoint %d: a checkpoint is missing or out of order", prev.Seq)
		}
		if d := prev.Digest(); h.Prev != hex.EncodeToString(d[:]) {
			return fail(ErrSequence, "names predecessor %s, not checkpoint %d", h.Prev, prev.Seq)
		}
		if h.Size != prev.Size+uint64(len(es[i].Leaves)) {
			return fail(ErrSequence, "size %d, want %d (previous size %d + %d leaves)", h.Size, prev.Size+uint64(len(es[i].Leaves)), prev.Size, len(es[i].Leaves))
		}
		prevRoot, _ := merkle.ParseHash(prev.Root)
		if err := merkle.VerifyConsistency(prev.Size, h.Size, prevRoot, root, proof); err != nil {
			return fail(ErrNotExtension, "not an extension of checkpoint %d: %v", prev.Seq, err)
		}
		prev = h
	}
	return nil
}

// checkAnchor checks that the sequence starts before the period: at the
// anchor, the last checkpoint made before from, or at the log's first
// checkpoint when there is no anchor.
func checkAnchor(es []checkpoint.Entry, anchor *uint64, from time.Time) error {
	if len(es) == 0 {
		if anchor != nil {
			return fmt.Errorf("%w: anchor %d, but no checkpoints", ErrPeriod, *anchor)
		}
		return nil
	}
	first := es[0].Head.Seq
	made := func(i int) time.Time {
		t, _ := time.Parse(checkpoint.TimeLayout, es[i].Head.Time) // verified by TreeHead.Verify
		return t
	}
	if anchor == nil {
		if first != 0 {
			return fmt.Errorf("%w: no anchor, and the sequence starts at checkpoint %d, not the log's first", ErrPeriod, first)
		}
		for i := range es {
			if made(i).Before(from) {
				return fmt.Errorf("%w: no anchor, but checkpoint %d was made before the period", ErrPeriod, es[i].Head.Seq)
			}
		}
		return nil
	}
	a := *anchor
	if a < first || a > es[len(es)-1].Head.Seq {
		return fmt.Errorf("%w: the anchor, checkpoint %d, is not exported", ErrPeriod, a)
	}
	i := int(a - first)
	if !made(i).Before(from) {
		return fmt.Errorf("%w: the anchor, checkpoint %d, was made at %s, not before the period", ErrPeriod, a, es[i].Head.Time)
	}
	if i+1 < len(es) && made(i+1).Before(from) {
		return fmt.Errorf("%w: checkpoint %d after the anchor was also made before the period", ErrPeriod, a+1)
	}
	return nil
}

// checkWitness checks that es holds the witnessed head w unchanged.
func checkWitness(es []checkpoint.Entry, w checkpoint.TreeHead) error {
	switch {
	case len(es) == 0:
		return fmt.Errorf("%w: checkpoint %d: the export has no checkpoints", ErrWitness, w.Seq)
	case w.Seq < es[0].Head.Seq:
		return fmt.Errorf("%w: checkpoint %d is before the export's first, %d: the checkpoints between are not exported", ErrWitness, w.Seq, es[0].Head.Seq)
	case w.Seq > es[len(es)-1].Head.Seq:
		return fmt.Errorf("%w: checkpoint %d is after the export's latest, %d", ErrWitness, w.Seq, es[len(es)-1].Head.Seq)
	case es[w.Seq-es[0].Head.Seq].Head != w:
		return fmt.Errorf("%w: checkpoint %d differs from the witnessed one", ErrWitness, w.Seq)
	}
	return nil
}

// lastSigned returns the highest signed head seq of each case in es.
func lastSigned(es []checkpoint.Entry) map[string]int64 {
	out := map[string]int64{}
	for _, e := range es {
		for _, l := range e.Leaves {
			if s, ok := out[l.CaseID]; !ok || l.Seq > s {
				out[l.CaseID] = l.Seq
			}
		}
	}
	return out
}

func sortedLeaves(hs []merkle.Head) bool {
	seen := make(map[string]bool, len(hs))
	for i, h := range hs {
		if seen[h.CaseID] || (i > 0 && (hs[i-1].Tenant > h.Tenant || (hs[i-1].Tenant == h.Tenant && hs[i-1].CaseID >= h.CaseID))) {
			return false
		}
		seen[h.CaseID] = true
	}
	return true
}

func parseHashes(ss []string) ([]merkle.Hash, error) {
	out := make([]merkle.Hash, len(ss))
	for i, s := range ss {
		var err error
		if out[i], err = merkle.ParseHash(s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sameKey checks that the export's PEM key is pub.
func sameKey(pemData []byte, pub crypto.PublicKey) error {
	k, err := checkpoint.ParsePublicKeyPEM(pemData)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrKey, PublicKeyFile, err)
	}
	got, err := checkpoint.KeyID(k)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKey, err)
	}
	want, err := checkpoint.KeyID(pub)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKey, err)
	}
	if got != want {
		return fmt.Errorf("%w: the export holds key %s, the supplied key is %s", ErrKey, got, want)
	}
	return nil
}

// listed reads a file the manifest lists and checks its size and SHA-256.
func listed(fsys fs.FS, m *Manifest, p string, limit int64) ([]byte, error) {
	f, ok := m.File(p)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not listed", ErrManifest, p)
	}
	data, err := readLimited(fsys, p, min(limit, f.Size))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	sum := sha256.Sum256(data)
	if int64(len(data)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
		return nil, fmt.Errorf("%w: %s does not match its size and SHA-256", ErrManifest, p)
	}
	return data, nil
}

// readLimited reads at most limit bytes of a file, failing when it is
// longer.
func readLimited(fsys fs.FS, p string, limit int64) ([]byte, error) {
	fh, err := fsys.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	return data, nil
}

// strict decodes one JSON value without unknown members.
func strict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}
