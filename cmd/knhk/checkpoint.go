package main

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/alert"
	"github.com/knhk/knhk/shared/checkpointer"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/signer"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// logFile is the exported form of the checkpoint log: every checkpoint
// with its consistency proof and leaves, enough to check the whole
// sequence and rebuild any inclusion proof offline.
type logFile struct {
	V       int                `json:"v"`
	Entries []checkpoint.Entry `json:"checkpoints"`
}

func init() {
	cp := &cobra.Command{Use: "checkpoint", Short: "Run, export and verify the signed checkpoint log"}
	var waitCase string
	var waitFor time.Duration
	create := &cobra.Command{
		Use:   "create",
		Short: "Run the checkpointer once now (the same guarded run as the scheduled function): sign the verified heads that extend the signed ones",
		Long: "create runs the checkpointer's logic with your credentials: it takes the lease, verifies the stored log, " +
			"and signs only the heads the verifier verified whose chain still extends the previously signed head. " +
			"Refused heads are recorded as findings and alerted; the command then exits 3.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmdContext(cmd)
			cfg, res, err := deployedStack(ctx, stack.OutReceiptsTable, stack.OutStateTable, stack.OutCheckpointsTable,
				stack.OutCheckpointKeyID, stack.OutAlertsTopicArn)
			if err != nil {
				return withExit(2, err)
			}
			db := dynamodb.NewFromConfig(cfg)
			if waitCase != "" {
				if err := awaitVerified(ctx, store.NewCases(db, res.StateTable), store.NewReceipts(db, res.ReceiptsTable), waitCase, waitFor); err != nil {
					return err
				}
			}
			c, err := checkpointer.New(checkpointer.Deps{
				Log:      store.NewCheckpoints(db, res.CheckpointsTable),
				Leases:   store.NewLeases(db, res.CheckpointsTable),
				Cases:    store.NewCases(db, res.StateTable),
				Chains:   store.NewReceipts(db, res.ReceiptsTable),
				Findings: store.NewFindings(db, res.StateTable),
				Alerts:   alert.NewSNS(sns.NewFromConfig(cfg), res.AlertsTopicArn),
				Signer:   signer.NewKMS(kms.NewFromConfig(cfg), res.CheckpointKeyID),
				Out:      io.Discard,
			})
			if err != nil {
				return err
			}
			r, err := c.Run(ctx)
			if err != nil {
				return err
			}
			if err := writeJSON(cmd.OutOrStdout(), r); err != nil {
				return err
			}
			if r.Busy {
				return withExit(4, errors.New("another checkpointer run holds the lease; try again later"))
			}
			if len(r.Refused) > 0 {
				return withExit(exitTampered, fmt.Errorf("%d heads refused: %s", len(r.Refused), r.Refused[0]))
			}
			return nil
		},
	}
	create.Flags().StringVar(&waitCase, "case", "", "first wait until the verifier has verified this case's head (so that this run signs it)")
	create.Flags().DurationVar(&waitFor, "timeout", time.Minute, "how long --case waits")
	var out string
	export := &cobra.Command{
		Use:   "export --out FILE",
		Short: "Export the whole checkpoint log (every signed head, consistency proof and leaf) to a JSON file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmdContext(cmd)
			if out == "" {
				return withExit(2, errors.New("--out is required"))
			}
			stored, err := storedLog(ctx)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(logFile{V: 1, Entries: stored.Entries}, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
				return fmt.Errorf("export checkpoint log: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d checkpoints\n", out, len(stored.Entries))
			return nil
		},
	}
	export.Flags().StringVar(&out, "out", "", "file to write")
	var file, keyFile, witness string
	verify := &cobra.Command{
		Use:   "verify [--file LOG.json] [--public-key PEM] [--witness HEAD.json]",
		Short: "Check the checkpoint log append-only: every signature, predecessor link, consistency proof and leaf; exit 0 verified, 3 not",
		Long: "verify reads the log from the deployed checkpoints table, or offline from a file `checkpoint export` wrote, " +
			"and the public key from the stack's KMS key or a PEM file. --witness names a signed tree head kept " +
			"elsewhere (as `checkpoint verify` prints it): the log must still hold it, which catches a deleted tail.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmdContext(cmd)
			var entries []checkpoint.Entry
			if file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					return withExit(2, fmt.Errorf("read checkpoint log: %w", err))
				}
				var lf logFile
				if err := json.Unmarshal(b, &lf); err != nil || lf.V != 1 {
					return withExit(2, fmt.Errorf("checkpoint log %s: not a version 1 export (%v)", file, err))
				}
				entries = lf.Entries
			} else {
				stored, err := storedLog(ctx)
				if err != nil {
					return err
				}
				entries = stored.Entries
			}
			pub, err := checkpointKey(ctx, keyFile)
			if err != nil {
				return withExit(2, err)
			}
			type result struct {
				Verified    bool                 `json:"verified"`
				Checkpoints int                  `json:"checkpoints"`
				Latest      *checkpoint.TreeHead `json:"latest,omitempty"`
				Error       string               `json:"error,omitempty"`
			}
			r := result{Checkpoints: len(entries)}
			l, err := checkpoint.VerifyLog(entries, pub)
			if err == nil && witness != "" {
				err = checkWitness(l, witness)
			}
			if err == nil {
				if last, ok := l.Latest(); ok {
					r.Latest = &last.Head
				}
			}
			r.Verified = err == nil
			if err != nil {
				r.Error = err.Error()
			}
			if werr := writeJSON(cmd.OutOrStdout(), r); werr != nil {
				return werr
			}
			if err != nil {
				return withExit(exitTampered, err)
			}
			return nil
		},
	}
	verify.Flags().StringVar(&file, "file", "", "exported checkpoint log (default: the deployed checkpoints table)")
	verify.Flags().StringVar(&keyFile, "public-key", "", "checkpoint public key, PEM (default: the stack's KMS key)")
	verify.Flags().StringVar(&witness, "witness", "", "a signed tree head (JSON) seen earlier that the log must still hold")
	cp.AddCommand(create, export, verify)
	root.AddCommand(cp)
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// storedLog reads the deployed checkpoint log.
func storedLog(ctx context.Context) (store.StoredLog, error) {
	cfg, res, err := deployedStack(ctx, stack.OutCheckpointsTable)
	if err != nil {
		return store.StoredLog{}, withExit(2, err)
	}
	return store.NewCheckpoints(dynamodb.NewFromConfig(cfg), res.CheckpointsTable).Load(ctx)
}

// checkpointKey is the checkpoint public key: from a PEM file when given,
// else from the stack's KMS key.
func checkpointKey(ctx context.Context, pemFile string) (crypto.PublicKey, error) {
	if pemFile != "" {
		return readPublicKey(pemFile)
	}
	cfg, res, err := deployedStack(ctx, stack.OutCheckpointKeyID)
	if err != nil {
		return nil, err
	}
	return kmsKey(ctx, cfg, res)
}

func kmsKey(ctx context.Context, cfg aws.Config, res stack.Resources) (crypto.PublicKey, error) {
	return signer.NewKMS(kms.NewFromConfig(cfg), res.CheckpointKeyID).PublicKey(ctx)
}

// checkWitness checks that a verified log still holds a tree head seen
// before.
func checkWitness(l *checkpoint.Log, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read witness: %w", err)
	}
	var h checkpoint.TreeHead
	if err := json.Unmarshal(b, &h); err != nil {
		return fmt.Errorf("witness %s: %w", path, err)
	}
	es := l.Entries()
	if h.Seq >= uint64(len(es)) {
		return fmt.Errorf("%w: the witnessed checkpoint %d is gone: the log holds %d", checkpoint.ErrLog, h.Seq, len(es))
	}
	if es[h.Seq].Head != h {
		return fmt.Errorf("%w: checkpoint %d differs from the witnessed one", checkpoint.ErrLog, h.Seq)
	}
	return nil
}

// awaitVerified polls until the verifier's watermark of a case reaches the
// case's head, or gives up after d.
func awaitVerified(ctx context.Context, cases *store.Cases, chains *store.Receipts, id string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		tail, err := chains.Tail(ctx, id)
		if err == nil && tail == nil {
			return withExit(2, fmt.Errorf("case %s: no receipts", id))
		}
		if err == nil {
			var ws map[string]receipt.Watermark
			if ws, err = cases.Watermarks(ctx, []string{id}); err == nil && ws[id].Seq >= tail.Seq {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return fmt.Errorf("case %s: not verified within %s: %w", id, d, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
