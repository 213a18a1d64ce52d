package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/canary"
	"github.com/knhk/knhk/shared/sla"
)

// Logical ids of the resources the functions refer to.
const (
	idReceipts  = "ReceiptsTable036B344A"
	idState     = "StateTable9728C7E5"
	idWork      = "WorkQueue94013F35"
	idDLQ       = "DeadLetterQueue9F481546"
	idFailures  = "VerifierFailures094A5307"
	idTopic     = "AlertsTopic3414BE91"
	idDataKey   = "DataKey17AFBB84"
	idPayloads  = "PayloadBucket357F5869"
	idExecutor  = "ExecutorB07C39A8"
	idVerifier  = "VerifierF60271A7"
	idExecLogs  = "ExecutorLogGroup"
	idVerifLogs = "VerifierLogGroup"
	idCkptLogs  = "CheckpointerLogGroup"

	idCheckpointer = "Checkpointer2D0BDB10"
	idArchiver     = "ArchiverBEF44C92"
)

func ref(id string) map[string]any          { return map[string]any{"Ref": id} }
func getAtt(id, attr string) map[string]any { return map[string]any{"Fn::GetAtt": []any{id, attr}} }

// fnExpect is what one environment's functions must look like.
type fnExpect struct {
	prefix        string
	deletion      string
	retention     float64
	execTimeout   float64
	maxReceive    string
	maxConc       float64
	verifierBatch float64
	runbookBase   string
	otel          map[string]any // the functions' OTEL_* variables
	layers        []any          // the functions' layers
	schedule      string
}

// collectorLayer is the collector layer the local test context names.
const collectorLayer = "arn:aws:lambda:eu-west-1:123456789012:layer:otel-collector-arm64:3"

var fnExpects = map[string]fnExpect{
	"prod": {prefix: "knhk-prod", deletion: "Retain", retention: 30, execTimeout: 60, maxReceive: "5", maxConc: 20, verifierBatch: 100, runbookBase: "docs/runbooks/", schedule: "rate(5 minutes)",
		otel: map[string]any{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
			"OTEL_TRACES_SAMPLER": "parentbased_always_on", "OTEL_PROPAGATORS": "tracecontext"}},
	"local": {prefix: "knhk-local", deletion: "Delete", retention: 7, execTimeout: 20, maxReceive: "3", maxConc: 5, verifierBatch: 10, runbookBase: "https://runbooks.example/knhk/", schedule: "rate(1 minute)",
		otel: map[string]any{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
			"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25", "OTEL_PROPAGATORS": "tracecontext"},
		layers: []any{collectorLayer}},
}

// withOTel adds an environment's OTEL_* variables to a function's own.
func withOTel(fx fnExpect, vars map[string]any) map[string]any {
	for k, v := range fx.otel {
		vars[k] = v
	}
	return vars
}

// layersOf is what a function's Layers property must match.
func layersOf(fx fnExpect) any {
	if fx.layers == nil {
		return assertions.Match_Absent()
	}
	return fx.layers
}

// templateJSON is the synthesized template as plain Go values.
func templateJSON(t *testing.T, s *synthesized) map[string]any {
	t.Helper()
	b, err := json.Marshal(s.tmpl.ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func resources(tmpl map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range tmpl["Resources"].(map[string]any) {
		out[id] = r.(map[string]any)
	}
	return out
}

func list(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

func canon(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// grants collects action -> sorted resources over every policy attached to
// the role of a function, and fails on anything but plain Allow statements.
func grants(t *testing.T, tmpl map[string]any, fnID string) map[string][]string {
	t.Helper()
	res := resources(tmpl)
	fn, ok := res[fnID]
	if !ok {
		t.Fatalf("function %s missing", fnID)
	}
	roleID := fn["Properties"].(map[string]any)["Role"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
	role := res[roleID]["Properties"].(map[string]any)
	if _, ok := role["ManagedPolicyArns"]; ok {
		t.Errorf("role %s has managed policies: %v", roleID, role["ManagedPolicyArns"])
	}
	if _, ok := role["Policies"]; ok {
		t.Errorf("role %s has inline policies outside the checked policy resources", roleID)
	}
	trust := canon(role["AssumeRolePolicyDocument"])
	if !strings.Contains(trust, `"Service":"lambda.amazonaws.com"`) || strings.Count(trust, `"Principal"`) != 1 {
		t.Errorf("role %s trust policy: %s", roleID, trust)
	}
	acc := map[string]map[string]bool{}
	for id, r := range res {
		if r["Type"] != "AWS::IAM::Policy" {
			continue
		}
		p := r["Properties"].(map[string]any)
		if !slices.ContainsFunc(list(p["Roles"]), func(v any) bool { return canon(v) == canon(ref(roleID)) }) {
			continue
		}
		for _, st := range list(p["PolicyDocument"].(map[string]any)["Statement"]) {
			st := st.(map[string]any)
			if st["Effect"] != "Allow" || st["Condition"] != nil || st["NotAction"] != nil || st["NotResource"] != nil {
				t.Errorf("policy %s: unexpected statement form %v", id, st)
			}
			for _, a := range list(st["Action"]) {
				if strings.Contains(a.(string), "*") {
					t.Errorf("policy %s: wildcard action %s", id, a)
				}
				if acc[a.(string)] == nil {
					acc[a.(string)] = map[string]bool{}
				}
				for _, r := range list(st["Resource"]) {
					acc[a.(string)][canon(r)] = true
				}
			}
		}
	}
	out := map[string][]string{}
	for a, rs := range acc {
		for r := range rs {
			out[a] = append(out[a], r)
		}
		sort.Strings(out[a])
	}
	return out
}

func expectGrants(want map[string][]any) map[string][]string {
	out := map[string][]string{}
	for a, rs := range want {
		for _, r := range rs {
			out[a] = append(out[a], canon(r))
		}
		sort.Strings(out[a])
	}
	return out
}

func diffGrants(t *testing.T, who string, got, want map[string][]string) {
	t.Helper()
	for a, w := range want {
		if !slices.Equal(got[a], w) {
			t.Errorf("%s: %s on %v, want %v", who, a, got[a], w)
		}
	}
	for a, g := range got {
		if _, ok := want[a]; !ok {
			t.Errorf("%s: unexpected grant %s on %v", who, a, g)
		}
	}
}

func TestFunctions(t *testing.T) {
	for _, ec := range envCases {
		t.Run(ec.name, func(t *testing.T) {
			s := synth(t, ec.name, ec.ctx)
			tm := s.tmpl
			fx := fnExpects[ec.name]
			tmpl := templateJSON(t, s)
			res := resources(tmpl)

			t.Run("executor function", func(t *testing.T) {
				must(t, "executor", func() {
					tm.HasResource(jsii.String("AWS::Lambda::Function"), like(map[string]any{
						"Metadata":  like(map[string]any{"knhk:function": "executor"}),
						"DependsOn": arrayWith(idExecLogs),
						"Properties": like(map[string]any{
							"FunctionName":  fx.prefix + "-executor",
							"Runtime":       "provided.al2023",
							"Architectures": []any{"arm64"},
							"Handler":       "bootstrap",
							"MemorySize":    512,
							"Timeout":       fx.execTimeout,
							"TracingConfig": map[string]any{"Mode": "Active"},
							"LoggingConfig": like(map[string]any{"LogFormat": "JSON", "ApplicationLogLevel": "INFO"}),
							"Layers":        layersOf(fx),
							"Environment": map[string]any{"Variables": withOTel(fx, map[string]any{
								"KNHK_RECEIPTS_TABLE":    ref(idReceipts),
								"KNHK_STATE_TABLE":       ref(idState),
								"KNHK_WORK_QUEUE_URL":    ref(idWork),
								"KNHK_ALERTS_TOPIC_ARN":  ref(idTopic),
								"KNHK_MAX_RECEIVE_COUNT": fx.maxReceive,
								"KNHK_DEADLINE_MARGIN":   "5s",
								"KNHK_SECRETS_PREFIX":    "knhk/",
								"KNHK_OPEN_TENANTS":      "default," + canary.Tenant,
								"LOG_LEVEL":              "info",
							})},
						}),
					}))
				})
			})
			t.Run("verifier function", func(t *testing.T) {
				must(t, "verifier", func() {
					tm.HasResource(jsii.String("AWS::Lambda::Function"), like(map[string]any{
						"Metadata":  like(map[string]any{"knhk:function": "verifier"}),
						"DependsOn": arrayWith(idVerifLogs),
						"Properties": like(map[string]any{
							"FunctionName":  fx.prefix + "-verifier",
							"Runtime":       "provided.al2023",
							"Architectures": []any{"arm64"},
							"Handler":       "bootstrap",
							"MemorySize":    256,
							"Timeout":       60,
							"TracingConfig": map[string]any{"Mode": "Active"},
							"LoggingConfig": like(map[string]any{"LogFormat": "JSON", "ApplicationLogLevel": "INFO"}),
							"Layers":        layersOf(fx),
							"Environment": map[string]any{"Variables": withOTel(fx, map[string]any{
								"KNHK_RECEIPTS_TABLE":   ref(idReceipts),
								"KNHK_STATE_TABLE":      ref(idState),
								"KNHK_ALERTS_TOPIC_ARN": ref(idTopic),
								"LOG_LEVEL":             "info",
							})},
						}),
					}))
				})
				must(t, "eight functions", func() { tm.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(8)) })
			})
			t.Run("work queue mapping", func(t *testing.T) {
				must(t, "sqs mapping", func() {
					tm.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), like(map[string]any{
						"FunctionName":                   ref(idExecutor),
						"EventSourceArn":                 getAtt(idWork, "Arn"),
						"BatchSize":                      10,
						"MaximumBatchingWindowInSeconds": 1,
						"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
						"ScalingConfig":                  map[string]any{"MaximumConcurrency": fx.maxConc},
					}))
				})
				must(t, "two mappings", func() { tm.ResourceCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), jsii.Number(2)) })
			})
			t.Run("visibility timeout spans six executor timeouts", func(t *testing.T) {
				vis := res[idWork]["Properties"].(map[string]any)["VisibilityTimeout"].(float64)
				timeout := res[idExecutor]["Properties"].(map[string]any)["Timeout"].(float64)
				if vis < 6*timeout {
					t.Errorf("work queue visibility %v s < 6 x executor timeout %v s", vis, timeout)
				}
				if vis != ec.visibility {
					t.Errorf("visibility %v, want %v", vis, ec.visibility)
				}
			})
			t.Run("receipts stream mapping", func(t *testing.T) {
				must(t, "stream mapping", func() {
					tm.HasResource(jsii.String("AWS::Lambda::EventSourceMapping"), like(map[string]any{
						"DependsOn": arrayWith(assertions.Match_StringLikeRegexp(jsii.String("^VerifierRoleDefaultPolicy"))),
						"Properties": map[string]any{
							"FunctionName":                   ref(idVerifier),
							"EventSourceArn":                 getAtt(idReceipts, "StreamArn"),
							"StartingPosition":               "TRIM_HORIZON",
							"BatchSize":                      fx.verifierBatch,
							"MaximumBatchingWindowInSeconds": 1,
							"BisectBatchOnFunctionError":     true,
							"MaximumRetryAttempts":           5,
							"MaximumRecordAgeInSeconds":      3600,
							"ParallelizationFactor":          1,
							"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
							"DestinationConfig":              map[string]any{"OnFailure": map[string]any{"Destination": getAtt(idFailures, "Arn")}},
							"Tags":                           assertions.Match_AnyValue(),
						},
					}))
				})
			})
			t.Run("verifier failures queue", func(t *testing.T) {
				q := res[idFailures]
				if q == nil {
					t.Fatalf("queue %s missing", idFailures)
				}
				if q["DeletionPolicy"] != fx.deletion {
					t.Errorf("deletion policy %v, want %s", q["DeletionPolicy"], fx.deletion)
				}
				p := q["Properties"].(map[string]any)
				if p["MessageRetentionPeriod"] != float64(14*24*3600) || canon(p["KmsMasterKeyId"]) != canon(getAtt(idDataKey, "Arn")) {
					t.Errorf("failures queue properties %v", p)
				}
				must(t, "TLS-only policy", func() {
					tm.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), like(map[string]any{
						"Queues": []any{ref(idFailures)},
						"PolicyDocument": like(map[string]any{"Statement": arrayWith(like(map[string]any{
							"Effect":    "Deny",
							"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
						}))}),
					}))
				})
			})
			t.Run("log groups", func(t *testing.T) {
				for id, fn := range map[string]string{idExecLogs: "executor", idVerifLogs: "verifier", idCkptLogs: "checkpointer"} {
					lg := res[id]
					if lg == nil || lg["Type"] != "AWS::Logs::LogGroup" {
						t.Fatalf("log group %s missing", id)
					}
					p := lg["Properties"].(map[string]any)
					if p["LogGroupName"] != "/aws/lambda/"+fx.prefix+"-"+fn || p["RetentionInDays"] != fx.retention || lg["DeletionPolicy"] != fx.deletion {
						t.Errorf("log group %s: %v, deletion %v", id, p, lg["DeletionPolicy"])
					}
				}
				must(t, "eight log groups", func() { tm.ResourceCountIs(jsii.String("AWS::Logs::LogGroup"), jsii.Number(8)) })
			})
			t.Run("executor permissions", func(t *testing.T) {
				receipts, state, index := getAtt(idReceipts, "Arn"), getAtt(idState, "Arn"),
					map[string]any{"Fn::Join": []any{"", []any{getAtt(idState, "Arn"), "/index/gsi1"}}}
				work, key := getAtt(idWork, "Arn"), getAtt(idDataKey, "Arn")
				got := grants(t, tmpl, idExecutor)
				diffGrants(t, "executor", got, expectGrants(map[string][]any{
					"xray:PutTraceSegments":         {"*"},
					"xray:PutTelemetryRecords":      {"*"},
					"logs:CreateLogStream":          {getAtt(idExecLogs, "Arn")},
					"logs:PutLogEvents":             {getAtt(idExecLogs, "Arn")},
					"dynamodb:Query":                {receipts, state, index},
					"dynamodb:GetItem":              {receipts, state},
					"dynamodb:PutItem":              {receipts, state},
					"dynamodb:UpdateItem":           {state},
					"dynamodb:DeleteItem":           {state},
					"dynamodb:BatchWriteItem":       {state},
					"sqs:SendMessage":               {work},
					"sqs:ReceiveMessage":            {work},
					"sqs:DeleteMessage":             {work},
					"sqs:ChangeMessageVisibility":   {work},
					"sqs:GetQueueAttributes":        {work},
					"sqs:GetQueueUrl":               {work},
					"sns:Publish":                   {ref(idTopic)},
					"kms:Decrypt":                   {key},
					"kms:GenerateDataKey":           {key},
					"secretsmanager:GetSecretValue": {map[string]any{"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:knhk/*"}},
					"s3:GetObject": {map[string]any{"Fn::Join": []any{"", []any{getAtt(idPayloads, "Arn"), "/inputs/*"}}},
						map[string]any{"Fn::Join": []any{"", []any{getAtt(idPayloads, "Arn"), "/blobs/*"}}}},
					"s3:PutObject": {map[string]any{"Fn::Join": []any{"", []any{getAtt(idPayloads, "Arn"), "/blobs/*"}}}},
				}))
				for _, r := range got["dynamodb:PutItem"] {
					if r != canon(receipts) && r != canon(state) {
						t.Errorf("executor may PutItem on %s", r)
					}
				}
			})
			t.Run("verifier permissions", func(t *testing.T) {
				receipts, state, key := getAtt(idReceipts, "Arn"), getAtt(idState, "Arn"), getAtt(idDataKey, "Arn")
				stream := getAtt(idReceipts, "StreamArn")
				got := grants(t, tmpl, idVerifier)
				diffGrants(t, "verifier", got, expectGrants(map[string][]any{
					"xray:PutTraceSegments":     {"*"},
					"xray:PutTelemetryRecords":  {"*"},
					"dynamodb:ListStreams":      {"*"},
					"logs:CreateLogStream":      {getAtt(idVerifLogs, "Arn")},
					"logs:PutLogEvents":         {getAtt(idVerifLogs, "Arn")},
					"dynamodb:GetItem":          {receipts, state},
					"dynamodb:Query":            {receipts},
					"dynamodb:PutItem":          {state},
					"dynamodb:UpdateItem":       {state},
					"dynamodb:BatchGetItem":     {state},
					"dynamodb:BatchWriteItem":   {state},
					"dynamodb:DescribeStream":   {stream},
					"dynamodb:GetRecords":       {stream},
					"dynamodb:GetShardIterator": {stream},
					"sns:Publish":               {ref(idTopic)},
					"sqs:SendMessage":           {getAtt(idFailures, "Arn")},
					"kms:Decrypt":               {key},
					"kms:GenerateDataKey":       {key},
				}))
				for _, write := range []string{"dynamodb:PutItem", "dynamodb:BatchWriteItem"} {
					if slices.Contains(got[write], canon(receipts)) {
						t.Errorf("verifier may %s on the receipts table", write)
					}
				}
			})
			t.Run("alarms", func(t *testing.T) {
				testAlarms(t, tm, fx)
			})
		})
	}
}

// alarmExpect is one alarm as operators and emitters rely on it.
type alarmExpect struct {
	id, namespace, metric, statistic string
	dims                             []any
	threshold                        float64
	period, evals, datapoints        float64
}

func expectedAlarms() []alarmExpect {
	fnDim := func(id string) []any { return []any{map[string]any{"Name": "FunctionName", "Value": ref(id)}} }
	qDim := func(id string) []any {
		return []any{map[string]any{"Name": "QueueName", "Value": getAtt(id, "QueueName")}}
	}
	knhk := func(fn string) []any { return []any{map[string]any{"Name": "Function", "Value": fn}} }
	return []alarmExpect{
		{"executor-errors", "AWS/Lambda", "Errors", "Sum", fnDim(idExecutor), 1, 300, 1, 1},
		{"executor-throttles", "AWS/Lambda", "Throttles", "Sum", fnDim(idExecutor), 1, 300, 1, 1},
		{"executor-permanent-errors", "KNHK", "PermanentErrors", "Sum", knhk("executor"), 1, 300, 1, 1},
		{"dead-letter-queue-depth", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", qDim(idDLQ), 1, 300, 1, 1},
		{"verifier-iterator-age", "AWS/Lambda", "IteratorAge", "Maximum", fnDim(idVerifier), 60000, 60, 3, 3},
		{"verifier-failures-depth", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", qDim(idFailures), 1, 300, 1, 1},
		{"integrity-findings", "KNHK", "IntegrityFindings", "Sum", knhk("verifier"), 1, 60, 1, 1},
		{"checkpoint-heads-refused", "KNHK", "CheckpointHeadsRefused", "Sum", knhk("checkpointer"), 1, 300, 1, 1},
		{"checkpointer-errors", "AWS/Lambda", "Errors", "Sum", fnDim(idCheckpointer), 1, 300, 1, 1},
		{"archive-refused", "KNHK", "ArchivesRefused", "Sum", knhk("archiver"), 1, 900, 1, 1},
		{"archiver-errors", "AWS/Lambda", "Errors", "Sum", fnDim(idArchiver), 1, 900, 3, 2},
	}
}

func testAlarms(t *testing.T, tm assertions.Template, fx fnExpect) {
	want := expectedAlarms()
	// The service-level alarms (TestSLAAlarms): two window alarms per
	// burn-rate rule and the latency breach; the canary failure.
	slaAlarms := 2*len(sla.WorkbookRules()) + 1 + 1
	must(t, "alarm count", func() {
		tm.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(float64(len(want)+slaAlarms)))
	})
	for _, a := range want {
		must(t, "alarm "+a.id, func() {
			tm.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), like(map[string]any{
				"AlarmName":          fx.prefix + "-" + a.id,
				"AlarmDescription":   assertions.Match_StringLikeRegexp(jsii.String(`Runbook: ` + strings.ReplaceAll(fx.runbookBase, ".", `\.`) + a.id + `\.md$`)),
				"Namespace":          a.namespace,
				"MetricName":         a.metric,
				"Statistic":          a.statistic,
				"Dimensions":         a.dims,
				"Threshold":          a.threshold,
				"ComparisonOperator": "GreaterThanOrEqualToThreshold",
				"Period":             a.period,
				"EvaluationPeriods":  a.evals,
				"DatapointsToAlarm":  a.datapoints,
				"TreatMissingData":   "notBreaching",
				"AlarmActions":       []any{ref(idTopic)},
				"OKActions":          []any{ref(idTopic)},
			}))
		})
	}
	must(t, "cloudwatch may publish to the topic", func() {
		tm.HasResourceProperties(jsii.String("AWS::SNS::TopicPolicy"), like(map[string]any{
			"PolicyDocument": like(map[string]any{"Statement": arrayWith(like(map[string]any{
				"Effect":    "Allow",
				"Action":    "sns:Publish",
				"Principal": map[string]any{"Service": "cloudwatch.amazonaws.com"},
				"Resource":  ref(idTopic),
				"Condition": map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": ref("AWS::AccountId")}},
			}))}),
		}))
	})
}

// TestRunbooks checks that every alarm links a runbook that exists and that
// every runbook belongs to an alarm.
func TestRunbooks(t *testing.T) {
	s := synth(t, "prod", nil)
	dir := filepath.Join("..", "docs", "runbooks")
	ids := map[string]bool{}
	for _, spec := range s.stack.AlarmSpecs {
		ids[spec.ID] = true
		b, err := os.ReadFile(filepath.Join("..", RunbookPath(spec.ID)))
		if err != nil {
			t.Errorf("alarm %s: %v", spec.ID, err)
			continue
		}
		text := string(b)
		for _, must := range []string{"# " + spec.ID + "\n", "## What it means", "## Likely causes", "## Diagnose", "## Mitigate", "## Escalate",
			"knhk verify --case", "aws ", "Logs Insights", "X-Ray", "OpenTelemetry", spec.Metric.Name} {
			if !strings.Contains(text, must) {
				t.Errorf("runbook %s does not mention %q", spec.ID, must)
			}
		}
	}
	for _, id := range append(SLAAlarmIDs(), HealthAlarmIDs()...) {
		ids[id] = true
		b, err := os.ReadFile(filepath.Join("..", RunbookPath(id)))
		if err != nil {
			t.Errorf("alarm %s: %v", id, err)
			continue
		}
		for _, must := range []string{"# " + id + "\n", "## What it means", "## Likely causes", "## Diagnose", "## Mitigate", "## Escalate",
			"knhk verify --case", "knhk sla", "aws ", "Logs Insights", "X-Ray", "OpenTelemetry"} {
			if !strings.Contains(string(b), must) {
				t.Errorf("runbook %s does not mention %q", id, must)
			}
		}
	}
	if len(ids) != len(expectedAlarms())+len(SLAAlarmIDs())+len(HealthAlarmIDs()) {
		t.Errorf("%d alarm specs, want %d", len(ids), len(expectedAlarms()))
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if id := strings.TrimSuffix(filepath.Base(f), ".md"); !ids[id] {
			t.Errorf("runbook %s has no alarm", f)
		}
	}
}

var hashSuffix = regexp.MustCompile(`[0-9A-F]{8}$`)

// TestNagSuppressions lists every cdk-nag suppression in the template, so
// adding one is a visible change to this list.
func TestNagSuppressions(t *testing.T) {
	for _, ec := range envCases {
		t.Run(ec.name, func(t *testing.T) {
			tmpl := templateJSON(t, synth(t, ec.name, ec.ctx))
			var got []string
			for id, r := range resources(tmpl) {
				md, _ := r["Metadata"].(map[string]any)
				nag, _ := md["cdk_nag"].(map[string]any)
				for _, rule := range list(nag["rules_to_suppress"]) {
					if rule == nil {
						continue
					}
					rule := rule.(map[string]any)
					if reason, _ := rule["reason"].(string); len(reason) < 60 {
						t.Errorf("%s %v: reason too thin: %q", id, rule["id"], reason)
					}
					got = append(got, hashSuffix.ReplaceAllString(id, "")+" "+canon(rule["id"])+" "+canon(rule["applies_to"]))
				}
			}
			sort.Strings(got)
			want := []string{
				`AccessLogsBucket AwsSolutions-S1 null`,
				`ArchiverRoleDefaultPolicy AwsSolutions-IAM5 ["Resource::*"]`,
				`ArchiverRoleDefaultPolicy AwsSolutions-IAM5 [{"regex":"/^Resource::\u003cArchiveBucket[0-9A-F]+\\.Arn\u003e\\/archive\\/\\*$/"}]`,
				`ArchiverRoleDefaultPolicy AwsSolutions-IAM5 [{"regex":"/^Resource::\u003cPayloadBucket[0-9A-F]+\\.Arn\u003e\\/blobs\\/\\*$/"}]`,
				`CanaryRoleDefaultPolicy AwsSolutions-IAM5 ["Resource::*"]`,
				`CheckpointerRoleDefaultPolicy AwsSolutions-IAM5 ["Resource::*"]`,
				`CostRoleDefaultPolicy AwsSolutions-IAM5 ["Resource::*"]`,
				`CostRoleDefaultPolicy AwsSolutions-IAM5 [{"regex":"/^Resource::\u003cChargebackBucket[0-9A-F]+\\.Arn\u003e\\/chargeback\\/\\*$/"}]`,
				`ExecutorRoleDefaultPolicy AwsSolutions-IAM5 ["Resource::*"]`,
				`ExecutorRoleDefaultPolicy AwsSolutions-IAM5 [{"regex":"/^Resource::\u003cPayloadBucket[0-9A-F]+\\.Arn\u003e\\/blobs\\/\\*$/"}]`,
				`ExecutorRoleDefaultPolicy AwsSolutions-IAM5 [{"regex":"/^Resource::\u003cPayloadBucket[0-9A-F]+\\.Arn\u003e\\/inputs\\/\\*$/"}]`,
				`ExecutorRoleDefaultPolicy AwsSolutions-IAM5 [{"regex":"/^Resource::arn:.*:secretsmanager:.*:secret:knhk\\/\\*$/"}]`,
				`SlaRoleDefaultPolicy AwsSolutions-IAM5 ["Resource::*"]`,
				`TunerRoleDefaultPolicy AwsSolutions-IAM5 ["Resource::*"]`,
				`VerifierFailures AwsSolutions-SQS3 null`,
				`VerifierRoleDefaultPolicy AwsSolutions-IAM5 ["Resource::*"]`,
			}
			if !slices.Equal(got, want) {
				t.Errorf("suppressions:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestMissingFunctionBuild checks that synthesis without the function
// binaries fails with a message that says what to do.
func TestMissingFunctionBuild(t *testing.T) {
	ctx := map[string]any{"functionsDir": t.TempDir()}
	_, err := DefineApp(awscdk.NewApp(&awscdk.AppProps{Context: &ctx}))
	if err == nil || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("err = %v, want a hint to run make build", err)
	}
}

// TestTracingOff: with tracing=off the functions' SDK is disabled and no
// exporter setting is passed.
func TestTracingOff(t *testing.T) {
	cfg := stackconfig.DefaultConfig()
	cfg.Tracing = false
	cfg.OTelCollectorLayerARN = collectorLayer
	env := tracingEnv(cfg)
	if len(env) != 1 || env["OTEL_SDK_DISABLED"] == nil || *env["OTEL_SDK_DISABLED"] != "true" {
		t.Fatalf("env %v: want only OTEL_SDK_DISABLED=true", env)
	}
}

// TestVisibilityTooShort checks that synthesis refuses a work queue that
// would release messages while an executor may still hold them.
func TestVisibilityTooShort(t *testing.T) {
	ctx := map[string]any{"functionsDir": fakeFunctions, "executorTimeout": "60", "visibilityTimeout": "300"}
	_, err := DefineApp(awscdk.NewApp(&awscdk.AppProps{Context: &ctx}))
	if err == nil || !strings.Contains(err.Error(), "at least 6 x executorTimeout") {
		t.Fatalf("err = %v, want the visibility timeout refused", err)
	}
}

// TestWorkQueueSenders pins who may send to the work queue: by default
// SQS's account boundary (no deny statement) with the default tenant open;
// with producer roles, a deny for every principal but the executor's role
// and those roles, and the open tenants as configured.
func TestWorkQueueSenders(t *testing.T) {
	def := templateJSON(t, synth(t, "prod", nil))
	for id, r := range resources(def) {
		if r["Type"] == "AWS::SQS::QueuePolicy" && strings.Contains(canon(r), "OnlyExecutorAndProducersSend") {
			t.Errorf("%s: the default stack restricts senders; want SQS's account boundary", id)
		}
	}
	const producer = "arn:aws:iam::123456789012:role/claims-ingest"
	s := synth(t, "producers", map[string]any{"producerRoles": producer + ",arn:aws:iam::123456789012:role/ops", "openTenants": ""})
	execRole, canaryRole := "", ""
	for id, r := range resources(templateJSON(t, s)) {
		if r["Type"] == "AWS::IAM::Role" && strings.HasPrefix(id, "ExecutorRole") {
			execRole = id
		}
		if r["Type"] == "AWS::IAM::Role" && strings.HasPrefix(id, "CanaryRole") {
			canaryRole = id
		}
	}
	must(t, "deny statement", func() {
		s.tmpl.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), like(map[string]any{
			"Queues": []any{ref(idWork)},
			"PolicyDocument": like(map[string]any{"Statement": arrayWith(map[string]any{
				"Sid":       "OnlyExecutorAndProducersSend",
				"Effect":    "Deny",
				"Principal": map[string]any{"AWS": "*"},
				"Action":    "sqs:SendMessage",
				"Resource":  getAtt(idWork, "Arn"),
				"Condition": map[string]any{"ArnNotEquals": map[string]any{"aws:PrincipalArn": []any{
					getAtt(execRole, "Arn"), getAtt(canaryRole, "Arn"), producer, "arn:aws:iam::123456789012:role/ops"}}},
			})}),
		}))
	})
	must(t, "no open tenant but the canary's", func() {
		s.tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), like(map[string]any{
			"Environment": like(map[string]any{"Variables": like(map[string]any{"KNHK_OPEN_TENANTS": canary.Tenant})}),
		}))
	})
	if errs := s.ann.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))); len(*errs) > 0 {
		t.Errorf("cdk-nag findings with producer roles: %d", len(*errs))
	}
	for _, bad := range []map[string]any{{"producerRoles": "claims-ingest"}, {"openTenants": "a b"}} {
		bad["functionsDir"] = fakeFunctions
		app := awscdk.NewApp(&awscdk.AppProps{Context: &bad})
		if _, err := DefineApp(app); err == nil {
			t.Errorf("context %v accepted", bad)
		}
	}
}
