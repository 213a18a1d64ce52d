package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

func init() {
	a := &cobra.Command{Use: "archive", Short: "List archived cases, hold them, verify archive objects (docs/audit.md)"}
	a.AddCommand(archiveListCmd(), archiveHoldCmd(), archiveVerifyCmd(), archiveRefusedCmd(), archiveRetryCmd())
	root.AddCommand(a)
}

// parseTime reads an RFC 3339 time or a date (midnight UTC).
func parseTime(flag, v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time or a date (YYYY-MM-DD)", flag, v)
}

func archiveListCmd() *cobra.Command {
	var from, to string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list --from T1 --to T2",
		Short: "List the cases archived that ended in [T1, T2), oldest first",
		Long: "list reads the archive index (one query of the state table's index by end time): each case's tenant, " +
			"end time, signed head, checkpoint, object key and version, size and SHA-256.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return withExit(2, errors.New("--from and --to are required"))
			}
			t1, err := parseTime("from", from)
			if err != nil {
				return withExit(2, err)
			}
			t2, err := parseTime("to", to)
			if err != nil {
				return withExit(2, err)
			}
			if !t1.Before(t2) {
				return withExit(2, fmt.Errorf("--from %s is not before --to %s", from, to))
			}
			ctx := cmd.Context()
			cfg, res, err := deployedStack(ctx, stack.OutStateTable)
			if err != nil {
				return withExit(2, err)
			}
			ss, err := store.NewArchives(dynamodb.NewFromConfig(cfg), res.StateTable).List(ctx, t1, t2)
			if err != nil {
				return err
			}
			if asJSON {
				if ss == nil {
					ss = []archive.Summary{}
				}
				return writeJSON(cmd.OutOrStdout(), ss)
			}
			printArchived(cmd.OutOrStdout(), ss)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first end time (RFC 3339 or YYYY-MM-DD), inclusive")
	cmd.Flags().StringVar(&to, "to", "", "last end time, exclusive")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printArchived(w io.Writer, ss []archive.Summary) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDED\tTENANT\tCASE\tHEAD\tCHECKPOINT\tBYTES\tKEY")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", s.Ended.Format(time.RFC3339), s.Tenant, s.CaseID, s.HeadSeq, s.Checkpoint, s.Size, s.Key)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d archived\n", len(ss))
}

func archiveHoldCmd() *cobra.Command {
	var release bool
	cmd := &cobra.Command{
		Use:   "hold CASE_ID [--release]",
		Short: "Put a case's archive object on S3 legal hold (or release it): no version can be deleted while held",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, res, err := deployedStack(ctx, stack.OutStateTable, stack.OutArchiveBucket)
			if err != nil {
				return withExit(2, err)
			}
			return holdArchive(ctx, cmd.OutOrStdout(), store.NewArchives(dynamodb.NewFromConfig(cfg), res.StateTable),
				objects.NewVersioned(objects.NewClient(cfg), res.ArchiveBucket), args[0], !release)
		},
	}
	cmd.Flags().BoolVar(&release, "release", false, "release the legal hold instead")
	return cmd
}

// holdArchive sets or releases the legal hold of the version of the case's
// archive object that the index names, and reads it back.
func holdArchive(ctx context.Context, w io.Writer, idx *store.Archives, b *objects.Versioned, caseID string, on bool) error {
	s, ok, err := idx.Archived(ctx, caseID)
	if err != nil {
		return err
	}
	if !ok {
		return withExit(1, fmt.Errorf("case %s is not archived", caseID))
	}
	if err := b.SetLegalHold(ctx, s.Key, s.VersionID, on); err != nil {
		return err
	}
	held, err := b.LegalHold(ctx, s.Key, s.VersionID)
	if err != nil {
		return err
	}
	if held != on {
		return fmt.Errorf("legal hold of s3://%s/%s is %v after setting it %v", b.Name(), s.Key, held, on)
	}
	state := "on legal hold"
	if !on {
		state = "released from legal hold"
	}
	fmt.Fprintf(w, "case %s: s3://%s/%s version %s %s\n", caseID, b.Name(), s.Key, s.VersionID, state)
	return nil
}

func archiveVerifyCmd() *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "verify FILE --public-key PEM",
		Short: "Verify an archive object offline with only the public key: exit 0 verified, 3 not",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return withExit(2, errors.New("--public-key is required"))
			}
			pub, err := readPublicKey(keyFile)
			if err != nil {
				return withExit(2, err)
			}
			data, err := readAtMost(args[0], archive.MaxSize, "archive")
			if err != nil {
				return withExit(2, err)
			}
			type result struct {
				Verified bool   `json:"verified"`
				Tenant   string `json:"tenant,omitempty"`
				CaseID   string `json:"caseId,omitempty"`
				Ended    string `json:"ended,omitempty"`
				HeadSeq  *int64 `json:"headSeq,omitempty"`
				Payloads int    `json:"payloads"`
				Error    string `json:"error,omitempty"`
			}
			var r result
			a, err := archive.Decode(data)
			if err == nil {
				r.Tenant, r.CaseID, r.Ended, r.Payloads = a.Tenant, a.CaseID, a.Ended, len(a.Payloads)
				if err = archive.Verify(a, pub); err == nil {
					r.HeadSeq = &a.Proof.Leaf.Seq
				}
			}
			r.Verified = err == nil
			if err != nil {
				r.Error = err.Error()
			}
			if werr := writeJSON(cmd.OutOrStdout(), r); werr != nil {
				return werr
			}
			if !r.Verified {
				return withExit(exitTampered, errors.New(""))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "public-key", "", "PEM file of the checkpoint signing key")
	return cmd
}
