package main

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/slajob"
	"github.com/knhk/knhk/shared/telemetry"
)

// EmittedMetric is one metric series that a function of the stack emits
// (EMF, namespace KNHK) or that AWS publishes for one of its resources.
type EmittedMetric struct {
	Emitter    string // the function's short name, or the AWS service
	Namespace  string
	Name       string
	Dimensions map[string]*string
}

// Key renders the series as namespace|name|dim=value,... with the
// dimensions sorted; values are resolved in the stack (tokens become the
// template's references).
func (m EmittedMetric) Key(st awscdk.Stack) string {
	dims := make([]string, 0, len(m.Dimensions))
	for k, v := range m.Dimensions {
		dims = append(dims, k+"="+resolved(st, v))
	}
	sort.Strings(dims)
	return m.Namespace + "|" + m.Name + "|" + strings.Join(dims, ",")
}

// resolved renders a dimension value as the template holds it.
func resolved(st awscdk.Stack, v *string) string {
	if !*awscdk.Token_IsUnresolved(v) {
		return *v
	}
	b, err := json.Marshal(st.Resolve(v))
	if err != nil {
		return *v
	}
	return string(b)
}

// Metric returns the series as a CloudWatch metric of the statistic over
// one minute.
func (m EmittedMetric) Metric(statistic, label string) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace: jsii.String(m.Namespace), MetricName: jsii.String(m.Name), Statistic: jsii.String(statistic),
		DimensionsMap: &m.Dimensions, Period: awscdk.Duration_Minutes(jsii.Number(1)), Label: jsii.String(label),
	})
}

// EmittedMetrics declares, in one place, every metric series each function
// emits (as the functions set their dimensions: Function=<short name>; the
// SLA job's service-level metrics by Workflow, here the platform's) and
// the AWS metrics of the stack's functions and queues that alarms or the
// dashboard use. The template test checks every alarm against it.
func EmittedMetrics(s *KnhkStack) []EmittedMetric {
	var out []EmittedMetric
	knhk := func(fn string, names ...string) {
		for _, n := range names {
			out = append(out, EmittedMetric{Emitter: fn, Namespace: telemetry.Namespace, Name: n,
				Dimensions: map[string]*string{telemetry.DimFunction: jsii.String(fn)}})
		}
	}
	knhk(ExecutorName, telemetry.CasesStarted, telemetry.CasesCompleted, telemetry.CasesFaulted, telemetry.CasesCancelled,
		telemetry.TasksExecuted, telemetry.TasksFaulted, telemetry.TaskDuration, telemetry.CaseDuration, telemetry.ReceiptsAppended,
		telemetry.AppendConflicts, telemetry.DLQBound, telemetry.PermanentErrors, telemetry.BatchItemFailures, telemetry.HandlerPanics,
		telemetry.Unauthorized, telemetry.BreakerOpened, telemetry.BreakerRejected)
	knhk(VerifierName, telemetry.ReceiptsVerified, telemetry.IntegrityFindings, telemetry.SLICasesRecorded, telemetry.SLIWriteErrors)
	knhk(CheckpointerName, telemetry.CheckpointHeadsSigned, telemetry.CheckpointHeadsRefused, telemetry.CheckpointLogInvalid)
	knhk(ArchiverName, telemetry.CasesArchived, telemetry.ArchiveBytes, telemetry.ArchivesRefused)
	knhk(SLAName, telemetry.SLARuns)
	knhk(CanaryName, telemetry.CanarySuccess, telemetry.CanaryLatency)
	all := map[string]*string{telemetry.DimWorkflow: jsii.String(slajob.Overall)}
	for _, n := range []string{telemetry.SLAAvailability, telemetry.SLALatencyP50, telemetry.SLALatencyP99, telemetry.SLALatencyP999,
		telemetry.SLALatencyBreach, telemetry.SLABudgetRemaining} {
		out = append(out, EmittedMetric{Emitter: SLAName, Namespace: telemetry.Namespace, Name: n, Dimensions: all})
	}
	for _, r := range sla.WorkbookRules() {
		for _, long := range []bool{true, false} {
			out = append(out, EmittedMetric{Emitter: SLAName, Namespace: telemetry.Namespace, Name: telemetry.SLABurnRate,
				Dimensions: map[string]*string{telemetry.DimWorkflow: jsii.String(slajob.Overall), telemetry.DimWindow: jsii.String(slajob.WindowLabel(r, long))}})
		}
	}
	f := s.Functions
	for _, fn := range []*string{f.Executor.FunctionName(), f.Verifier.FunctionName(), f.Checkpointer.FunctionName(),
		f.Archiver.Function.FunctionName(), s.SLA.Function.FunctionName(), s.Canary.Function.FunctionName()} {
		for _, n := range []string{"Errors", "Throttles", "Invocations", "Duration"} {
			out = append(out, EmittedMetric{Emitter: "AWS/Lambda", Namespace: "AWS/Lambda", Name: n, Dimensions: map[string]*string{"FunctionName": fn}})
		}
	}
	out = append(out, EmittedMetric{Emitter: "AWS/Lambda", Namespace: "AWS/Lambda", Name: "IteratorAge",
		Dimensions: map[string]*string{"FunctionName": f.Verifier.FunctionName()}})
	for _, q := range []*string{s.Messaging.Work.QueueName(), s.Messaging.DeadLetter.QueueName(), f.VerifierFailures.QueueName()} {
		for _, n := range []string{"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"} {
			out = append(out, EmittedMetric{Emitter: "AWS/SQS", Namespace: "AWS/SQS", Name: n, Dimensions: map[string]*string{"QueueName": q}})
		}
	}
	return out
}

// newDashboard creates the operations dashboard from the declared metrics.
func newDashboard(scope constructs.Construct, cfg stackconfig.Config, s *KnhkStack) awscloudwatch.Dashboard {
	ms := EmittedMetrics(s)
	find := func(ns, name string, dims map[string]string) EmittedMetric {
		for _, m := range ms {
			if m.Namespace != ns || m.Name != name || len(m.Dimensions) != len(dims) {
				continue
			}
			match := true
			for k, v := range dims {
				if m.Dimensions[k] == nil || (v != "" && *m.Dimensions[k] != v) {
					match = false
				}
			}
			if match {
				return m
			}
		}
		panic("dashboard: no declared metric " + ns + " " + name)
	}
	fn := func(short string) map[string]string { return map[string]string{telemetry.DimFunction: short} }
	all := map[string]string{telemetry.DimWorkflow: slajob.Overall}
	k := telemetry.Namespace
	graph := func(title string, metrics ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Left: &metrics, Width: jsii.Number(8), Height: jsii.Number(6)})
	}
	lambdaErrors := []awscloudwatch.IMetric{find(k, telemetry.PermanentErrors, fn(ExecutorName)).Metric("Sum", "executor permanent errors")}
	for _, fnName := range []*string{s.Functions.Executor.FunctionName(), s.Functions.Verifier.FunctionName(), s.Functions.Checkpointer.FunctionName(),
		s.SLA.Function.FunctionName(), s.Canary.Function.FunctionName()} {
		lambdaErrors = append(lambdaErrors, EmittedMetric{Namespace: "AWS/Lambda", Name: "Errors", Dimensions: map[string]*string{"FunctionName": fnName}}.Metric("Sum", ""))
	}
	var burns []awscloudwatch.IMetric
	for _, r := range sla.WorkbookRules() {
		for _, long := range []bool{true, false} {
			w := slajob.WindowLabel(r, long)
			burns = append(burns, find(k, telemetry.SLABurnRate, map[string]string{telemetry.DimWorkflow: slajob.Overall, telemetry.DimWindow: w}).Metric("Maximum", w))
		}
	}
	queueDepth := func(label string, q *string) awscloudwatch.IMetric {
		return EmittedMetric{Namespace: "AWS/SQS", Name: "ApproximateNumberOfMessagesVisible", Dimensions: map[string]*string{"QueueName": q}}.Metric("Maximum", label)
	}
	return awscloudwatch.NewDashboard(scope, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName: jsii.String(cfg.NamePrefix + "-operations"),
		Widgets: &[]*[]awscloudwatch.IWidget{
			{
				graph("Throughput (cases per minute)", find(k, telemetry.CasesStarted, fn(ExecutorName)).Metric("Sum", "started"),
					find(k, telemetry.CasesCompleted, fn(ExecutorName)).Metric("Sum", "completed"),
					find(k, telemetry.CasesFaulted, fn(ExecutorName)).Metric("Sum", "faulted")),
				graph("Case latency (executor, ms)", find(k, telemetry.CaseDuration, fn(ExecutorName)).Metric("p50", "p50"),
					find(k, telemetry.CaseDuration, fn(ExecutorName)).Metric("p99", "p99"),
					find(k, telemetry.CaseDuration, fn(ExecutorName)).Metric("p99.9", "p99.9")),
				graph("Errors", lambdaErrors...),
			},
			{
				graph("Queue depth", queueDepth("dead-letter queue", s.Messaging.DeadLetter.QueueName()),
					queueDepth("verifier failures", s.Functions.VerifierFailures.QueueName()), queueDepth("work queue", s.Messaging.Work.QueueName())),
				graph("Verifier iterator age (ms)", find("AWS/Lambda", "IteratorAge", map[string]string{"FunctionName": ""}).Metric("Maximum", "iterator age")),
				graph("Integrity findings", find(k, telemetry.IntegrityFindings, fn(VerifierName)).Metric("Sum", "findings"),
					find(k, telemetry.CheckpointHeadsRefused, fn(CheckpointerName)).Metric("Sum", "checkpoint heads refused")),
			},
			{
				graph("SLA: availability and canary", find(k, telemetry.SLAAvailability, all).Metric("Minimum", "availability (SLA job)"),
					find(k, telemetry.CanarySuccess, fn(CanaryName)).Metric("Average", "canary success")),
				graph("SLA: latency (ms, objective window)", find(k, telemetry.SLALatencyP50, all).Metric("Maximum", "p50"),
					find(k, telemetry.SLALatencyP99, all).Metric("Maximum", "p99"), find(k, telemetry.SLALatencyP999, all).Metric("Maximum", "p99.9"),
					find(k, telemetry.CanaryLatency, fn(CanaryName)).Metric("Maximum", "canary")),
				graph("SLA: error budget remaining", find(k, telemetry.SLABudgetRemaining, all).Metric("Minimum", "budget remaining")),
			},
			{
				awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{Title: jsii.String("SLA: burn rates"), Left: &burns, Width: jsii.Number(16), Height: jsii.Number(6)}),
				awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{Title: jsii.String("Health"), Width: jsii.Number(8), Height: jsii.Number(6),
					Alarms: &[]interfacesawscloudwatch.IAlarmRef{s.Health.Unhealthy, s.Health.Canary}}),
			},
		},
	})
}
