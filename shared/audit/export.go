package audit

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
)

// checkpointsFile is the stored form of CheckpointsFile: the shape of
// `knhk checkpoint export`, holding a contiguous part of the log.
type checkpointsFile struct {
	V       int                `json:"v"`
	Entries []checkpoint.Entry `json:"checkpoints"`
}

// Select returns the checkpoints an export of [from, to) carries, in
// order: from the last checkpoint made before from (the anchor; nil when
// there is none and the sequence starts at the log's first checkpoint)
// through the last one made before to, widened to every checkpoint an
// indexed case's inclusion proof leads to (a case that ended just before
// to is signed by a later checkpoint). log is the whole verified log, seq 0
// first.
func Select(log []checkpoint.Entry, from, to time.Time, index []archive.Summary) ([]checkpoint.Entry, *uint64, error) {
	lo, hi := 0, -1
	var anchor *uint64
	for i, e := range log {
		if e.Head.Seq != uint64(i) {
			return nil, nil, fmt.Errorf("select checkpoints: entry %d has seq %d", i, e.Head.Seq)
		}
		t, err := time.Parse(checkpoint.TimeLayout, e.Head.Time)
		if err != nil {
			return nil, nil, fmt.Errorf("select checkpoints: checkpoint %d time: %w", i, err)
		}
		if t.Before(from) {
			lo, anchor = i, &log[i].Head.Seq
		}
		if t.Before(to) {
			hi = i
		}
	}
	for _, s := range index {
		if s.Checkpoint >= uint64(len(log)) {
			return nil, nil, fmt.Errorf("select checkpoints: case %s is proved in checkpoint %d, the log has %d", s.CaseID, s.Checkpoint, len(log))
		}
		lo, hi = min(lo, int(s.Checkpoint)), max(hi, int(s.Checkpoint))
	}
	if hi < lo {
		return []checkpoint.Entry{}, anchor, nil
	}
	if anchor != nil {
		a := *anchor
		anchor = &a
	}
	return slices.Clone(log[lo : hi+1]), anchor, nil
}

// CheckObject checks that data is the archive object an index entry
// describes (its size and SHA-256), before it is written to CasePath.
func CheckObject(s archive.Summary, data []byte) error {
	if sum := sha256.Sum256(data); len(data) != s.Size || hex.EncodeToString(sum[:]) != s.SHA256 {
		return fmt.Errorf("the archive object of case %s is not the one the index names (%d bytes, sha256 %s)", s.CaseID, s.Size, s.SHA256)
	}
	return nil
}

// Assemble returns the files of the export of [from, to) but the case
// files, by path, the manifest included: entries and anchor as Select
// returned them, the period's archive index and the checkpoint public key.
// The manifest lists each indexed case's archive object at CasePath with
// the size and SHA-256 the index names; the caller writes those objects,
// each checked with CheckObject.
func Assemble(from, to, created time.Time, entries []checkpoint.Entry, anchor *uint64, index []archive.Summary,
	pub crypto.PublicKey) (map[string][]byte, error) {
	if !from.Before(to) {
		return nil, fmt.Errorf("assemble export: from %s is not before to %s", from, to)
	}
	files := map[string][]byte{}
	var listed []File
	for _, s := range index {
		if !isHash(s.SHA256) || s.Size < 0 {
			return nil, fmt.Errorf("assemble export: case %s: index entry has sha256 %q, size %d", s.CaseID, s.SHA256, s.Size)
		}
		listed = append(listed, File{Path: CasePath(s.SHA256), Size: int64(s.Size), SHA256: s.SHA256})
	}
	if entries == nil {
		entries = []checkpoint.Entry{}
	}
	if index == nil {
		index = []archive.Summary{}
	}
	var err error
	if files[CheckpointsFile], err = indent(checkpointsFile{V: 1, Entries: entries}); err != nil {
		return nil, err
	}
	if files[IndexFile], err = indent(index); err != nil {
		return nil, err
	}
	if files[PublicKeyFile], err = checkpoint.EncodePublicKeyPEM(pub); err != nil {
		return nil, fmt.Errorf("assemble export: %w", err)
	}
	m := &Manifest{Format: Format, V: Version, From: from.UTC().Format(TimeLayout), To: to.UTC().Format(TimeLayout),
		Created: created.UTC().Format(TimeLayout), Anchor: anchor, Files: listed}
	for p, data := range files {
		sum := sha256.Sum256(data)
		m.Files = append(m.Files, File{Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	for i := 1; i < len(m.Files); i++ {
		if m.Files[i].Path == m.Files[i-1].Path {
			return nil, fmt.Errorf("assemble export: two index entries name the object %s", m.Files[i].Path)
		}
	}
	if files[ManifestFile], err = EncodeManifest(m); err != nil {
		return nil, err
	}
	return files, nil
}

func indent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("assemble export: %w", err)
	}
	return append(b, '\n'), nil
}
