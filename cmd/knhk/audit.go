package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/audit"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

func init() {
	a := &cobra.Command{Use: "audit", Short: "Export a period for an auditor and verify such an export offline (docs/audit.md)"}
	a.AddCommand(auditExportCmd(), auditVerifyCmd())
	root.AddCommand(a)
}

func auditExportCmd() *cobra.Command {
	var from, to, out string
	cmd := &cobra.Command{
		Use:   "export --from T1 --to T2 --out DIR",
		Short: "Write everything an auditor needs for the cases that ended in [T1, T2) to a new directory",
		Long: "export reads the checkpoint log and verifies it with the stack's KMS key, lists the archive index for the " +
			"period, reads each indexed case's archive object (the indexed version) from the archive bucket, and writes " +
			"the signed checkpoints from the one before the period through the last one the cases need, the index, the " +
			"archive objects, the public key and a manifest of every file with its SHA-256. It then verifies the export " +
			"as `audit verify` would. Exit 0 written and verified, 3 when something read does not verify, 2 on bad usage.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" || out == "" {
				return withExit(2, errors.New("--from, --to and --out are required"))
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
			if err := newDir(out); err != nil {
				return withExit(2, err)
			}
			ctx := cmdContext(cmd)
			cfg, res, err := deployedStack(ctx, stack.OutStateTable, stack.OutArchiveBucket, stack.OutCheckpointsTable, stack.OutCheckpointKeyID)
			if err != nil {
				return withExit(2, err)
			}
			db := dynamodb.NewFromConfig(cfg)
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
			index, err := store.NewArchives(db, res.StateTable).List(ctx, t1, t2)
			if err != nil {
				return err
			}
			entries, anchor, err := audit.Select(l.Entries(), t1, t2, index)
			if err != nil {
				return withExit(exitTampered, err)
			}
			files, err := audit.Assemble(t1, t2, time.Now(), entries, anchor, index, pub)
			if err != nil {
				return withExit(exitTampered, err)
			}
			bucket := objects.NewVersioned(objects.NewClient(cfg), res.ArchiveBucket)
			if err := os.MkdirAll(filepath.Join(out, audit.CasesDir), 0o755); err != nil {
				return fmt.Errorf("audit export: %w", err)
			}
			for _, s := range index {
				data, err := bucket.Get(ctx, s.Key, s.VersionID, archive.MaxSize)
				if err != nil {
					return fmt.Errorf("audit export: case %s: %w", s.CaseID, err)
				}
				if err := audit.CheckObject(s, data); err != nil {
					return withExit(exitTampered, fmt.Errorf("audit export: s3://%s/%s version %s: %w", bucket.Name(), s.Key, s.VersionID, err))
				}
				if err := writeNew(filepath.Join(out, filepath.FromSlash(audit.CasePath(s.SHA256))), data); err != nil {
					return err
				}
			}
			for p, data := range files {
				if p != audit.ManifestFile {
					if err := writeNew(filepath.Join(out, p), data); err != nil {
						return err
					}
				}
			}
			if err := writeNew(filepath.Join(out, audit.ManifestFile), files[audit.ManifestFile]); err != nil {
				return err
			}
			rep, err := audit.Verify(os.DirFS(out), pub, nil)
			if err != nil {
				return withExit(exitTampered, fmt.Errorf("audit export: the written export does not verify: %w", err))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d cases, %d checkpoints%s, %d files; verified\n",
				out, rep.Cases, rep.Checkpoints, seqRange(rep), rep.Files+1)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first end time (RFC 3339 or YYYY-MM-DD), inclusive")
	cmd.Flags().StringVar(&to, "to", "", "last end time, exclusive")
	cmd.Flags().StringVar(&out, "out", "", "directory to write (must not exist, or be empty)")
	return cmd
}

// seqRange describes the exported checkpoints' seqs and anchor.
func seqRange(r *audit.Report) string {
	if r.First == nil {
		return ""
	}
	s := fmt.Sprintf(" (seq %d to %d", r.First.Seq, r.Latest.Seq)
	if r.Anchor != nil {
		s += fmt.Sprintf(", anchored at %d", *r.Anchor)
	}
	return s + ")"
}

// newDir checks that dir does not exist or is an empty directory.
func newDir(dir string) error {
	es, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--out %s: %w", dir, err)
	case len(es) > 0:
		return fmt.Errorf("--out %s is not empty", dir)
	}
	return nil
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	if _, err := fh.Write(data); err != nil {
		fh.Close()
		return fmt.Errorf("audit export: write %s: %w", path, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("audit export: write %s: %w", path, err)
	}
	return nil
}

func auditVerifyCmd() *cobra.Command {
	var keyFile, witness string
	cmd := &cobra.Command{
		Use:   "verify DIR --public-key PEM [--witness HEAD.json]",
		Short: "Verify a period export offline with only the public key: exit 0 verified, 3 not",
		Long: "verify checks an export `audit export` wrote, without AWS: the manifest matches the files; the checkpoints " +
			"form one append-only sequence signed by the key, anchored before the period; every case of the period's " +
			"index is present, verifies (receipts, payloads, inclusion) and is proved in an exported checkpoint. " +
			"--witness names a signed tree head kept from before (the previous audit's \"latest\"): the export must hold it. " +
			"Exit 0 verified, 3 not verified, 2 on bad usage (no key, no directory).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return withExit(2, errors.New("--public-key is required"))
			}
			pub, err := readPublicKey(keyFile)
			if err != nil {
				return withExit(2, err)
			}
			if st, err := os.Stat(args[0]); err != nil || !st.IsDir() {
				return withExit(2, fmt.Errorf("%s is not a directory (%v)", args[0], err))
			}
			var w *checkpoint.TreeHead
			if witness != "" {
				b, err := os.ReadFile(witness)
				if err != nil {
					return withExit(2, fmt.Errorf("read witness: %w", err))
				}
				w = new(checkpoint.TreeHead)
				if err := json.Unmarshal(b, w); err != nil {
					return withExit(2, fmt.Errorf("witness %s: %w", witness, err))
				}
			}
			type result struct {
				Verified bool `json:"verified"`
				*audit.Report
				Error string `json:"error,omitempty"`
			}
			rep, err := audit.Verify(os.DirFS(args[0]), pub, w)
			r := result{Verified: err == nil, Report: rep}
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
	cmd.Flags().StringVar(&keyFile, "public-key", "", "PEM file of the checkpoint signing key, obtained independently of the export")
	cmd.Flags().StringVar(&witness, "witness", "", "a signed tree head (JSON) kept from before that the export must hold")
	return cmd
}
