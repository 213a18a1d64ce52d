package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/knhk/knhk/localstack/otlpsink"
	"github.com/knhk/knhk/shared/telemetry"
)

func init() { root.AddCommand(traceCmd()) }

// DefaultSpansFile is where the local trace receiver of `knhk run` and
// `knhk local serve` stores spans.
const DefaultSpansFile = ".local/traces.jsonl"

func traceCmd() *cobra.Command {
	var (
		spansPath string
		width     int
		fromXRay  bool
	)
	cmd := &cobra.Command{
		Use:   "trace CASE_ID",
		Short: "Print a case's spans as a terminal waterfall (from the local trace receiver)",
		Long: "Read the spans the local trace receiver stored (--spans), pick the traces that hold a span of the case\n" +
			"(attribute knhk.case_id) and the traces whose spans link into them (a step resumed by a CloudEvent that\n" +
			"brought a trace of its own), and print each as a tree: name, duration, status, the attributes that matter and\n" +
			"a bar on the trace's timeline. With --xray, read instead from X-Ray, on AWS, the trace the case started in (the\n" +
			"traceparent of its genesis receipt) and every trace holding a span annotated with the case's id (" + telemetry.XRayCaseAnnotation + ").",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if fromXRay {
				traces, err := caseXRayTraces(cmd.Context(), args[0], time.Now())
				if err != nil {
					return err
				}
				for _, t := range traces {
					printWaterfall(cmd.OutOrStdout(), t, width)
				}
				return nil
			}
			spans, err := otlpsink.Read(spansPath)
			if err != nil {
				return fmt.Errorf("trace: %w (is `make run` or `knhk local serve` running with its trace receiver?)", err)
			}
			traces := otlpsink.CaseTraces(spans, args[0])
			if len(traces) == 0 {
				return withExit(1, fmt.Errorf("trace: no span of case %s in %s", args[0], spansPath))
			}
			for _, t := range traces {
				printWaterfall(cmd.OutOrStdout(), t, width)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&spansPath, "spans", DefaultSpansFile, "spans file of the local trace receiver")
	cmd.Flags().IntVar(&width, "width", 40, "width of the timeline bars")
	cmd.Flags().BoolVar(&fromXRay, "xray", false, "read the case's trace from X-Ray (the deployed stack's, as the other commands find it) instead of the local spans file")
	return cmd
}

// waterfallAttrs are the attributes worth a column, in order.
var waterfallAttrs = []string{"knhk.case_id", "knhk.task", "knhk.events", "rpc.method", "aws.dynamodb.table_names",
	"http.request.method", "url.full", "http.response.status_code", "knhk.breaker.state", "knhk.idempotency_key",
	"messaging.destination.name", "messaging.batch.message_count", "faas.invocation_id"}

func printWaterfall(w io.Writer, t otlpsink.Trace, width int) {
	if len(t.Spans) == 0 {
		return
	}
	start, end := t.Spans[0].Start, t.Spans[0].End
	for _, s := range t.Spans {
		if s.Start.Before(start) {
			start = s.Start
		}
		if s.End.After(end) {
			end = s.End
		}
	}
	total := end.Sub(start)
	kind := "trace"
	if t.Linked {
		kind = "linked trace"
	}
	fmt.Fprintf(w, "%s %s · %d spans · %s\n", kind, t.ID, len(t.Spans), total.Round(time.Microsecond))
	var walk func(n *otlpsink.Node, depth int)
	walk = func(n *otlpsink.Node, depth int) {
		s := n.Span
		status := s.Status
		if status == "" {
			status = "-"
		}
		name := strings.Repeat("  ", depth) + s.Name
		if len(s.Links) > 0 {
			name += fmt.Sprintf(" ↗%d", len(s.Links))
		}
		fmt.Fprintf(w, "%s %-44s %10s %-5s %s\n", bar(start, total, s, width), clip(name, 44),
			s.Duration().Round(time.Microsecond), status, spanAttrs(s))
		sort.SliceStable(n.Children, func(i, j int) bool { return n.Children[i].Span.Start.Before(n.Children[j].Span.Start) })
		for _, c := range n.Children {
			walk(c, depth+1)
		}
	}
	for _, r := range t.Tree() {
		walk(r, 0)
	}
	fmt.Fprintln(w)
}

// bar draws s on the trace's timeline.
func bar(start time.Time, total time.Duration, s otlpsink.Span, width int) string {
	if width <= 0 {
		return ""
	}
	from, to := 0, width
	if total > 0 {
		from = int(int64(width) * int64(s.Start.Sub(start)) / int64(total))
		to = int(int64(width) * int64(s.End.Sub(start)) / int64(total))
	}
	from = min(max(from, 0), width-1)
	to = min(max(to, from+1), width)
	return "|" + strings.Repeat(" ", from) + strings.Repeat("█", to-from) + strings.Repeat(" ", width-to) + "|"
}

func spanAttrs(s otlpsink.Span) string {
	var parts []string
	for _, k := range waterfallAttrs {
		if v, ok := s.Attributes[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%v", strings.TrimPrefix(k, "knhk."), v))
		}
	}
	if s.Message != "" {
		parts = append(parts, "error="+clip(s.Message, 60))
	}
	return strings.Join(parts, " ")
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
