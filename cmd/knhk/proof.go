package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/bundle"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// maxBundle bounds the size of a proof bundle file read for verification.
const maxBundle = 256 << 20

func init() {
	proof := &cobra.Command{Use: "proof", Short: "Export and verify offline proof bundles of single cases"}

	var caseID, out, keyOut string
	export := &cobra.Command{
		Use:   "export --case ID --out FILE",
		Short: "Write a case's proof bundle: receipts, inclusion proof and signed checkpoint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			if caseID == "" || out == "" {
				return withExit(2, errors.New("--case and --out are required"))
			}
			cfg, res, err := deployedStack(ctx, stack.OutReceiptsTable, stack.OutCheckpointsTable, stack.OutCheckpointKeyID)
			if err != nil {
				return withExit(2, err)
			}
			db := dynamodb.NewFromConfig(cfg)
			cc, err := readCase(ctx, cfg, res, store.NewReceipts(db, res.ReceiptsTable), caseID)
			if err != nil {
				return err
			}
			if fs := cc.findings(); len(fs) > 0 {
				return withExit(exitTampered, fmt.Errorf("case %s: stored receipts do not decode or disagree with the archive: %s", caseID, fs[0]))
			}
			rs := cc.Receipts
			pub, err := kmsKey(ctx, cfg, res)
			if err != nil {
				return err
			}
			stored, err := store.NewCheckpoints(db, res.CheckpointsTable).Load(ctx)
			if err != nil {
				return err
			}
			l, err := checkpoint.VerifyLog(stored.Entries, pub)
			if err != nil {
				return withExit(exitTampered, err)
			}
			var b *bundle.Bundle
			var head checkpoint.TreeHead
			switch refs := l.Case(caseID); {
			case len(refs) > 0:
				p, h, err := l.Proof(refs[len(refs)-1])
				if err != nil {
					return err
				}
				if b, err = bundle.Assemble(rs, p, h, pub); err != nil {
					return err
				}
				head = h
			case cc.Archive != nil:
				// The stored log no longer names the case (a restored
				// stack): the verified archive object carries its proof.
				b, head = cc.Archive.Bundle(), cc.Archive.TreeHead
			default:
				return fmt.Errorf("case %s is not checkpointed yet (the checkpointer runs on a schedule; `knhk checkpoint create` runs it now)", caseID)
			}
			data, err := bundle.Encode(b)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, data, 0o644); err != nil {
				return fmt.Errorf("write bundle: %w", err)
			}
			if keyOut != "" {
				if b.PublicKeyPEM == "" {
					return withExit(2, errors.New("--public-key-out needs the stack's checkpoint key"))
				}
				if err := os.WriteFile(keyOut, []byte(b.PublicKeyPEM), 0o644); err != nil {
					return fmt.Errorf("write public key: %w", err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: case %s, %d receipts, checkpoint %s\nsource: %s\n", out, caseID, len(b.Receipts), head.Period, cc.sourceLine())
			return nil
		},
	}
	export.Flags().StringVar(&caseID, "case", "", "case id")
	export.Flags().StringVar(&out, "out", "", "bundle file to write")
	export.Flags().StringVar(&keyOut, "public-key-out", "", "also write the checkpoint public key (PEM) to this file")

	var keyFile string
	verify := &cobra.Command{
		Use:   "verify FILE --public-key PEM",
		Short: "Verify a proof bundle offline with only the public key: exit 0 verified, 3 not",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return withExit(2, errors.New("--public-key is required"))
			}
			pub, err := readPublicKey(keyFile)
			if err != nil {
				return withExit(2, err)
			}
			data, err := readAtMost(args[0], maxBundle, "bundle")
			if err != nil {
				return withExit(2, err)
			}
			type result struct {
				Verified bool              `json:"verified"`
				Tenant   string            `json:"tenant,omitempty"`
				CaseID   string            `json:"caseId,omitempty"`
				HeadSeq  *int64            `json:"headSeq,omitempty"`
				Period   string            `json:"period,omitempty"`
				Error    string            `json:"error,omitempty"`
				Findings []receipt.Finding `json:"findings,omitempty"`
			}
			var r result
			b, err := bundle.Decode(data)
			if err == nil {
				r.Tenant, r.CaseID, r.Period = b.Tenant, b.CaseID, b.TreeHead.Period
				err = bundle.Verify(b, pub)
				if err == nil {
					r.HeadSeq = &b.Proof.Leaf.Seq
				}
			}
			var ce *bundle.ChainError
			if errors.As(err, &ce) {
				r.Findings = ce.Findings
			}
			r.Verified = err == nil
			if err != nil {
				r.Error = err.Error()
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if werr := enc.Encode(r); werr != nil {
				return werr
			}
			if !r.Verified {
				return withExit(exitTampered, errors.New(""))
			}
			return nil
		},
	}
	verify.Flags().StringVar(&keyFile, "public-key", "", "PEM file of the checkpoint signing key")
	proof.AddCommand(export, verify)
	root.AddCommand(proof)
}
