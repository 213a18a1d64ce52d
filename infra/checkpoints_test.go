package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/jsii-runtime-go"
)

// logicalID finds the one resource whose id starts with prefix.
func logicalID(t *testing.T, res map[string]map[string]any, prefix, typ string) string {
	t.Helper()
	var ids []string
	for id, r := range res {
		if strings.HasPrefix(id, prefix) && r["Type"] == typ {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%s resources named %s*: %v", typ, prefix, ids)
	}
	return ids[0]
}

// The checkpoints table is written by the checkpointer's role alone: no
// other role's policy grants a write on it, its resource policy denies
// writes to every other principal, and the checkpointer runs on the
// configured schedule with exactly the grants it needs.
func TestOnlyTheCheckpointerWritesCheckpoints(t *testing.T) {
	writes := append(slices.Clone(checkpointWrites), "dynamodb:*")
	for _, ec := range envCases {
		t.Run(ec.name, func(t *testing.T) {
			s := synth(t, ec.name, ec.ctx)
			tmpl := templateJSON(t, s)
			res := resources(tmpl)
			fx := fnExpects[ec.name]
			table := logicalID(t, res, "CheckpointsTable", "AWS::DynamoDB::Table")
			fn := logicalID(t, res, "Checkpointer", "AWS::Lambda::Function")
			role := logicalID(t, res, "CheckpointerRole", "AWS::IAM::Role")
			tableArn := canon(getAtt(table, "Arn"))

			for id, r := range res {
				if r["Type"] != "AWS::IAM::Policy" {
					continue
				}
				p := r["Properties"].(map[string]any)
				mine := slices.ContainsFunc(list(p["Roles"]), func(v any) bool { return canon(v) == canon(ref(role)) })
				for _, st := range list(p["PolicyDocument"].(map[string]any)["Statement"]) {
					st := st.(map[string]any)
					onTable := slices.ContainsFunc(list(st["Resource"]), func(v any) bool { return canon(v) == tableArn || canon(v) == "*" })
					for _, a := range list(st["Action"]) {
						if onTable && slices.Contains(writes, a.(string)) && !mine {
							t.Errorf("policy %s lets another role %s on the checkpoints table", id, a)
						}
					}
				}
			}
			for _, other := range []string{idExecutor, idVerifier} {
				for a, rs := range grants(t, tmpl, other) {
					if slices.Contains(rs, tableArn) {
						t.Errorf("%s may %s on the checkpoints table", other, a)
					}
				}
			}

			p := res[table]["Properties"].(map[string]any)
			if p["TableName"] != fx.prefix+"-checkpoints" {
				t.Errorf("table name %v", p["TableName"])
			}
			doc := canon(p["ResourcePolicy"])
			for _, want := range []string{`"Effect":"Deny"`, `"Principal":"*"`, `"ArnNotEquals":{"aws:PrincipalArn":` + canon(getAtt(role, "Arn")) + `}`,
				`table/` + fx.prefix + `-checkpoints`} {
				if !strings.Contains(doc, want) {
					t.Errorf("resource policy %s lacks %s", doc, want)
				}
			}
			for _, a := range checkpointWrites {
				if !strings.Contains(doc, `"`+a+`"`) {
					t.Errorf("resource policy does not deny %s", a)
				}
			}

			ck := getAtt(idDataKey, "Arn")
			state := getAtt(idState, "Arn")
			diffGrants(t, "checkpointer", grants(t, tmpl, fn), expectGrants(map[string][]any{
				"xray:PutTraceSegments":       {"*"},
				"xray:PutTelemetryRecords":    {"*"},
				"logs:CreateLogStream":        {getAtt(idCkptLogs, "Arn")},
				"logs:PutLogEvents":           {getAtt(idCkptLogs, "Arn")},
				"dynamodb:Query":              {getAtt(idReceipts, "Arn"), state, map[string]any{"Fn::Join": []any{"", []any{state, "/index/gsi1"}}}, getAtt(table, "Arn")},
				"dynamodb:GetItem":            {state},
				"dynamodb:PutItem":            {state, getAtt(table, "Arn")},
				"dynamodb:UpdateItem":         {state},
				"dynamodb:DeleteItem":         {getAtt(table, "Arn")},
				"dynamodb:ConditionCheckItem": {getAtt(table, "Arn")},
				"kms:Sign":                    {getAtt(logicalID(t, res, "CheckpointKey", "AWS::KMS::Key"), "Arn")},
				"kms:GetPublicKey":            {getAtt(logicalID(t, res, "CheckpointKey", "AWS::KMS::Key"), "Arn")},
				"sns:Publish":                 {ref(idTopic)},
				"kms:Decrypt":                 {ck},
				"kms:GenerateDataKey":         {ck},
			}))

			must(t, "schedule", func() {
				s.tmpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), like(map[string]any{
					"ScheduleExpression": fx.schedule,
					"State":              "ENABLED",
					"Targets":            arrayWith(like(map[string]any{"Arn": getAtt(fn, "Arn")})),
				}))
			})
			must(t, "events may invoke the checkpointer", func() {
				s.tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Permission"), like(map[string]any{
					"Action":       "lambda:InvokeFunction",
					"FunctionName": getAtt(fn, "Arn"),
					"Principal":    "events.amazonaws.com",
				}))
			})
		})
	}
}
