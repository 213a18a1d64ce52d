package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/localstack/alarmeval"
	"github.com/knhk/knhk/shared/localaws"
)

func init() {
	var asJSON bool
	var prefix string
	cmd := &cobra.Command{
		Use:   "alarms",
		Short: "List every alarm (metric and composite) with state, reason, metric, threshold, latest datapoints and runbook",
		Long: "Lists the alarms through the CloudWatch API only, so it works against AWS and the local endpoint\n" +
			"(AWS_ENDPOINT_URL) alike. --prefix narrows to alarm names with that prefix (the stack's namePrefix).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := awsConfig(cmd.Context(), "")
			if err != nil {
				return err
			}
			views, err := listAlarms(cmd.Context(), localaws.NewCloudWatch(cfg), prefix, time.Now())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), views)
			}
			printAlarms(cmd.OutOrStdout(), views)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&prefix, "prefix", "", "only alarms whose name starts with this")
	root.AddCommand(cmd)
}

// alarmsAPI is the part of CloudWatch that knhk alarms reads.
type alarmsAPI interface {
	cloudwatch.DescribeAlarmsAPIClient
	GetMetricStatistics(context.Context, *cloudwatch.GetMetricStatisticsInput, ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricStatisticsOutput, error)
}

// alarmView is one alarm as knhk alarms shows it.
type alarmView struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	State     string    `json:"state"`
	Reason    string    `json:"reason"`
	Since     time.Time `json:"since"`
	Metric    string    `json:"metric,omitempty"`
	Condition string    `json:"condition"`
	// Latest are the statistic's values over the evaluation periods, oldest
	// first.
	Latest  []float64 `json:"latest,omitempty"`
	Runbook string    `json:"runbook,omitempty"`
}

// runbookOf is the link after "Runbook: " in an alarm's description.
func runbookOf(desc string) string {
	_, after, ok := strings.Cut(desc, "Runbook: ")
	if !ok {
		return ""
	}
	return strings.Fields(after + " ")[0]
}

func listAlarms(ctx context.Context, cw alarmsAPI, prefix string, now time.Time) ([]alarmView, error) {
	in := &cloudwatch.DescribeAlarmsInput{AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeMetricAlarm, cwtypes.AlarmTypeCompositeAlarm}}
	if prefix != "" {
		in.AlarmNamePrefix = aws.String(prefix)
	}
	var out []alarmView
	p := cloudwatch.NewDescribeAlarmsPaginator(cw, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe alarms: %w", err)
		}
		for _, a := range page.MetricAlarms {
			v := alarmView{Name: aws.ToString(a.AlarmName), Type: "metric", State: string(a.StateValue), Reason: aws.ToString(a.StateReason),
				Since: aws.ToTime(a.StateUpdatedTimestamp), Runbook: runbookOf(aws.ToString(a.AlarmDescription))}
			stat := string(a.Statistic)
			if a.ExtendedStatistic != nil {
				stat = aws.ToString(a.ExtendedStatistic)
			}
			var dims []string
			for _, d := range a.Dimensions {
				dims = append(dims, aws.ToString(d.Name)+"="+aws.ToString(d.Value))
			}
			v.Metric = fmt.Sprintf("%s/%s{%s}", aws.ToString(a.Namespace), aws.ToString(a.MetricName), strings.Join(dims, ","))
			if len(a.Metrics) > 0 {
				v.Metric = "metric math"
			}
			m := aws.ToInt32(a.DatapointsToAlarm)
			if m == 0 {
				m = aws.ToInt32(a.EvaluationPeriods)
			}
			v.Condition = fmt.Sprintf("%s %s %g, %d of %d x %ds, missing=%s", stat, a.ComparisonOperator, aws.ToFloat64(a.Threshold),
				m, aws.ToInt32(a.EvaluationPeriods), aws.ToInt32(a.Period), aws.ToString(a.TreatMissingData))
			if a.MetricName != nil && aws.ToInt32(a.Period) > 0 {
				latest, err := latestValues(ctx, cw, a, now)
				if err != nil {
					return nil, err
				}
				v.Latest = latest
			}
			out = append(out, v)
		}
		for _, a := range page.CompositeAlarms {
			out = append(out, alarmView{Name: aws.ToString(a.AlarmName), Type: "composite", State: string(a.StateValue),
				Reason: aws.ToString(a.StateReason), Since: aws.ToTime(a.StateUpdatedTimestamp), Condition: aws.ToString(a.AlarmRule),
				Runbook: runbookOf(aws.ToString(a.AlarmDescription))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// latestValues reads the alarm's statistic over its evaluation periods.
func latestValues(ctx context.Context, cw alarmsAPI, a cwtypes.MetricAlarm, now time.Time) ([]float64, error) {
	period := time.Duration(aws.ToInt32(a.Period)) * time.Second
	end := now.Truncate(period).Add(period)
	in := &cloudwatch.GetMetricStatisticsInput{Namespace: a.Namespace, MetricName: a.MetricName, Dimensions: a.Dimensions,
		StartTime: aws.Time(end.Add(-time.Duration(max(aws.ToInt32(a.EvaluationPeriods), 1)) * period)), EndTime: aws.Time(end), Period: a.Period}
	if a.ExtendedStatistic != nil {
		in.ExtendedStatistics = []string{aws.ToString(a.ExtendedStatistic)}
	} else {
		in.Statistics = []cwtypes.Statistic{a.Statistic}
	}
	res, err := cw.GetMetricStatistics(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("alarm %s: metric statistics: %w", aws.ToString(a.AlarmName), err)
	}
	sort.Slice(res.Datapoints, func(i, j int) bool {
		return aws.ToTime(res.Datapoints[i].Timestamp).Before(aws.ToTime(res.Datapoints[j].Timestamp))
	})
	var out []float64
	for _, d := range res.Datapoints {
		if v, ok := alarmeval.Value(d, a); ok {
			out = append(out, v)
		}
	}
	return out, nil
}

// alarmStates summarises states: "alarms 14 OK, 0 ALARM, 2 INSUFFICIENT_DATA".
func alarmStates(views []alarmView) string {
	n := map[string]int{}
	for _, v := range views {
		n[v.State]++
	}
	return fmt.Sprintf("alarms %d OK, %d ALARM, %d INSUFFICIENT_DATA", n["OK"], n["ALARM"], n["INSUFFICIENT_DATA"])
}

func printAlarms(w io.Writer, views []alarmView) {
	if len(views) == 0 {
		fmt.Fprintln(w, "no alarms")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALARM\tSTATE\tMETRIC\tCONDITION\tLATEST\tRUNBOOK")
	for _, v := range views {
		latest := make([]string, len(v.Latest))
		for i, x := range v.Latest {
			latest[i] = fmt.Sprint(x)
		}
		metric := v.Metric
		if metric == "" {
			metric = "(composite)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.State, metric, v.Condition, strings.Join(latest, " "), v.Runbook)
	}
	tw.Flush()
	for _, v := range views {
		if v.State != "OK" && v.Reason != "" {
			fmt.Fprintf(w, "%s: %s\n", v.Name, v.Reason)
		}
	}
	fmt.Fprintln(w, alarmStates(views))
}
