package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/workflow/engine"
)

func init() {
	root.AddCommand(submitCmd())
	cs := &cobra.Command{Use: "case", Short: "Inspect cases of a deployed stack"}
	cs.AddCommand(caseShowCmd(), caseReleaseCmd(), caseListCmd())
	root.AddCommand(cs)
	root.AddCommand(findingsCmd())
}

func submitCmd() *cobra.Command {
	var ref, input, tenant, key string
	var wait bool
	var waitFor time.Duration
	cmd := &cobra.Command{
		Use:   "submit --workflow [NAMESPACE/]NAME[:VERSION] --input FILE|- [--tenant T] [--key K]",
		Short: "Start a workflow case by sending a start message to the work queue; prints the case id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, name, version, err := parseWorkflowRef(ref)
			if err != nil {
				return withExit(2, err)
			}
			in, err := readInput(cmd.InOrStdin(), input)
			if err != nil {
				return withExit(2, err)
			}
			raw, err := json.Marshal(in)
			if err != nil {
				return withExit(2, err)
			}
			if key == "" {
				key = randomKey()
			}
			start := message.Start{Kind: message.KindStart, Tenant: tenant, IdempotencyKey: key, Input: raw,
				Workflow: message.WorkflowRef{Namespace: ns, Name: name, Version: version}}
			// Validate exactly as the executor will, limits included, before
			// anything is sent or stored.
			body, err := json.Marshal(start)
			if err != nil {
				return err
			}
			byRef := len(body) > message.MaxBodyBytes
			if err := start.CheckInput(); err != nil {
				return withExit(2, err)
			}
			if !byRef {
				if _, err := message.Admit(body); err != nil {
					return withExit(2, err)
				}
			}
			ctx := cmd.Context()
			cfg, res, err := deployedStack(ctx, stack.OutWorkQueueURL, stack.OutStateTable)
			if err != nil {
				return err
			}
			if byRef {
				// Too large to send inline: the input travels by reference,
				// uploaded to the payloads bucket (a stack without one keeps
				// it as a blob of the state table).
				var blobs store.BlobStore = store.NewState(dynamodb.NewFromConfig(cfg), res.StateTable)
				if res.PayloadBucket != "" {
					blobs = objects.NewPayloads(objects.New(objects.NewClient(cfg), res.PayloadBucket))
				}
				if err := store.ByReference(ctx, blobs, &start); err != nil {
					return withExit(2, err)
				}
				if body, err = json.Marshal(start); err != nil {
					return err
				}
			}
			m, err := message.Admit(body)
			if err != nil {
				return withExit(2, err)
			}
			caseID := m.Start.CaseID()
			if err := queue.NewSender(sqs.NewFromConfig(cfg), res.WorkQueueURL).Send(ctx, queue.Message{Body: m.Start, CaseID: caseID}); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), caseID)
			if wait {
				return awaitSubmitted(ctx, cmd.OutOrStdout(), cfg, res, caseID, key, raw, waitFor)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&wait, "wait", false, "wait for the case to end; exit 4 if the key was used before with another input, 1 if the case faults")
	f.DurationVar(&waitFor, "timeout", 5*time.Minute, "with --wait: how long to wait")
	f.StringVar(&ref, "workflow", "", "workflow to start: [NAMESPACE/]NAME[:VERSION] (latest when no version)")
	f.StringVar(&input, "input", "", "input JSON file, or - for standard input (default {})")
	f.StringVar(&tenant, "tenant", message.DefaultTenant, "tenant")
	f.StringVar(&key, "key", "", "idempotency key (default: a random one); re-sending with the same key opens no second case")
	_ = cmd.MarkFlagRequired("workflow")
	return cmd
}

func randomKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// caseView is what `case show` reports.
type caseView struct {
	CaseID string `json:"caseId"`
	// Source is where the receipts were read: "table", or "archive" when
	// the receipts table no longer holds the whole chain; Archive then
	// names the verified archive object.
	Source   string            `json:"source"`
	Archive  string            `json:"archive,omitempty"`
	Tenant   string            `json:"tenant"`
	Workflow string            `json:"workflow"`
	Status   engine.Status     `json:"status"`
	Receipts int               `json:"receipts"`
	Verified bool              `json:"verified"`
	Findings []receipt.Finding `json:"findings,omitempty"`
	// Recorded are the open findings the verifier and the checkpointer
	// recorded against the case.
	Recorded []receipt.Finding `json:"recorded,omitempty"`
	// Quarantine holds the findings the case is quarantined for: it
	// refuses every message until `knhk case release`.
	Quarantine []receipt.Finding     `json:"quarantine,omitempty"`
	Conflicts  []store.StartConflict `json:"startConflicts,omitempty"`
	Waiting    []string              `json:"waiting,omitempty"` // tasks awaiting an effect or an event
	Output     json.RawMessage       `json:"output,omitempty"`
	Error      *history.Error        `json:"error,omitempty"`
	StartedAt  time.Time             `json:"startedAt,omitzero"`
	LastEvents []receiptLine         `json:"last"`
}

type receiptLine struct {
	Seq  int64        `json:"seq"`
	Type history.Type `json:"type"`
	Task string       `json:"task,omitempty"`
	Time time.Time    `json:"time,omitzero"`
	// SincePrev is the time from the previous receipt's time to this one's
	// (0 for the first line shown when its predecessor has no time).
	SincePrev time.Duration `json:"sincePrevNs,omitempty"`
}

// receiptTime is when a receipt's event happened: its end when it has one,
// else the time of the stimulus that produced it.
func receiptTime(r *receipt.Receipt) time.Time {
	if !r.Ended.IsZero() {
		return r.Ended
	}
	return r.Started
}

// receiptLines describes the last n receipts of a chain with their times and
// the time since the receipt before each.
func receiptLines(rs []*receipt.Receipt, n int) []receiptLine {
	from := max(0, len(rs)-n)
	out := make([]receiptLine, 0, len(rs)-from)
	for i := from; i < len(rs); i++ {
		l := receiptLine{Seq: rs[i].Seq, Type: rs[i].Type, Task: rs[i].Task, Time: receiptTime(rs[i])}
		if i > 0 {
			if prev := receiptTime(rs[i-1]); !prev.IsZero() && !l.Time.IsZero() {
				l.SincePrev = l.Time.Sub(prev)
			}
		}
		out = append(out, l)
	}
	return out
}

func caseShowCmd() *cobra.Command {
	var last int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show CASE_ID",
		Short: "Show a case: status, where it waits, its last receipts and any integrity finding",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, res, err := deployedStack(ctx, stack.OutReceiptsTable, stack.OutStateTable)
			if err != nil {
				return err
			}
			db := dynamodb.NewFromConfig(cfg)
			chains := store.NewReceipts(db, res.ReceiptsTable)
			chains.Blobs = payloadBlobs(cfg, db, res.StateTable, res.PayloadBucket)
			cc, err := readCase(ctx, cfg, res, chains, args[0])
			if err != nil {
				return err
			}
			if cc.Archive != nil {
				chains.Blobs = archivedBlobs{m: cc.Archive.Blobs(), next: chains.Blobs}
			}
			rs := cc.Receipts
			v := caseView{CaseID: args[0], Source: cc.Source, Archive: cc.Object, Receipts: len(rs) + len(cc.Bad),
				Findings: append(cc.findings(), receipt.VerifyChain(rs)...)}
			if v.Recorded, _, err = caseRecords(ctx, db, res.StateTable, args[0]); err != nil {
				return err
			}
			v.Verified = len(v.Findings) == 0 && len(v.Recorded) == 0
			if len(rs) > 0 && rs[0].Genesis != nil {
				g := rs[0].Genesis
				v.Tenant, v.Workflow = rs[0].Tenant, fmt.Sprintf("%s/%s:%s", g.Namespace, g.Workflow, g.Version)
				if err := foldCase(ctx, &v, chains, registry.New(db, res.StateTable), rs); err != nil {
					return err
				}
			}
			cases := store.NewCases(db, res.StateTable)
			if v.Quarantine, err = cases.Quarantined(ctx, args[0]); err != nil {
				return err
			}
			if v.Conflicts, err = cases.StartConflicts(ctx, args[0]); err != nil {
				return err
			}
			v.LastEvents = receiptLines(rs, last)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			printCase(cmd.OutOrStdout(), v)
			if !v.Verified {
				return withExit(3, fmt.Errorf("case %s: chain does not verify or has open findings", v.CaseID))
			}
			if len(v.Quarantine) > 0 {
				return withExit(3, fmt.Errorf("case %s is quarantined (release with `knhk case release %s --reason ...`)", v.CaseID, v.CaseID))
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&last, "last", 10, "how many of the last receipts to show")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// foldCase replays the chain with the pinned descriptor to report status and
// position.
func foldCase(ctx context.Context, v *caseView, chains *store.Receipts, reg *registry.Registry, rs []*receipt.Receipt) error {
	g := rs[0].Genesis
	d, err := reg.Load(ctx, g.Namespace, g.Workflow, g.Version, g.DescriptorHash)
	if err != nil {
		return fmt.Errorf("case %s: pinned descriptor: %w", v.CaseID, err)
	}
	evs, err := chains.Events(ctx, rs)
	if err != nil {
		return err
	}
	st, err := engine.Replay(d.Workflow, evs)
	if err != nil {
		v.Findings = append(v.Findings, receipt.Finding{Kind: receipt.HistoryInvalid, Tenant: v.Tenant, CaseID: v.CaseID, Detail: err.Error()})
		v.Verified = false
		return nil
	}
	v.Status, v.Output, v.Error, v.StartedAt = st.Status, st.Output, st.Error, st.StartedAt
	for _, r := range st.Records {
		if r.Status == engine.RecAwaiting || r.Status == engine.RecRequested {
			v.Waiting = append(v.Waiting, fmt.Sprintf("%s (%s)", r.Task, r.Status))
		}
	}
	for id, t := range st.Timers {
		if !t.Fired {
			v.Waiting = append(v.Waiting, fmt.Sprintf("timer %s due %s", id, t.Due.Format(time.RFC3339)))
		}
	}
	slices.Sort(v.Waiting)
	return nil
}

func printCase(w io.Writer, v caseView) {
	fmt.Fprintf(w, "case      %s\ntenant    %s\nworkflow  %s\nstatus    %s\nreceipts  %d (chain verified: %t)\n", v.CaseID, v.Tenant, v.Workflow, v.Status, v.Receipts, v.Verified)
	if v.Source == sourceArchive {
		fmt.Fprintf(w, "source    archive %s (verified)\n", v.Archive)
	}
	for _, f := range v.Findings {
		fmt.Fprintf(w, "finding   %s\n", f)
	}
	for _, f := range v.Recorded {
		fmt.Fprintf(w, "recorded  %s\n", f)
	}
	for _, f := range v.Quarantine {
		fmt.Fprintf(w, "quarantined  %s\n", f)
	}
	for _, c := range v.Conflicts {
		fmt.Fprintf(w, "conflict  %s: key %q reused with input %s\n", c.At.Format(time.RFC3339), c.IdempotencyKey, c.InputHash)
	}
	for _, x := range v.Waiting {
		fmt.Fprintf(w, "waiting   %s\n", x)
	}
	if len(v.Output) > 0 {
		fmt.Fprintf(w, "output    %s\n", v.Output)
	}
	if v.Error != nil {
		fmt.Fprintf(w, "error     %s %d %s: %s at %s\n", v.Error.Type, v.Error.Status, v.Error.Title, v.Error.Detail, v.Error.Instance)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTYPE\tTASK\tTIME\t+PREV")
	for _, l := range v.LastEvents {
		ts, since := "", ""
		if !l.Time.IsZero() {
			ts = l.Time.Format(time.RFC3339Nano)
		}
		if l.SincePrev > 0 {
			since = "+" + l.SincePrev.Round(time.Microsecond).String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", l.Seq, l.Type, l.Task, ts, since)
	}
	tw.Flush()
}

// receiptsOfCase prints a case's stored receipts, canonical, one per line.
func receiptsOfCase(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	ctx := cmd.Context()
	cfg, res, err := deployedStack(ctx, stack.OutReceiptsTable)
	if err != nil {
		return err
	}
	cc, err := readCase(ctx, cfg, res, store.NewReceipts(dynamodb.NewFromConfig(cfg), res.ReceiptsTable), args[0])
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	for _, r := range cc.Receipts {
		c, err := r.Canonical()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s\n", c)
	}
	// Standard output stays a receipts file; where it came from goes to
	// standard error.
	fmt.Fprintf(cmd.ErrOrStderr(), "source: %s\n", cc.sourceLine())
	fs := cc.findings()
	for _, f := range fs {
		fmt.Fprintln(cmd.ErrOrStderr(), "finding:", f)
	}
	if len(fs) > 0 {
		return withExit(3, fmt.Errorf("case %s: %d stored items do not decode or disagree with the archive", args[0], len(fs)))
	}
	return nil
}

func findingsCmd() *cobra.Command {
	var since time.Duration
	var limit int
	cmd := &cobra.Command{
		Use:   "findings",
		Short: "List recent integrity findings recorded by the verifier, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, res, err := deployedStack(ctx, stack.OutStateTable)
			if err != nil {
				return err
			}
			fs, err := store.NewFindings(dynamodb.NewFromConfig(cfg), res.StateTable).Recent(ctx, time.Now().Add(-since), limit)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			for _, f := range fs {
				if err := enc.Encode(f); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&since, "since", 24*time.Hour, "how far back to look")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many findings (0: all)")
	return cmd
}
