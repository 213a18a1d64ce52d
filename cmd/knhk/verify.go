package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// exitTampered is the exit status of a verification that found tampering.
const exitTampered = 3

// maxReceiptLine bounds one line of a receipts file.
const maxReceiptLine = 1 << 20

func init() {
	var file, caseID string
	cmd := &cobra.Command{
		Use:   "verify (--file RECEIPTS.jsonl | --case ID)",
		Short: "Verify receipt chains: every hash, every link, the sequence and the genesis",
		Long: "verify recomputes every receipt hash and link, offline from a JSON-lines file of receipts " +
			"or from the deployed receipts table for one case, where it also checks the whole signed checkpoint log, " +
			"every checkpoint that covers the case, and the findings and quarantine recorded against it. " +
			"It prints a JSON report and exits 0 when intact, 3 when tampered or when any finding is recorded.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			var rep report
			var err error
			switch {
			case (file == "") == (caseID == ""):
				return withExit(2, errors.New("give exactly one of --file and --case"))
			case file != "":
				rep, err = verifyFile(file)
			default:
				rep, err = verifyCase(ctx, caseID)
			}
			if err != nil {
				return err
			}
			return rep.write(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "JSON-lines file of receipts (one canonical receipt per line)")
	cmd.Flags().StringVar(&caseID, "case", "", "case id to verify in the deployed receipts table")
	root.AddCommand(cmd)
}

// report is what verify prints.
type report struct {
	Intact   bool              `json:"intact"`
	Cases    int               `json:"cases"`
	Receipts int               `json:"receipts"`
	Findings []receipt.Finding `json:"findings"`
	// Checkpoint says how the case head compares with the latest signed
	// checkpoint ("" when none was checked).
	Checkpoint string `json:"checkpoint,omitempty"`
	// Source is where a --case chain was read: "table", or "archive" when
	// the receipts table no longer holds all of it; Archive then names
	// the verified archive object.
	Source  string `json:"source,omitempty"`
	Archive string `json:"archive,omitempty"`
}

func (r *report) write(w io.Writer) error {
	if r.Findings == nil {
		r.Findings = []receipt.Finding{}
	}
	r.Intact = true
	for _, f := range r.Findings {
		if f.Kind.Tamper() {
			r.Intact = false
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	if !r.Intact {
		return withExit(exitTampered, errors.New(""))
	}
	return nil
}

// readReceipts decodes a JSON-lines file; lines that do not decode become
// Malformed findings.
func readReceipts(path string) ([]*receipt.Receipt, []receipt.Finding, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, withExit(2, fmt.Errorf("read receipts: %w", err))
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxReceiptLine)
	var rs []*receipt.Receipt
	var bad []receipt.Finding
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		r, err := receipt.Decode(b)
		if err != nil {
			bad = append(bad, receipt.Finding{Kind: receipt.Malformed, Seq: -1, Detail: fmt.Sprintf("line %d: %v", line, err)})
			continue
		}
		rs = append(rs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read receipts %s: %w", path, err)
	}
	return rs, bad, nil
}

func verifyFile(path string) (report, error) {
	rs, bad, err := readReceipts(path)
	if err != nil {
		return report{}, err
	}
	rep := report{Receipts: len(rs), Findings: bad}
	// A file may hold several chains; verify each in file order.
	var order []string
	byCase := map[string][]*receipt.Receipt{}
	for _, r := range rs {
		k := r.Tenant + "\x00" + r.CaseID
		if _, ok := byCase[k]; !ok {
			order = append(order, k)
		}
		byCase[k] = append(byCase[k], r)
	}
	rep.Cases = len(order)
	for _, k := range order {
		rep.Findings = append(rep.Findings, receipt.VerifyChain(byCase[k])...)
	}
	return rep, nil
}

func verifyCase(ctx context.Context, caseID string) (report, error) {
	cfg, res, err := deployedStack(ctx, stack.OutReceiptsTable)
	if err != nil {
		return report{}, withExit(2, err)
	}
	db := dynamodb.NewFromConfig(cfg)
	cc, err := readCase(ctx, cfg, res, store.NewReceipts(db, res.ReceiptsTable), caseID)
	if err != nil {
		return report{}, err
	}
	rs := cc.Receipts
	rep := report{Cases: 1, Receipts: len(rs), Findings: append(cc.findings(), receipt.VerifyChain(rs)...), Source: cc.Source, Archive: cc.Object}
	if res.StateTable != "" {
		recorded, quarantine, err := caseRecords(ctx, db, res.StateTable, caseID)
		if err != nil {
			return rep, err
		}
		rep.Findings = append(rep.Findings, recorded...)
		rep.Findings = append(rep.Findings, quarantine...)
	}
	if res.CheckpointsTable == "" || len(rs) == 0 {
		return rep, nil
	}
	stored, err := store.NewCheckpoints(db, res.CheckpointsTable).Load(ctx)
	if err != nil {
		return rep, err
	}
	pub, err := kmsKey(ctx, cfg, res)
	if err != nil {
		return rep, err
	}
	notCheckpointed := func(detail string, seq int64, exp, act string) {
		rep.Findings = append(rep.Findings, receipt.Finding{Kind: receipt.NotCheckpointed, Tenant: rs[0].Tenant, CaseID: caseID,
			Seq: seq, Expected: exp, Actual: act, Detail: detail})
	}
	l, err := checkpoint.VerifyLog(stored.Entries, pub)
	if err != nil {
		notCheckpointed(err.Error(), -1, "", "")
		rep.Checkpoint = "the checkpoint log does not verify"
		return rep, nil
	}
	refs := l.Case(caseID)
	if len(refs) == 0 {
		rep.Checkpoint = fmt.Sprintf("not yet checkpointed (log of %d checkpoints verified)", len(stored.Entries))
		return rep, nil
	}
	bySeq := make(map[int64]*receipt.Receipt, len(rs))
	for _, r := range rs {
		bySeq[r.Seq] = r
	}
	for _, ref := range refs {
		h := ref.Head
		at := bySeq[h.Seq]
		switch {
		case at == nil:
			notCheckpointed(fmt.Sprintf("the head signed by checkpoint %d is missing from the chain", ref.Checkpoint), h.Seq, h.Hash, "")
		case at.Hash != h.Hash:
			notCheckpointed(fmt.Sprintf("the chain differs from the head signed by checkpoint %d", ref.Checkpoint), h.Seq, h.Hash, at.Hash)
		case h.Tenant != rs[0].Tenant:
			notCheckpointed(fmt.Sprintf("checkpoint %d signed the case for another tenant", ref.Checkpoint), h.Seq, h.Tenant, rs[0].Tenant)
		}
	}
	last := refs[len(refs)-1]
	p, head, err := l.Proof(last)
	if err == nil {
		err = p.Verify(&head)
	}
	if err != nil {
		notCheckpointed(err.Error(), last.Head.Seq, "", "")
	}
	rep.Checkpoint = fmt.Sprintf("%d checkpoints cover the case, the latest at seq %d (checkpoint %d of %d, %s); log and signatures verified",
		len(refs), last.Head.Seq, last.Checkpoint, len(stored.Entries), head.Period)
	return rep, nil
}

// caseRecords returns what the verifier and checkpointer recorded against
// a case: its findings, and its quarantine as findings.
func caseRecords(ctx context.Context, db *dynamodb.Client, stateTable, caseID string) (recorded, quarantine []receipt.Finding, err error) {
	if recorded, err = store.NewFindings(db, stateTable).Case(ctx, caseID); err != nil {
		return nil, nil, err
	}
	for i := range recorded {
		recorded[i].Detail = "recorded finding: " + recorded[i].Detail
	}
	q, err := store.NewCases(db, stateTable).Quarantined(ctx, caseID)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range q {
		f.Detail = "the case is quarantined: " + f.Detail
		quarantine = append(quarantine, f)
	}
	return recorded, quarantine, nil
}

// readPublicKey reads a PEM public key file.
func readPublicKey(path string) (crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	return checkpoint.ParsePublicKeyPEM(b)
}
