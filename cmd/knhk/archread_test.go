package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/signer"
)

// testChain is a chain of n receipts of case c, the last terminal when
// ended; salt changes every payload after the genesis.
func testChain(t *testing.T, c string, n int, ended bool, salt string) []*receipt.Receipt {
	t.Helper()
	var rs []*receipt.Receipt
	var prev *receipt.Receipt
	for i := range n {
		ev := history.Event{Type: history.TaskCompleted, Task: "/do/0/a", Output: json.RawMessage(fmt.Sprintf(`{"i":%d,"s":%q}`, i, salt))}
		switch {
		case i == 0:
			ev = history.Event{Type: history.CaseStarted, Input: json.RawMessage(`{}`), Genesis: &history.Genesis{Tenant: "acme", Namespace: "ns",
				Workflow: "wf", Version: "1", DescriptorHash: strings.Repeat("cd", 32)}}
		case i == n-1 && ended:
			ev = history.Event{Type: history.CaseCompleted, Output: json.RawMessage(fmt.Sprintf(`{"s":%q}`, salt))}
		}
		r, err := receipt.New(prev, "acme", c, ev)
		if err != nil {
			t.Fatal(err)
		}
		rs, prev = append(rs, r), r
	}
	return rs
}

func TestArchiveNeeded(t *testing.T) {
	full := testChain(t, "c", 4, true, "")
	tests := []struct {
		name      string
		table     []*receipt.Receipt
		malformed int
		indexed   bool
		want      bool
	}{
		{"whole chain, not indexed", full, 0, false, false},
		{"whole chain, indexed", full, 0, true, true},
		{"empty table", nil, 0, false, true},
		{"genesis gone", full[1:], 0, false, true},
		{"gap in the middle", []*receipt.Receipt{full[0], full[1], full[3]}, 0, false, true},
		{"an item does not decode", full, 1, false, true},
		{"prefix of the chain (a live case)", full[:2], 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := archiveNeeded(tt.table, tt.malformed, tt.indexed); got != tt.want {
				t.Errorf("archiveNeeded = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResolveChain(t *testing.T) {
	arch := testChain(t, "c", 4, true, "")
	other := testChain(t, "c", 4, true, "rewritten")
	longer := testChain(t, "c", 5, false, "")
	tests := []struct {
		name     string
		table    []*receipt.Receipt
		archived []*receipt.Receipt
		source   string
		receipts []*receipt.Receipt
		mismatch []int64 // seqs of the ArchiveMismatch findings
	}{
		{"not archived: the table", arch[:2], nil, sourceTable, arch[:2], nil},
		{"in neither", nil, nil, sourceTable, nil, nil},
		{"archived, table whole and equal", arch, arch, sourceTable, arch, nil},
		{"archived, table empty (TTL)", nil, arch, sourceArchive, arch, nil},
		{"archived, table partial and equal", []*receipt.Receipt{arch[0], arch[3]}, arch, sourceArchive, arch, nil},
		{"archived, table head differs", []*receipt.Receipt{arch[0], arch[1], arch[2], other[3]}, arch, sourceArchive, arch, []int64{3}},
		{"archived, table rewritten", other, arch, sourceArchive, arch, []int64{1, 2, 3}},
		{"archived, table past the terminal head", []*receipt.Receipt{longer[4]}, arch, sourceArchive, arch, []int64{4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resolveChain("c", tt.table, tt.archived)
			if r.Source != tt.source {
				t.Errorf("source = %s, want %s", r.Source, tt.source)
			}
			if len(r.Receipts) != len(tt.receipts) {
				t.Fatalf("%d receipts, want %d", len(r.Receipts), len(tt.receipts))
			}
			for i := range r.Receipts {
				if r.Receipts[i] != tt.receipts[i] {
					t.Errorf("receipt %d is not the expected one", i)
				}
			}
			if len(r.Findings) != len(tt.mismatch) {
				t.Fatalf("findings %v, want at seqs %v", r.Findings, tt.mismatch)
			}
			for i, f := range r.Findings {
				if f.Kind != receipt.ArchiveMismatch || f.Seq != tt.mismatch[i] || f.CaseID != "c" || !f.Kind.Tamper() {
					t.Errorf("finding %d = %v, want ArchiveMismatch at seq %d", i, f, tt.mismatch[i])
				}
			}
		})
	}
}

func TestCheckArchived(t *testing.T) {
	ctx := context.Background()
	key, err := signer.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := signer.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := key.PublicKey(ctx)
	wrongPub, _ := wrong.PublicKey(ctx)
	data := archivedCase(t, key, "arch-c", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	a, _ := archive.Decode(data)
	sum, err := archive.Summarize(a, data)
	if err != nil {
		t.Fatal(err)
	}
	otherHead := sum
	otherHead.HeadHash = strings.Repeat("0", 64)
	otherSum := sum
	otherSum.SHA256 = strings.Repeat("0", 64)
	tampered := []byte(strings.Replace(string(data), `"ok":true`, `"ok":false`, 1))
	tests := []struct {
		name    string
		data    []byte
		caseID  string
		s       archive.Summary
		indexed bool
		pub     any
		err     error // nil: verified; errAny: any error
	}{
		{"indexed", data, "arch-c", sum, true, pub, nil},
		{"by key, no index entry", data, "arch-c", archive.Summary{}, false, pub, nil},
		{"a byte changed", tampered, "arch-c", sum, true, pub, errAny},
		{"not canonical", append([]byte(" "), data...), "arch-c", sum, true, pub, archive.ErrMalformed},
		{"another key signed it", data, "arch-c", sum, true, wrongPub, errAny},
		{"another case's object", data, "arch-d", sum, true, pub, errAny},
		{"not the indexed bytes", data, "arch-c", otherSum, true, pub, errArchiveNotIndex},
		{"not the indexed head", data, "arch-c", otherHead, true, pub, errArchiveNotIndex},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkArchived(tt.data, tt.caseID, tt.s, tt.indexed, tt.pub)
			switch {
			case tt.err == nil && (err != nil || got == nil || got.CaseID != "arch-c"):
				t.Fatalf("checkArchived: %v", err)
			case tt.err == errAny && err == nil, tt.err != nil && tt.err != errAny && !errors.Is(err, tt.err):
				t.Fatalf("checkArchived: %v, want %v", err, tt.err)
			}
		})
	}
}

// errAny in a table test wants some error.
var errAny = errors.New("any error")

func TestArchivedBlobs(t *testing.T) {
	b := archivedBlobs{m: map[string][]byte{"h1": []byte(`{"a":1}`)}}
	if got, err := b.Blob(context.Background(), "h1"); err != nil || string(got) != `{"a":1}` {
		t.Fatalf("h1: %q %v", got, err)
	}
	if _, err := b.Blob(context.Background(), "h2"); err == nil {
		t.Fatal("a payload the archive does not hold was served")
	}
	if err := b.PutBlob(context.Background(), receipt.Blob{Hash: "h1"}); err == nil {
		t.Fatal("an archived payload was written")
	}
}
