package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// Exit statuses of the commands in this file (2 is a usage error, 3 an
// integrity finding).
const (
	exitFailed   = 1 // the case ended faulted or cancelled, or the wait timed out
	exitConflict = 4 // the idempotency key names a case started with another input
)

// caseReleaseCmd ends a case's quarantine. The release is an operator
// action recorded in the state table (who, when, why, the findings
// released) and logged, not a receipt: the quarantined chain is the very
// thing in question, and a receipt appended to it would extend a chain that
// failed verification.
func caseReleaseCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "release CASE_ID --reason TEXT",
		Short: "End a case's quarantine (after repairing or clearing its chain) and resume it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			id := args[0]
			cfg, res, err := deployedStack(ctx, stack.OutReceiptsTable, stack.OutStateTable, stack.OutWorkQueueURL)
			if err != nil {
				return err
			}
			db := dynamodb.NewFromConfig(cfg)
			rs, bad, err := store.NewReceipts(db, res.ReceiptsTable).Chain(ctx, id)
			if err != nil {
				return err
			}
			if fs := append(bad, receipt.VerifyChain(rs)...); len(fs) > 0 {
				return withExit(3, fmt.Errorf("case %s: the chain still does not verify (%v); repair it before releasing", id, fs[0]))
			}
			if len(rs) == 0 {
				return withExit(2, fmt.Errorf("case %s: no receipts", id))
			}
			by := callerARN(ctx, cfg)
			released, err := store.NewCases(db, res.StateTable).Release(ctx, id, by, reason)
			if errors.Is(err, store.ErrNotQuarantined) {
				return withExit(2, err)
			}
			if err != nil {
				return err
			}
			slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil)).Info("operator action: case released from quarantine",
				"caseId", id, "tenant", rs[0].Tenant, "by", by, "reason", reason, "findings", len(released))
			resume := &message.Continue{Kind: message.KindContinue, Tenant: rs[0].Tenant, CaseID: id,
				Reason: message.ReasonResume, ExpectedSeq: int64(len(rs))}
			if err := queue.NewSender(sqs.NewFromConfig(cfg), res.WorkQueueURL).Send(ctx, queue.Message{Body: resume, CaseID: id}); err != nil {
				return fmt.Errorf("case %s released, but the resume message failed (send one or wait for the case's next message): %w", id, err)
			}
			for _, f := range released {
				fmt.Fprintf(cmd.OutOrStdout(), "released  %s\n", f)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "case %s released by %s and resumed\n", id, by)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the quarantine ends (recorded)")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

// callerARN is the principal the CLI acts as, for the operator record.
func callerARN(ctx context.Context, cfg aws.Config) string {
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || out.Arn == nil {
		return "unknown (sts: " + fmt.Sprint(err) + ")"
	}
	return *out.Arn
}

// awaitSubmitted waits for a submitted case to end. A genesis whose input
// hash differs from the submitted input's means the idempotency key was
// used before with another input: nothing was started (exit 4).
func awaitSubmitted(ctx context.Context, w io.Writer, cfg aws.Config, res stack.Resources, caseID, key string, input []byte, timeout time.Duration) error {
	if res.ReceiptsTable == "" || res.StateTable == "" {
		return errors.New("--wait needs the stack's receipts and state tables (stack outputs)")
	}
	want, err := receipt.PayloadHash(input)
	if err != nil {
		return withExit(2, err)
	}
	db := dynamodb.NewFromConfig(cfg)
	chains, cases := store.NewReceipts(db, res.ReceiptsTable), store.NewCases(db, res.StateTable)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		rs, _, err := chains.Chain(ctx, caseID)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if len(rs) > 0 && rs[0].InputHash != want {
			return withExit(exitConflict, fmt.Errorf("case %s: idempotency key %q was already used with a different input (the case's input hash is %s, this submission's is %s); nothing was started",
				caseID, key, rs[0].InputHash, want))
		}
		if fs, _ := cases.Quarantined(ctx, caseID); len(fs) > 0 {
			return withExit(3, fmt.Errorf("case %s is quarantined: %v", caseID, fs[0]))
		}
		if len(rs) > 0 {
			switch last := rs[len(rs)-1]; last.Type {
			case history.CaseCompleted:
				fmt.Fprintf(w, "completed %s\n", last.Output)
				return nil
			case history.CaseFaulted, history.CaseCancelled:
				return withExit(exitFailed, fmt.Errorf("case %s ended %s: %+v", caseID, last.Type, last.Error))
			}
		}
		select {
		case <-ctx.Done():
			return withExit(exitFailed, fmt.Errorf("case %s has not ended after %s", caseID, timeout))
		case <-time.After(500 * time.Millisecond):
		}
	}
}
