package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/merkle"
	"github.com/knhk/knhk/shared/signer"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// checkpointFile is the exported form of a checkpoint: the signed tree head
// and every leaf, enough to rebuild the tree and any inclusion proof.
type checkpointFile struct {
	V        int                 `json:"v"`
	TreeHead checkpoint.TreeHead `json:"treeHead"`
	Leaves   []merkle.Head       `json:"leaves"`
}

func init() {
	cp := &cobra.Command{Use: "checkpoint", Short: "Sign Merkle checkpoints over all chain heads"}
	var period, out string
	create := &cobra.Command{
		Use:   "create",
		Short: "Build the Merkle tree over every case's chain head, sign it with the KMS key, store and export it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			cfg, res, err := deployedStack(ctx, stack.OutReceiptsTable, stack.OutStateTable, stack.OutCheckpointKeyID)
			if err != nil {
				return withExit(2, err)
			}
			now := time.Now().UTC()
			if period == "" {
				period = now.Format(time.RFC3339)
			}
			db := dynamodb.NewFromConfig(cfg)
			heads, err := store.NewReceipts(db, res.ReceiptsTable).Heads(ctx)
			if err != nil {
				return err
			}
			c, err := checkpoint.Create(ctx, heads, period, now, signer.NewKMS(kms.NewFromConfig(cfg), res.CheckpointKeyID))
			if err != nil {
				return err
			}
			if err := store.NewState(db, res.StateTable).PutCheckpoint(ctx, c); err != nil {
				return err
			}
			if out != "" {
				b, err := json.MarshalIndent(checkpointFile{V: 1, TreeHead: c.Head, Leaves: c.Heads}, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
					return fmt.Errorf("export checkpoint: %w", err)
				}
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(c.Head)
		},
	}
	create.Flags().StringVar(&period, "period", "", "period the checkpoint covers (default: now, RFC 3339 UTC); one checkpoint per period")
	create.Flags().StringVar(&out, "out", "", "also export the checkpoint (tree head and leaves) to this JSON file")
	cp.AddCommand(create)
	root.AddCommand(cp)
}
