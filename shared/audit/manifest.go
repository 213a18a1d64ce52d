// Package audit is the period audit: the export an auditor receives for a
// period (signed checkpoints, archived cases, the archive index, the public
// key and a manifest of every file) and its offline verification. Pure: the
// export is assembled from values the caller read, and verification reads
// only an fs.FS. The format is documented in docs/audit.md.
package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Format names the export; Version is its schema version.
const (
	Format  = "knhk.audit"
	Version = 1
)

// File names of an export, relative to its directory. Each case's archive
// object is CasesDir/<hex SHA-256 of the object>.json.
const (
	ManifestFile    = "manifest.json"
	CheckpointsFile = "checkpoints.json"
	IndexFile       = "index.json"
	PublicKeyFile   = "public-key.pem"
	CasesDir        = "cases"
)

// MaxManifest bounds the manifest DecodeManifest accepts.
const MaxManifest = 64 << 20

// TimeLayout is the layout of the manifest's times: RFC 3339 in UTC.
const TimeLayout = time.RFC3339Nano

// File is one file of the export: its path, size and hex SHA-256.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest names the period and every file of the export but itself.
type Manifest struct {
	Format string `json:"format"`
	V      int    `json:"v"`
	From   string `json:"from"` // first end time of the period, inclusive
	To     string `json:"to"`   // end of the period, exclusive
	// Created is when the export was made.
	Created string `json:"created"`
	// Anchor is the seq of the last checkpoint made before From, the first
	// of the exported sequence; null when the log starts in the period.
	Anchor *uint64 `json:"anchor"`
	Files  []File  `json:"files"` // sorted by path, each once
}

// ErrManifest is wrapped by every manifest error, of decoding or of the
// files not matching it.
var ErrManifest = errors.New("manifest")

// EncodeManifest returns the manifest's stored form: indented JSON and a
// newline.
func EncodeManifest(m *Manifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// DecodeManifest parses a manifest strictly: at most MaxManifest bytes, one
// JSON object without unknown members, this format and version, a period
// of two UTC times with From before To, and files sorted, each once, each
// a name of the export (ValidPath) with a size and a hex SHA-256.
func DecodeManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifest {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrManifest, len(data), MaxManifest)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the manifest object", ErrManifest)
	}
	if m.Format != Format || m.V != Version {
		return nil, fmt.Errorf("%w: format %q v%d, want %q v%d", ErrManifest, m.Format, m.V, Format, Version)
	}
	from, to, err := m.Period()
	if err != nil {
		return nil, err
	}
	if !from.Before(to) {
		return nil, fmt.Errorf("%w: from %s is not before to %s", ErrManifest, m.From, m.To)
	}
	if _, err := parseTime("created", m.Created); err != nil {
		return nil, err
	}
	for i, f := range m.Files {
		if !ValidPath(f.Path) {
			return nil, fmt.Errorf("%w: file %d: %q is not a file of an export", ErrManifest, i, f.Path)
		}
		if i > 0 && m.Files[i-1].Path >= f.Path {
			return nil, fmt.Errorf("%w: files not sorted by path, or %q twice", ErrManifest, f.Path)
		}
		if f.Size < 0 || !isHash(f.SHA256) {
			return nil, fmt.Errorf("%w: file %q: size %d, sha256 %q", ErrManifest, f.Path, f.Size, f.SHA256)
		}
	}
	for _, p := range []string{CheckpointsFile, IndexFile, PublicKeyFile} {
		if _, ok := m.File(p); !ok {
			return nil, fmt.Errorf("%w: %s is not listed", ErrManifest, p)
		}
	}
	return &m, nil
}

// Period returns the manifest's From and To.
func (m *Manifest) Period() (from, to time.Time, err error) {
	if from, err = parseTime("from", m.From); err != nil {
		return
	}
	to, err = parseTime("to", m.To)
	return
}

func parseTime(name, v string) (time.Time, error) {
	t, err := time.Parse(TimeLayout, v)
	if err != nil || t.Location() != time.UTC || t.Format(TimeLayout) != v {
		return time.Time{}, fmt.Errorf("%w: %s %q is not an RFC 3339 UTC time", ErrManifest, name, v)
	}
	return t, nil
}

// File returns the entry of a path.
func (m *Manifest) File(path string) (File, bool) {
	i, ok := slices.BinarySearchFunc(m.Files, path, func(f File, p string) int { return strings.Compare(f.Path, p) })
	if !ok {
		return File{}, false
	}
	return m.Files[i], true
}

// CasePath is the path of the archive object whose hex SHA-256 is sum.
func CasePath(sum string) string { return CasesDir + "/" + sum + ".json" }

// ValidPath reports whether p names a file of an export: one of the fixed
// names, or a case file CasePath(sum) with a lowercase hex SHA-256. No other
// path (nothing absolute, no "..", no other directory) is accepted.
func ValidPath(p string) bool {
	switch p {
	case CheckpointsFile, IndexFile, PublicKeyFile:
		return true
	}
	sum, ok := strings.CutPrefix(p, CasesDir+"/")
	if !ok {
		return false
	}
	sum, ok = strings.CutSuffix(sum, ".json")
	return ok && isHash(sum)
}

func isHash(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
