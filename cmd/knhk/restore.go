package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/restore"
	"github.com/knhk/knhk/shared/restorer"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// restoreFlags are the flags of `knhk restore`.
type restoreFlags struct {
	bucket, checkpoints, keyFile, sourceEndpoint string
	receiptsTable, stateTable, targetEndpoint    string
	payloadBucket                                string
	workers                                      int
	asJSON                                       bool
}

func init() {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore --from-archive BUCKET --public-key PEM [--checkpoints TABLE]",
		Short: "Rebuild the receipts of an empty stack from the archive bucket: exit 0 all restored, 3 refused or conflicting (docs/recovery.md)",
		Long: "restore lists the archive bucket itself (the archive index lives in the state table, which may be lost too), " +
			"verifies every object with the public key (chain, payloads, inclusion in its signed checkpoint and, with " +
			"--checkpoints, that this checkpoint is the one the verified log holds) before writing anything of it, then writes " +
			"its detached payloads to the target payloads bucket (blobs/<sha256>; the state table for a stack without one) and its receipts as segment items to the receipts table, each only if " +
			"absent. A case already present with the same head is skipped; one with another chain is a conflict, never " +
			"overwritten. Re-running restores nothing twice. Target tables and bucket default to the deployed stack's.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRestore(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.bucket, "from-archive", "", "the archive bucket to restore from")
	fl.StringVar(&f.keyFile, "public-key", "", "PEM file of the checkpoint signing key (kept apart from the stack)")
	fl.StringVar(&f.checkpoints, "checkpoints", "", "the checkpoints table of the source stack: every object's tree head must be in its verified log")
	fl.StringVar(&f.sourceEndpoint, "source-endpoint", "", "endpoint of the source bucket and checkpoints table (a local drill; default: AWS)")
	fl.StringVar(&f.receiptsTable, "receipts-table", "", "target receipts table (default: the deployed stack's)")
	fl.StringVar(&f.payloadBucket, "payload-bucket", "", "target payloads bucket for detached payloads (default: the deployed stack's)")
	fl.StringVar(&f.stateTable, "state-table", "", "target state table, for detached payloads of a stack without a payloads bucket (default: the deployed stack's)")
	fl.StringVar(&f.targetEndpoint, "endpoint", "", "endpoint of the target tables (a local drill; default: AWS_ENDPOINT_URL or AWS)")
	fl.IntVar(&f.workers, "workers", 8, "cases restored at once")
	fl.BoolVar(&f.asJSON, "json", false, "print the summary as JSON")
	root.AddCommand(cmd)
}

func runRestore(cmd *cobra.Command, f restoreFlags) error {
	if f.bucket == "" || f.keyFile == "" {
		return withExit(2, errors.New("--from-archive and --public-key are required"))
	}
	if f.workers < 1 || f.workers > 64 {
		return withExit(2, fmt.Errorf("--workers %d: want 1 to 64", f.workers))
	}
	pub, err := readPublicKey(f.keyFile)
	if err != nil {
		return withExit(2, err)
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if f.receiptsTable == "" || (f.stateTable == "" && f.payloadBucket == "") {
		res, err := stack.Resolve(outputsFile)
		if err != nil {
			return withExit(2, err)
		}
		f.receiptsTable = orDefault(f.receiptsTable, res.ReceiptsTable)
		f.stateTable = orDefault(f.stateTable, res.StateTable)
		f.payloadBucket = orDefault(f.payloadBucket, res.PayloadBucket)
		if f.receiptsTable == "" || (f.stateTable == "" && f.payloadBucket == "") {
			return withExit(2, errors.New("target unknown: give --receipts-table and --payload-bucket (or --state-table) or deploy the stack"))
		}
	}
	srcCfg, err := awsConfig(ctx, f.sourceEndpoint)
	if err != nil {
		return err
	}
	dstCfg, err := awsConfig(ctx, f.targetEndpoint)
	if err != nil {
		return err
	}
	var lg *checkpoint.Log
	if f.checkpoints != "" {
		stored, err := store.NewCheckpoints(dynamodb.NewFromConfig(srcCfg), f.checkpoints).Load(ctx)
		if err != nil {
			return fmt.Errorf("load the checkpoint log: %w", err)
		}
		if lg, err = checkpoint.VerifyLog(stored.Entries, pub); err != nil {
			return withExit(exitTampered, fmt.Errorf("the checkpoint log does not verify; nothing restored: %w", err))
		}
	}
	db := dynamodb.NewFromConfig(dstCfg)
	sum, _, err := restorer.Run(ctx, restorer.Deps{
		Source:  objects.NewVersioned(objects.NewClient(srcCfg), f.bucket),
		Target:  store.NewReceipts(db, f.receiptsTable),
		Blobs:   restoreBlobs(dstCfg, db, f.stateTable, f.payloadBucket),
		Key:     pub,
		Log:     lg,
		Workers: f.workers,
	})
	if err != nil {
		return err
	}
	if err := printRestore(cmd, sum, f.asJSON); err != nil {
		return err
	}
	if !sum.OK() {
		return withExit(exitTampered, fmt.Errorf("%d archive objects refused, %d cases conflicting", sum.Refused, sum.Conflict))
	}
	return nil
}

// orDefault returns the first of a and b that is not empty.
func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func printRestore(cmd *cobra.Command, sum restore.Summary, asJSON bool) error {
	w := cmd.OutOrStdout()
	if asJSON {
		return writeJSON(w, sum)
	}
	for _, p := range sum.Problems {
		fmt.Fprintf(w, "%s %s: %s\n", p.Status, p.Key, p.Error)
	}
	fmt.Fprintln(w, sum.String())
	return nil
}

// restoreBlobs is where a restore writes detached payloads: the target
// payloads bucket, or the state table of a stack without one.
func restoreBlobs(cfg aws.Config, db *dynamodb.Client, stateTable, bucket string) restorer.Blobs {
	if bucket == "" {
		return store.NewState(db, stateTable)
	}
	return objects.NewBlobs(objects.New(objects.NewClient(cfg), bucket), nil)
}
