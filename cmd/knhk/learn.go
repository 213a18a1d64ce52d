package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/learn"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/tuner"
)

// learnView is what `knhk learn` shows: the loop's knowledge (each
// setting's value replayed from the system chain), the open
// recommendations, the applied changes with their verdicts, and the modes.
type learnView struct {
	LastRun       time.Time              `json:"lastRun,omitzero"`
	KillSwitch    bool                   `json:"killSwitch"`
	RecommendOnly bool                   `json:"recommendOnly"`
	Switches      tuner.Switches         `json:"switches"`
	Knowledge     map[string]int64       `json:"knowledge"`
	Overrides     map[string]int64       `json:"overrides"`
	Open          []learn.Recommendation `json:"open"`
	Changes       []changeView           `json:"changes"`
	Refused       []learn.Refusal        `json:"refused,omitempty"`
	Decisions     []tuner.Decision       `json:"decisions,omitempty"`
}

// changeView is a recorded change with its verdict, once judged.
type changeView struct {
	learn.Change
	Verdict *tuner.Verdict `json:"verdict,omitempty"`
}

// learnStore opens the tuner's items and the system chain of the deployed
// stack.
func learnStore(ctx context.Context) (tuner.Items, *store.Receipts, error) {
	cfg, res, err := deployedStack(ctx, stack.OutStateTable, stack.OutReceiptsTable)
	if err != nil {
		return tuner.Items{}, nil, err
	}
	ddb := dynamodb.NewFromConfig(cfg)
	return tuner.Items{DB: ddb, Table: res.StateTable}, store.NewReceipts(ddb, res.ReceiptsTable), nil
}

func loadLearnView(ctx context.Context, items tuner.Items, receipts *store.Receipts) (learnView, error) {
	var v learnView
	st, err := items.State(ctx)
	if err != nil {
		return v, err
	}
	if v.Switches, err = items.Switches(ctx); err != nil {
		return v, err
	}
	if v.Overrides, _, err = items.Overrides(ctx); err != nil {
		return v, err
	}
	changes, err := (&tuner.Chain{Store: receipts}).Changes(ctx)
	if err != nil {
		return v, err
	}
	initial, err := st.InitialSettings()
	if err != nil {
		return v, err
	}
	k, err := learn.Replay(initial, changes)
	if err != nil {
		return v, fmt.Errorf("replay the system chain: %w", err)
	}
	v.LastRun, v.KillSwitch, v.RecommendOnly = st.LastRun, st.KillSwitch, st.RecommendOnly
	v.Knowledge, v.Open, v.Refused, v.Decisions = k.Values(), st.Open, st.Refused, st.Decisions
	if v.Open == nil {
		v.Open = []learn.Recommendation{}
	}
	verdicts := map[string]tuner.Verdict{}
	for _, vd := range st.Verdicts {
		verdicts[vd.ChangeID] = vd
	}
	v.Changes = []changeView{}
	for _, c := range changes {
		cv := changeView{Change: c}
		if vd, ok := verdicts[c.ID]; ok {
			cv.Verdict = &vd
		}
		v.Changes = append(v.Changes, cv)
	}
	return v, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func printLearnView(w io.Writer, v learnView) {
	last := "never"
	if !v.LastRun.IsZero() {
		last = v.LastRun.Format(time.RFC3339)
	}
	mode := "applying admitted changes"
	if v.RecommendOnly {
		mode = "recommendation only"
	}
	fmt.Fprintf(w, "learning loop: last run %s, kill switch %s, %s\n", last, onOff(v.KillSwitch), mode)
	if v.Switches.KillSwitch != nil || v.Switches.RecommendOnly != nil {
		var s []string
		if v.Switches.KillSwitch != nil {
			s = append(s, "kill switch "+onOff(*v.Switches.KillSwitch))
		}
		if v.Switches.RecommendOnly != nil {
			s = append(s, "recommendation only "+onOff(*v.Switches.RecommendOnly))
		}
		fmt.Fprintf(w, "operator switches: %s\n", strings.Join(s, ", "))
	}
	fmt.Fprintln(w, "\nknowledge:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, key := range slices.Sorted(func(yield func(string) bool) {
		for k := range v.Knowledge {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(tw, "  %s\t%d\n", key, v.Knowledge[key])
	}
	tw.Flush()
	fmt.Fprintln(w, "\nopen recommendations (as planned; applied within one step of the guardrails):")
	if len(v.Open) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, r := range v.Open {
		fmt.Fprintf(w, "  %s  %s %d → %d  (%s)  %s\n", r.ID, r.Setting.Key(), r.From, r.To, r.Rule, evidenceLine(r.Evidence))
		fmt.Fprintf(w, "      expected: %s\n", r.Expected.Note)
	}
	fmt.Fprintln(w, "\nchanges (system chain):")
	if len(v.Changes) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, c := range v.Changes {
		verdict := "under trial or not judged"
		switch {
		case c.Rule == "rollback" || c.Rule == "external":
			verdict = c.Evidence[0].Note
		case c.Verdict != nil && c.Verdict.Kept:
			verdict = fmt.Sprintf("kept: p99 %v → %v, availability %.4f → %.4f", c.Verdict.Before.P99, c.Verdict.After.P99,
				c.Verdict.Before.Availability, c.Verdict.After.Availability)
		case c.Verdict != nil:
			verdict = "rolled back: " + c.Verdict.Reason
		}
		fmt.Fprintf(w, "  %s  %s  %s %d → %d  (%s)  %s\n", c.At.Format(time.RFC3339), c.ID, c.Setting.Key(), c.Previous, c.Value, c.Rule, verdict)
	}
	if len(v.Refused) > 0 {
		fmt.Fprintln(w, "\nrefused in the last run:")
		for _, r := range v.Refused {
			fmt.Fprintf(w, "  %s %s: %s\n", r.Recommendation.ID, r.Recommendation.Setting.Key(), r.Reason)
		}
	}
}

func evidenceLine(ev []learn.Evidence) string {
	var s []string
	for _, e := range ev {
		s = append(s, fmt.Sprintf("%s %.4g (threshold %.4g)", e.Metric, e.Value, e.Threshold))
	}
	return strings.Join(s, ", ")
}

// setSwitch changes one operator switch in the state table.
func setSwitch(ctx context.Context, items tuner.Items, set func(*tuner.Switches)) error {
	for attempt := 0; ; attempt++ {
		sw, err := items.Switches(ctx)
		if err != nil {
			return err
		}
		set(&sw)
		sw.At = time.Now().UTC()
		if err = items.SaveSwitches(ctx, &sw); !errors.Is(err, tuner.ErrConflict) || attempt >= 2 {
			return err
		}
	}
}

func parseOnOff(s string) (bool, error) {
	switch s {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("%q: want on or off", s)
}

func init() {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "learn",
		Short: "Show the learning loop: knowledge, open recommendations, applied changes with their effects, kill switch",
		Long: "Reads the loop's state from the state table and replays its system chain (verified as it is read) into the " +
			"settings' current values. The subcommands answer open recommendations and set the operator's switches.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, receipts, err := learnStore(cmd.Context())
			if err != nil {
				return withExit(2, err)
			}
			v, err := loadLearnView(cmd.Context(), items, receipts)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			printLearnView(cmd.OutOrStdout(), v)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	for _, d := range []struct {
		use, short string
		approve    bool
	}{
		{"apply ID", "Approve an open recommendation: the next run applies it through the guardrails", true},
		{"reject ID", "Reject an open recommendation", false},
	} {
		cmd.AddCommand(&cobra.Command{
			Use: d.use, Short: d.short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				items, _, err := learnStore(cmd.Context())
				if err != nil {
					return withExit(2, err)
				}
				if err := tuner.Decide(cmd.Context(), items, args[0], d.approve, time.Now()); err != nil {
					if errors.Is(err, tuner.ErrNotOpen) {
						return withExit(1, err)
					}
					return err
				}
				verb := "rejected"
				if d.approve {
					verb = "approved (applied by the next run, within the guardrails)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", args[0], verb)
				return nil
			},
		})
	}
	for _, sw := range []struct {
		use, short string
		set        func(*tuner.Switches, bool)
	}{
		{"kill-switch on|off", "Stop (on) or allow (off) every change of the loop, rollbacks included; the deployed kill switch cannot be turned off here",
			func(s *tuner.Switches, b bool) { s.KillSwitch = &b }},
		{"recommend-only on|off", "Keep recommendations open for an operator (on) or let the loop apply what the guardrails admit (off)",
			func(s *tuner.Switches, b bool) { s.RecommendOnly = &b }},
	} {
		cmd.AddCommand(&cobra.Command{
			Use: sw.use, Short: sw.short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				b, err := parseOnOff(args[0])
				if err != nil {
					return withExit(2, err)
				}
				items, _, err := learnStore(cmd.Context())
				if err != nil {
					return withExit(2, err)
				}
				if err := setSwitch(cmd.Context(), items, func(s *tuner.Switches) { sw.set(s, b) }); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", strings.Fields(sw.use)[0], args[0])
				return nil
			},
		})
	}
	root.AddCommand(cmd)
}
