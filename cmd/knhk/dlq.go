package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/dlq"
	"github.com/knhk/knhk/shared/stack"
)

func init() {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show and redrive the dead-letter queue's messages",
	}
	var max int
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead-lettered messages (kind, case, receive count, first sent) without removing any",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := deadLetters(cmd)
			if err != nil {
				return err
			}
			msgs, err := q.List(cmd.Context(), max)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), msgs)
			}
			printDeadLetters(cmd.OutOrStdout(), msgs)
			return nil
		},
	}
	list.Flags().IntVar(&max, "max", 0, "list at most this many (0: all)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	show := &cobra.Command{
		Use:   "show MESSAGE_ID",
		Short: "Print one dead-lettered message: body, attributes, what it is about",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := deadLetters(cmd)
			if err != nil {
				return err
			}
			m, ok, err := q.Show(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if !ok {
				return withExit(2, fmt.Errorf("message %s is not in the dead-letter queue", args[0]))
			}
			return writeJSON(cmd.OutOrStdout(), m)
		},
	}
	var f dlq.Filter
	redrive := &cobra.Command{
		Use:   "redrive [--case ID] [--max N]",
		Short: "Return dead-lettered messages to the work queue, with their attributes and trace",
		Long: "redrive returns messages to the work queue. Without --case or --max it starts an SQS message move " +
			"task where the endpoint has them (AWS); otherwise, and on the local endpoint, it moves messages one " +
			"at a time, each sent to the work queue before it is deleted from the dead-letter queue.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := deadLetters(cmd)
			if err != nil {
				return err
			}
			res, err := q.Redrive(cmd.Context(), f)
			if res.TaskHandle != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "started message move task %s\n", res.TaskHandle)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "redrove %d message(s)\n", len(res.Moved))
			}
			return err
		},
	}
	redrive.Flags().StringVar(&f.CaseID, "case", "", "only messages of this case")
	redrive.Flags().IntVar(&f.Max, "max", 0, "move at most this many (0: all)")
	cmd.AddCommand(list, show, redrive)
	root.AddCommand(cmd)
}

// deadLetters addresses the deployed stack's dead-letter and work queues.
func deadLetters(cmd *cobra.Command) (*dlq.Queues, error) {
	cfg, res, err := deployedStack(cmd.Context(), stack.OutDeadLetterURL, stack.OutWorkQueueURL)
	if err != nil {
		return nil, err
	}
	return &dlq.Queues{SQS: sqs.NewFromConfig(cfg), DeadURL: res.DeadLetterURL, SourceURL: res.WorkQueueURL}, nil
}

func printDeadLetters(w io.Writer, msgs []dlq.Message) {
	if len(msgs) == 0 {
		fmt.Fprintln(w, "the dead-letter queue is empty")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MESSAGE\tKIND\tCASE\tRECEIVES\tSENT")
	for _, m := range msgs {
		kind := m.Kind
		if m.Invalid != "" {
			kind = "invalid"
		}
		sent := ""
		if !m.SentAt.IsZero() {
			sent = m.SentAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", m.ID, kind, m.CaseID, m.ReceiveCount, sent)
	}
	tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return errors.Join(errors.New("write JSON"), err)
	}
	return nil
}
