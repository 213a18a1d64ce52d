package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func init() { register("AWS::DynamoDB::Table", ddbTable{}) }

type ddbTable struct{}

func (ddbTable) honours() []string {
	return []string{"TableName", "KeySchema", "AttributeDefinitions", "BillingMode", "ProvisionedThroughput",
		"StreamSpecification", "SSESpecification", "PointInTimeRecoverySpecification", "TimeToLiveSpecification",
		"GlobalSecondaryIndexes", "LocalSecondaryIndexes", "DeletionProtectionEnabled", "TableClass", "Tags"}
}

type keyElem struct {
	AttributeName string `json:"AttributeName"`
	KeyType       string `json:"KeyType"`
}

type throughput struct {
	ReadCapacityUnits  flexInt `json:"ReadCapacityUnits"`
	WriteCapacityUnits flexInt `json:"WriteCapacityUnits"`
}

type projection struct {
	ProjectionType   string   `json:"ProjectionType"`
	NonKeyAttributes []string `json:"NonKeyAttributes"`
}

type index struct {
	IndexName             string      `json:"IndexName"`
	KeySchema             []keyElem   `json:"KeySchema"`
	Projection            projection  `json:"Projection"`
	ProvisionedThroughput *throughput `json:"ProvisionedThroughput"`
}

type tableProps struct {
	TableName            string    `json:"TableName"`
	KeySchema            []keyElem `json:"KeySchema"`
	AttributeDefinitions []struct {
		AttributeName string `json:"AttributeName"`
		AttributeType string `json:"AttributeType"`
	} `json:"AttributeDefinitions"`
	BillingMode           string      `json:"BillingMode"`
	ProvisionedThroughput *throughput `json:"ProvisionedThroughput"`
	StreamSpecification   *struct {
		StreamViewType string `json:"StreamViewType"`
	} `json:"StreamSpecification"`
	SSESpecification *struct {
		SSEEnabled     flexBool `json:"SSEEnabled"`
		SSEType        string   `json:"SSEType"`
		KMSMasterKeyId string   `json:"KMSMasterKeyId"`
	} `json:"SSESpecification"`
	PointInTimeRecoverySpecification *struct {
		PointInTimeRecoveryEnabled flexBool `json:"PointInTimeRecoveryEnabled"`
		RecoveryPeriodInDays       flexInt  `json:"RecoveryPeriodInDays"`
	} `json:"PointInTimeRecoverySpecification"`
	TimeToLiveSpecification *struct {
		AttributeName string   `json:"AttributeName"`
		Enabled       flexBool `json:"Enabled"`
	} `json:"TimeToLiveSpecification"`
	GlobalSecondaryIndexes    []index  `json:"GlobalSecondaryIndexes"`
	LocalSecondaryIndexes     []index  `json:"LocalSecondaryIndexes"`
	DeletionProtectionEnabled flexBool `json:"DeletionProtectionEnabled"`
	TableClass                string   `json:"TableClass"`
	Tags                      []cfnTag `json:"Tags"`
}

func (ddbTable) apply(ctx context.Context, e *env, id string, props map[string]any) (physical, Action, error) {
	var p tableProps
	if err := decode(props, &p); err != nil {
		return physical{}, "", err
	}
	if len(p.KeySchema) == 0 {
		return physical{}, "", errors.New("table needs a KeySchema")
	}
	name := p.TableName
	if name == "" {
		name = e.physicalName(id, 255)
	}
	action := Kept
	desc, err := e.ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	var nf *ddbtypes.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		// ResourceInUse after a ResourceNotFound means the SDK retried a
		// create whose first response was lost: the table is ours.
		var inUse *ddbtypes.ResourceInUseException
		if _, err := e.ddb.CreateTable(ctx, createTableInput(name, p)); err != nil && !errors.As(err, &inUse) {
			return physical{}, "", fmt.Errorf("create table %s: %w", name, err)
		}
		w := dynamodb.NewTableExistsWaiter(e.ddb)
		if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 2*time.Minute); err != nil {
			return physical{}, "", fmt.Errorf("wait for table %s: %w", name, err)
		}
		action = Created
	case err != nil:
		return physical{}, "", fmt.Errorf("describe table %s: %w", name, err)
	default:
		if !sameKeySchema(desc.Table.KeySchema, p.KeySchema) {
			return physical{}, "", fmt.Errorf("existing table %s has another key schema: replacing a table is not supported", name)
		}
	}

	if ttl := p.TimeToLiveSpecification; ttl != nil && ttl.Enabled.v {
		cur, err := e.ddb.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
		if err != nil {
			return physical{}, "", fmt.Errorf("describe ttl %s: %w", name, err)
		}
		d := cur.TimeToLiveDescription
		if d == nil || d.TimeToLiveStatus != ddbtypes.TimeToLiveStatusEnabled || aws.ToString(d.AttributeName) != ttl.AttributeName {
			if _, err := e.ddb.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
				TableName:               aws.String(name),
				TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: aws.String(ttl.AttributeName), Enabled: aws.Bool(true)},
			}); err != nil {
				return physical{}, "", fmt.Errorf("enable ttl %s: %w", name, err)
			}
			action = bump(action)
		}
	}
	if pitr := p.PointInTimeRecoverySpecification; pitr != nil && pitr.PointInTimeRecoveryEnabled.v {
		cur, err := e.ddb.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String(name)})
		if err != nil {
			return physical{}, "", fmt.Errorf("describe backups %s: %w", name, err)
		}
		d := cur.ContinuousBackupsDescription
		if d == nil || d.PointInTimeRecoveryDescription == nil || d.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus != ddbtypes.PointInTimeRecoveryStatusEnabled {
			spec := &ddbtypes.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: aws.Bool(true)}
			if pitr.RecoveryPeriodInDays.set {
				spec.RecoveryPeriodInDays = aws.Int32(int32(pitr.RecoveryPeriodInDays.n))
			}
			if _, err := e.ddb.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
				TableName: aws.String(name), PointInTimeRecoverySpecification: spec,
			}); err != nil {
				return physical{}, "", fmt.Errorf("enable point-in-time recovery %s: %w", name, err)
			}
			action = bump(action)
		}
	}

	desc, err = e.ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		return physical{}, "", fmt.Errorf("describe table %s: %w", name, err)
	}
	attrs := map[string]any{"Arn": aws.ToString(desc.Table.TableArn)}
	if s := aws.ToString(desc.Table.LatestStreamArn); s != "" {
		attrs["StreamArn"] = s
	}
	return physical{ref: name, attrs: attrs}, action, nil
}

func bump(a Action) Action {
	if a == Kept {
		return Updated
	}
	return a
}

func sameKeySchema(have []ddbtypes.KeySchemaElement, want []keyElem) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		if aws.ToString(have[i].AttributeName) != want[i].AttributeName || string(have[i].KeyType) != want[i].KeyType {
			return false
		}
	}
	return true
}

func createTableInput(name string, p tableProps) *dynamodb.CreateTableInput {
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		KeySchema:   keySchema(p.KeySchema),
		BillingMode: ddbtypes.BillingModeProvisioned,
	}
	if p.BillingMode != "" {
		in.BillingMode = ddbtypes.BillingMode(p.BillingMode)
	}
	for _, a := range p.AttributeDefinitions {
		in.AttributeDefinitions = append(in.AttributeDefinitions, ddbtypes.AttributeDefinition{
			AttributeName: aws.String(a.AttributeName), AttributeType: ddbtypes.ScalarAttributeType(a.AttributeType),
		})
	}
	in.ProvisionedThroughput = provisioned(p.ProvisionedThroughput)
	if s := p.StreamSpecification; s != nil {
		in.StreamSpecification = &ddbtypes.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: ddbtypes.StreamViewType(s.StreamViewType)}
	}
	if s := p.SSESpecification; s != nil && s.SSEEnabled.v {
		sse := &ddbtypes.SSESpecification{Enabled: aws.Bool(true)}
		if s.SSEType != "" {
			sse.SSEType = ddbtypes.SSEType(s.SSEType)
		}
		if s.KMSMasterKeyId != "" {
			sse.KMSMasterKeyId = aws.String(s.KMSMasterKeyId)
		}
		in.SSESpecification = sse
	}
	for _, g := range p.GlobalSecondaryIndexes {
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, ddbtypes.GlobalSecondaryIndex{
			IndexName: aws.String(g.IndexName), KeySchema: keySchema(g.KeySchema), Projection: proj(g.Projection),
			ProvisionedThroughput: provisioned(g.ProvisionedThroughput),
		})
	}
	for _, l := range p.LocalSecondaryIndexes {
		in.LocalSecondaryIndexes = append(in.LocalSecondaryIndexes, ddbtypes.LocalSecondaryIndex{
			IndexName: aws.String(l.IndexName), KeySchema: keySchema(l.KeySchema), Projection: proj(l.Projection),
		})
	}
	if p.DeletionProtectionEnabled.set {
		in.DeletionProtectionEnabled = aws.Bool(p.DeletionProtectionEnabled.v)
	}
	if p.TableClass != "" {
		in.TableClass = ddbtypes.TableClass(p.TableClass)
	}
	for _, t := range p.Tags {
		in.Tags = append(in.Tags, ddbtypes.Tag{Key: aws.String(t.Key), Value: aws.String(t.Value)})
	}
	return in
}

func keySchema(ks []keyElem) []ddbtypes.KeySchemaElement {
	out := make([]ddbtypes.KeySchemaElement, len(ks))
	for i, k := range ks {
		out[i] = ddbtypes.KeySchemaElement{AttributeName: aws.String(k.AttributeName), KeyType: ddbtypes.KeyType(k.KeyType)}
	}
	return out
}

func proj(p projection) *ddbtypes.Projection {
	out := &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionType(p.ProjectionType)}
	if len(p.NonKeyAttributes) > 0 {
		out.NonKeyAttributes = p.NonKeyAttributes
	}
	return out
}

func provisioned(t *throughput) *ddbtypes.ProvisionedThroughput {
	if t == nil || !t.ReadCapacityUnits.set {
		return nil
	}
	return &ddbtypes.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(t.ReadCapacityUnits.n), WriteCapacityUnits: aws.Int64(t.WriteCapacityUnits.n)}
}
