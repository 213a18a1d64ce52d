package receipt

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"time"

	"github.com/knhk/knhk/shared/history"
)

// Kind classifies a finding.
type Kind string

// Finding kinds. All are tampering except TTLExpired and Expired.
const (
	HashMismatch      Kind = "HashMismatch"      // content changed: the recomputed hash differs from the stored one
	PayloadMismatch   Kind = "PayloadMismatch"   // an inline payload differs from its recorded hash
	BrokenLink        Kind = "BrokenLink"        // prevHash is not the previous receipt's hash
	Gap               Kind = "Gap"               // one or more sequence numbers are missing
	UnexpectedSeq     Kind = "UnexpectedSeq"     // a duplicate or out-of-order sequence number
	GenesisInvalid    Kind = "GenesisInvalid"    // receipt 0 is not a valid genesis, or a later one claims to be
	CaseMismatch      Kind = "CaseMismatch"      // a receipt of another tenant or case inside the chain
	Malformed         Kind = "Malformed"         // a stored record that does not decode as a receipt
	Modified          Kind = "Modified"          // a stored receipt item was changed after it was written
	Removed           Kind = "Removed"           // a stored receipt item was deleted
	TTLExpired        Kind = "TTLExpired"        // a receipt item was deleted by the table's TTL (allowed once its case is archived)
	ExpirySet         Kind = "ExpirySet"         // a receipt item's time to live was set (allowed once its case is archived)
	Expired           Kind = "Expired"           // an archived case's receipt item had its time to live set or was deleted (allowed)
	NotCheckpointed   Kind = "NotCheckpointed"   // the chain head disagrees with a signed checkpoint
	Truncated         Kind = "Truncated"         // receipts at the chain's tail are gone (seen by a reader that knew a longer chain)
	HistoryInvalid    Kind = "HistoryInvalid"    // the receipts verify but do not form a history the workflow can have produced
	SecondGenesis     Kind = "SecondGenesis"     // a receipt after seq 0 claims to be a genesis (type case.started or a genesis member)
	AfterTerminal     Kind = "AfterTerminal"     // a receipt follows the case's terminal receipt (case.completed, case.faulted, case.cancelled)
	CheckpointRefused Kind = "CheckpointRefused" // the checkpointer refused to sign a head: the chain no longer extends the signed one
	ArchiveMismatch   Kind = "ArchiveMismatch"   // the receipts table disagrees with the case's verified archive object
)

// Tamper reports whether the finding indicates tampering.
func (k Kind) Tamper() bool { return k != TTLExpired && k != Expired }

// Finding is one problem found in a chain, naming where it is and what
// differs.
type Finding struct {
	Kind     Kind   `json:"kind"`
	Tenant   string `json:"tenant,omitempty"`
	CaseID   string `json:"caseId,omitempty"`
	Seq      int64  `json:"seq"`
	Expected string `json:"expected,omitempty"`
	Actual   string `json:"actual,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// String renders the finding for people.
func (f Finding) String() string {
	s := fmt.Sprintf("%s %s/%s seq %d", f.Kind, f.Tenant, f.CaseID, f.Seq)
	if f.Expected != "" || f.Actual != "" {
		s += fmt.Sprintf(": expected %s, actual %s", f.Expected, f.Actual)
	}
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	return s
}

// Watermark is the last verified position of a chain.
type Watermark struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	// Ended is the seq of the chain's terminal receipt at or below Seq, 0
	// while the case has not ended (seq 0 is always the genesis).
	Ended int64 `json:"ended,omitempty"`
	// Namespace, Workflow and Started are the genesis receipt's workflow
	// namespace, name and time, kept so that the case's latency and outcome
	// can be measured when its terminal receipt is verified, without
	// reading the chain.
	Namespace string    `json:"namespace,omitempty"`
	Workflow  string    `json:"workflow,omitempty"`
	Started   time.Time `json:"started,omitzero"`
}

// noteGenesis records the workflow and time of a genesis receipt.
func (w *Watermark) noteGenesis(r *Receipt) {
	if r.Seq == 0 && r.Genesis != nil {
		w.Namespace, w.Workflow, w.Started = r.Genesis.Namespace, r.Genesis.Workflow, r.Started
	}
}

// Through returns the watermark advanced over rs (in seq order), the last
// of which becomes the position; Ended records the first terminal receipt.
func (w Watermark) Through(rs []*Receipt) Watermark {
	for _, r := range rs {
		if r == nil {
			continue
		}
		if w.Ended == 0 && r.Type.Terminal() {
			w.Ended = r.Seq
		}
		w.noteGenesis(r)
		w.Seq, w.Hash = r.Seq, r.Hash
	}
	return w
}

// VerifyChain verifies a whole chain, receipts in stored order starting at
// seq 0: every hash, every link, the sequence and the genesis. It returns
// no findings for an intact chain.
func VerifyChain(rs []*Receipt) []Finding {
	v := newVerifier()
	for _, r := range rs {
		v.next(r)
	}
	if !v.started && len(rs) == 0 {
		return nil
	}
	return v.out
}

// VerifyFrom verifies receipts that continue a chain from a verified
// watermark: the first must have seq w.Seq+1 and link to w.Hash. It returns
// the advanced watermark (the last receipt of an unbroken verified prefix)
// and the findings.
func VerifyFrom(w Watermark, rs []*Receipt) (Watermark, []Finding) {
	v := newVerifier()
	v.started = true
	v.expect = w.Seq + 1
	v.lastHash = w.Hash
	v.ended = w.Ended
	if len(rs) > 0 && rs[0] != nil {
		v.tenant, v.caseID = rs[0].Tenant, rs[0].CaseID
	}
	clean := true
	for _, r := range rs {
		n := len(v.out)
		v.next(r)
		if clean && len(v.out) == n {
			w.Seq, w.Hash, w.Ended = r.Seq, r.Hash, v.ended
			w.noteGenesis(r)
		} else {
			clean = false
		}
	}
	return w, v.out
}

type verifier struct {
	h              hash.Hash
	sum            [32]byte
	started        bool
	expect         int64
	lastHash       string
	ended          int64 // seq of the terminal receipt seen, 0 before
	tenant, caseID string
	out            []Finding
}

func newVerifier() *verifier { return &verifier{h: sha256.New()} }

func (v *verifier) add(r *Receipt, k Kind, seq int64, expected, actual, detail string) {
	v.out = append(v.out, Finding{Kind: k, Tenant: r.Tenant, CaseID: r.CaseID, Seq: seq, Expected: expected, Actual: actual, Detail: detail})
}

func (v *verifier) next(r *Receipt) {
	if r == nil {
		v.out = append(v.out, Finding{Kind: Malformed, Tenant: v.tenant, CaseID: v.caseID, Seq: v.expect, Detail: "missing receipt value"})
		return
	}
	if !v.started {
		v.started = true
		v.tenant, v.caseID = r.Tenant, r.CaseID
	}
	if r.Tenant != v.tenant || r.CaseID != v.caseID {
		v.add(r, CaseMismatch, r.Seq, v.tenant+"/"+v.caseID, r.Tenant+"/"+r.CaseID, "")
	}
	v.self(r)
	switch {
	case r.Seq == v.expect:
		if v.expect > 0 && r.PrevHash != v.lastHash {
			v.add(r, BrokenLink, r.Seq, v.lastHash, r.PrevHash, "prevHash is not the previous receipt's hash")
		}
	case r.Seq > v.expect:
		v.add(r, Gap, v.expect, "", "", fmt.Sprintf("seq %d..%d missing", v.expect, r.Seq-1))
	default:
		v.add(r, UnexpectedSeq, r.Seq, fmt.Sprint(v.expect), fmt.Sprint(r.Seq), "duplicate or out-of-order receipt")
		return
	}
	if v.ended > 0 {
		v.add(r, AfterTerminal, r.Seq, "", string(r.Type), fmt.Sprintf("receipt after the terminal receipt at seq %d", v.ended))
	} else if r.Type.Terminal() {
		v.ended = r.Seq
	}
	v.expect = r.Seq + 1
	v.lastHash = r.Hash
}

// self checks what a receipt proves on its own: its hash, its inline
// payloads and, for a genesis, the genesis fields.
func (v *verifier) self(r *Receipt) {
	v.checkHash(r)
	for _, p := range r.payloadBad {
		v.add(r, PayloadMismatch, r.Seq, "", "", p+" differs from "+p+"Hash")
	}
	switch {
	case r.Seq != 0 && (r.Type == history.CaseStarted || r.Genesis != nil):
		v.add(r, SecondGenesis, r.Seq, "", string(r.Type), fmt.Sprintf("genesis content at seq %d", r.Seq))
	case r.Seq == 0:
		if d := genesisProblem(r); d != "" {
			v.add(r, GenesisInvalid, r.Seq, "", "", d)
		}
	}
}

func (v *verifier) checkHash(r *Receipt) {
	body, err := r.Body()
	if err != nil {
		v.add(r, Malformed, r.Seq, "", "", err.Error())
		return
	}
	want := r.sum
	if r.body == nil { // built by hand, not by New or Decode
		if _, err := hex.Decode(want[:], []byte(r.Hash)); err != nil || len(r.Hash) != 64 {
			v.add(r, HashMismatch, r.Seq, "", r.Hash, "stored hash is not hex SHA-256")
			return
		}
	}
	v.h.Reset()
	v.h.Write(domain)
	v.h.Write(body)
	v.h.Sum(v.sum[:0])
	if v.sum != want {
		v.add(r, HashMismatch, r.Seq, hex.EncodeToString(v.sum[:]), r.Hash, "content differs from its hash")
	}
}

// genesisProblem says what is wrong with a receipt that is or claims to be
// the genesis, or "" when it is a valid genesis.
func genesisProblem(r *Receipt) string {
	switch {
	case r.Type != history.CaseStarted:
		return fmt.Sprintf("type %s, want %s", r.Type, history.CaseStarted)
	case r.PrevHash != ZeroHash:
		return "prevHash is not the zero hash"
	case r.Genesis == nil:
		return "no genesis"
	case r.Genesis.Tenant != r.Tenant:
		return "genesis tenant differs from the receipt's"
	case r.Genesis.Workflow == "" || r.Genesis.Version == "":
		return "genesis without workflow name or version"
	case !isHex64(r.Genesis.DescriptorHash):
		return "descriptor hash is not hex SHA-256"
	case !validTraceParent(r.Genesis.TraceParent):
		return "genesis traceparent is not a W3C traceparent"
	}
	return ""
}
