package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
)

func init() {
	rc := &cobra.Command{
		Use:   "receipts [CASE_ID]",
		Short: "Print a case's stored receipts as JSON lines, or chain an event history offline",
		Args:  cobra.MaximumNArgs(1),
		RunE:  receiptsOfCase,
	}
	var events, tenant, caseID string
	chain := &cobra.Command{
		Use:   "chain --events FILE --tenant T --case ID",
		Short: "Turn an event history (JSON lines of events, as `exec --history` writes) into chained receipts on stdout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if events == "" || tenant == "" || caseID == "" {
				return withExit(2, errors.New("--events, --tenant and --case are required"))
			}
			f, err := os.Open(events)
			if err != nil {
				return withExit(2, fmt.Errorf("read events: %w", err))
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), maxReceiptLine)
			w := bufio.NewWriter(cmd.OutOrStdout())
			var prev *receipt.Receipt
			for line := 1; sc.Scan(); line++ {
				b := bytes.TrimSpace(sc.Bytes())
				if len(b) == 0 {
					continue
				}
				ev, err := decodeEvent(b)
				if err != nil {
					return withExit(2, fmt.Errorf("events line %d: %w", line, err))
				}
				// The history names the workflow; the tenant comes from the caller.
				if ev.Genesis != nil && ev.Genesis.Tenant == "" {
					g := *ev.Genesis
					g.Tenant = tenant
					ev.Genesis = &g
				}
				r, err := receipt.New(prev, tenant, caseID, ev)
				if err != nil {
					return withExit(2, fmt.Errorf("events line %d: %w", line, err))
				}
				if len(r.Detached) > 0 {
					return withExit(2, fmt.Errorf("events line %d: payload over %d bytes cannot be chained offline", line, receipt.InlineLimit))
				}
				c, err := r.Canonical()
				if err != nil {
					return err
				}
				w.Write(c)
				w.WriteByte('\n')
				prev = r
			}
			if err := sc.Err(); err != nil {
				return fmt.Errorf("read events: %w", err)
			}
			return w.Flush()
		},
	}
	chain.Flags().StringVar(&events, "events", "", "JSON-lines file of history events")
	chain.Flags().StringVar(&tenant, "tenant", "", "tenant of the case")
	chain.Flags().StringVar(&caseID, "case", "", "case id")
	rc.AddCommand(chain)
	root.AddCommand(rc)
}

func decodeEvent(b []byte) (history.Event, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var ev history.Event
	if err := dec.Decode(&ev); err != nil {
		return ev, err
	}
	if dec.More() {
		return ev, errors.New("trailing data after the event")
	}
	return ev, nil
}
