// Package archive is the archive object of one ended case: every receipt of
// its chain, the detached payloads the receipts name only by hash, and the
// inclusion proof of its terminal head in a signed checkpoint. It is a
// superset of the proof bundle (shared/receipt/bundle): the same members
// with the same meaning, plus format, ended and payloads. Pure: no I/O.
// The format is documented in docs/audit.md.
package archive

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/bundle"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/jcs"
)

// Format names the object kind; Version is its schema version.
const (
	Format  = "knhk.archive"
	Version = 1
)

// ContentType is the media type archive objects are stored with.
const ContentType = "application/json"

// MaxSize bounds the archive object Decode accepts (hostile input must not
// exhaust memory): far above any chain the executor can write.
const MaxSize = 256 << 20

// TimeLayout is the layout of Ended: RFC 3339 in UTC, fraction without
// trailing zeros, as in receipts.
const TimeLayout = time.RFC3339Nano

// Payload is one detached payload: its canonical JSON and that JSON's
// hex SHA-256, the hash a receipt names in inputHash, outputHash or dataHash.
type Payload struct {
	Hash string          `json:"hash"`
	Data json.RawMessage `json:"data"`
}

// Archive is one ended case's archive object. Its stored form is the RFC
// 8785 canonical JSON of these members followed by a newline.
type Archive struct {
	Format string `json:"format"`
	V      int    `json:"v"`
	Tenant string `json:"tenant"`
	CaseID string `json:"caseId"`
	// Ended is the terminal receipt's ended time, or its started time when
	// it has none (TimeLayout): the time the archive index sorts by.
	Ended    string             `json:"ended"`
	Receipts []*receipt.Receipt `json:"receipts"` // seq 0 up to the terminal receipt, which is the checkpointed head
	// Payloads are the detached payloads of the receipts, sorted by hash,
	// each once; empty when every payload is inline.
	Payloads []Payload           `json:"payloads"`
	Proof    checkpoint.Proof    `json:"proof"`
	TreeHead checkpoint.TreeHead `json:"treeHead"`
	// PublicKeyPEM optionally carries the checkpoint key; Verify requires
	// it to be the key the verifier supplies.
	PublicKeyPEM string `json:"publicKeyPem,omitempty"`
}

// Errors of New and Verify.
var (
	ErrNotEnded       = errors.New("the case has not ended")
	ErrMissingPayload = errors.New("a detached payload is missing")
	ErrPayload        = errors.New("payloads do not match the receipts")
)

// New assembles the archive of an ended case: its whole chain (seq 0 to the
// terminal receipt), the bytes of every detached payload (by hash; extra
// ones are left out), the inclusion proof of the terminal head and the
// signed tree head it leads to, and the public key when pub is not nil.
func New(rs []*receipt.Receipt, blobs map[string][]byte, p checkpoint.Proof, h checkpoint.TreeHead, pub crypto.PublicKey) (*Archive, error) {
	if len(rs) == 0 {
		return nil, errors.New("archive: no receipts")
	}
	last := rs[len(rs)-1]
	if !last.Type.Terminal() {
		return nil, fmt.Errorf("archive %s: %w: last receipt seq %d is %s", last.CaseID, ErrNotEnded, last.Seq, last.Type)
	}
	if p.Leaf.Seq != last.Seq || p.Leaf.Hash != last.Hash {
		return nil, fmt.Errorf("archive %s: the proof's leaf (seq %d) is not the terminal receipt (seq %d)", last.CaseID, p.Leaf.Seq, last.Seq)
	}
	b, err := bundle.Assemble(rs, p, h, pub)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", last.CaseID, err)
	}
	a := &Archive{Format: Format, V: Version, Tenant: b.Tenant, CaseID: b.CaseID, Ended: EndTime(last).Format(TimeLayout),
		Receipts: b.Receipts, Payloads: []Payload{}, Proof: b.Proof, TreeHead: b.TreeHead, PublicKeyPEM: b.PublicKeyPEM}
	for _, hash := range Detached(rs) {
		data, ok := blobs[hash]
		if !ok {
			return nil, fmt.Errorf("archive %s: %w: %s", last.CaseID, ErrMissingPayload, hash)
		}
		a.Payloads = append(a.Payloads, Payload{Hash: hash, Data: data})
	}
	return a, nil
}

// EndTime is when a case ended, from its terminal receipt: its ended time,
// or its started time when it has none.
func EndTime(terminal *receipt.Receipt) time.Time {
	if !terminal.Ended.IsZero() {
		return terminal.Ended.UTC()
	}
	return terminal.Started.UTC()
}

// Detached returns the hashes of the payloads rs name without carrying
// them (a hash without its inline payload), sorted, each once.
func Detached(rs []*receipt.Receipt) []string {
	var out []string
	for _, r := range rs {
		for _, p := range []struct {
			inline []byte
			hash   string
		}{{r.Input, r.InputHash}, {r.Output, r.OutputHash}, {r.Data, r.DataHash}} {
			if p.hash != "" && len(p.inline) == 0 {
				out = append(out, p.hash)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Blobs returns the detached payloads by hash, for reading the case's
// events (receipt.Receipt.Event).
func (a *Archive) Blobs() map[string][]byte {
	m := make(map[string][]byte, len(a.Payloads))
	for _, p := range a.Payloads {
		m[p.Hash] = p.Data
	}
	return m
}

// Bundle returns the proof bundle the archive contains: what `knhk proof
// verify` checks.
func (a *Archive) Bundle() *bundle.Bundle {
	return &bundle.Bundle{V: bundle.Version, Tenant: a.Tenant, CaseID: a.CaseID, Receipts: a.Receipts, Proof: a.Proof,
		TreeHead: a.TreeHead, PublicKeyPEM: a.PublicKeyPEM}
}

// Encode returns the archive's stored form.
func Encode(a *Archive) ([]byte, error) {
	raw, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode archive: %w", err)
	}
	c, err := jcs.Canonicalize(raw)
	if err != nil {
		return nil, fmt.Errorf("encode archive: %w", err)
	}
	return append(c, '\n'), nil
}

// ErrMalformed is wrapped by every Decode error.
var ErrMalformed = errors.New("malformed archive object")

// Decode parses an archive object strictly: at most MaxSize bytes, exactly
// its canonical form followed by one optional newline, no unknown,
// duplicate or differently-cased members, no null receipt, and members that
// encode back to the same bytes. It does not verify (see Verify).
func Decode(data []byte) (*Archive, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(data), MaxSize)
	}
	in := bytes.TrimSuffix(data, []byte("\n"))
	c, err := jcs.Canonicalize(in)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !bytes.Equal(c, in) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.DisallowUnknownFields()
	var a Archive
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for i, r := range a.Receipts {
		if r == nil {
			return nil, fmt.Errorf("%w: receipt %d is null", ErrMalformed, i)
		}
	}
	if a.Payloads == nil {
		return nil, fmt.Errorf("%w: payloads missing", ErrMalformed)
	}
	again, err := Encode(&a)
	if err != nil || !bytes.Equal(bytes.TrimSuffix(again, []byte("\n")), in) {
		return nil, fmt.Errorf("%w: members do not round-trip", ErrMalformed)
	}
	return &a, nil
}

// Verify checks everything an archive claims, with only the checkpoint
// public key: the format and version; the contained proof bundle (the tree
// head's key and signature, every receipt hash and link from the genesis,
// the proof's leaf is the last receipt, its inclusion in the signed root);
// that the last receipt is terminal and Ended is its time; and that the
// payloads are exactly the receipts' detached payloads, each matching its
// hash.
func Verify(a *Archive, pub crypto.PublicKey) error {
	if a.Format != Format || a.V != Version {
		return fmt.Errorf("archive format %q v%d, want %q v%d", a.Format, a.V, Format, Version)
	}
	if err := bundle.Verify(a.Bundle(), pub); err != nil {
		return fmt.Errorf("archive %s: %w", a.CaseID, err)
	}
	last := a.Receipts[len(a.Receipts)-1]
	if !last.Type.Terminal() {
		return fmt.Errorf("archive %s: %w: last receipt seq %d is %s", a.CaseID, ErrNotEnded, last.Seq, last.Type)
	}
	if want := EndTime(last).Format(TimeLayout); a.Ended != want {
		return fmt.Errorf("archive %s: ended %q, the terminal receipt says %q", a.CaseID, a.Ended, want)
	}
	want := Detached(a.Receipts)
	if len(a.Payloads) != len(want) {
		return fmt.Errorf("archive %s: %w: %d payloads, the receipts detach %d", a.CaseID, ErrPayload, len(a.Payloads), len(want))
	}
	for i, p := range a.Payloads {
		if p.Hash != want[i] {
			return fmt.Errorf("archive %s: %w: payload %d is %s, want %s", a.CaseID, ErrPayload, i, p.Hash, want[i])
		}
		if sum := sha256.Sum256(p.Data); hex.EncodeToString(sum[:]) != p.Hash {
			return fmt.Errorf("archive %s: %w: payload %s does not match its hash", a.CaseID, ErrPayload, p.Hash)
		}
	}
	return nil
}

// Prefix starts every archive object's key.
const Prefix = "archive/"

// Key is the object key of a case's archive: archive/v1/<tenant>/<case>.json,
// tenant and case path-escaped so that any identifier is one path segment.
func Key(tenant, caseID string) string {
	return Prefix + "v1/" + url.PathEscape(tenant) + "/" + url.PathEscape(caseID) + ".json"
}

// Summary is what the archive index keeps of one archived case.
type Summary struct {
	Tenant   string    `json:"tenant"`
	CaseID   string    `json:"caseId"`
	Ended    time.Time `json:"ended"`
	HeadSeq  int64     `json:"headSeq"`
	HeadHash string    `json:"headHash"`
	// Checkpoint is the seq of the signed tree head the proof leads to.
	Checkpoint uint64 `json:"checkpoint"`
	Key        string `json:"key"`
	VersionID  string `json:"versionId,omitempty"`
	Size       int    `json:"size"`
	SHA256     string `json:"sha256"` // hex SHA-256 of the stored object
}

// Summarize returns the index entry of a verified archive stored as data.
func Summarize(a *Archive, data []byte) (Summary, error) {
	ended, err := time.Parse(TimeLayout, a.Ended)
	if err != nil {
		return Summary{}, fmt.Errorf("archive %s: ended: %w", a.CaseID, err)
	}
	sum := sha256.Sum256(data)
	return Summary{Tenant: a.Tenant, CaseID: a.CaseID, Ended: ended, HeadSeq: a.Proof.Leaf.Seq, HeadHash: a.Proof.Leaf.Hash,
		Checkpoint: a.TreeHead.Seq, Key: Key(a.Tenant, a.CaseID), Size: len(data), SHA256: hex.EncodeToString(sum[:])}, nil
}
