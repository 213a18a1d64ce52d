package localaws

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The endpoint logs every request with a traceparent, and only those: its
// operation, signing key, trace and span ids, status and, for DynamoDB, the
// table and capacity its answer reported (a failed conditional write: its
// status, no capacity).
func TestEndpointLogsTracedRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "requests.jsonl")
	t.Setenv(EnvRequests, path)
	ep, err := Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	traced := func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("traceparent", "00-"+trace+"-"+span+"-01"))
	}
	db := dynamodb.NewFromConfig(cfg)
	if _, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("t"), BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: types.KeyTypeHash}}}); err != nil {
		t.Fatal(err)
	}
	put := &dynamodb.PutItemInput{TableName: aws.String("t"), Item: map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "a"}},
		ConditionExpression: aws.String("attribute_not_exists(k)"), ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal}
	if _, err := db.PutItem(ctx, put, traced); err != nil {
		t.Fatal(err)
	}
	var ccf *types.ConditionalCheckFailedException
	if _, err := db.PutItem(ctx, put, traced); !errors.As(err, &ccf) {
		t.Fatalf("second put: %v", err)
	}
	if _, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("t"), ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal,
		Key: map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "a"}}}); err != nil {
		t.Fatal(err) // untraced: not logged
	}
	if err := ep.Stop(); err != nil { // flushes the log
		t.Fatal(err)
	}
	got, err := ReadRequests(path)
	if err != nil {
		t.Fatal(err)
	}
	key := func() string {
		c, err := cfg.Credentials.Retrieve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c.AccessKeyID
	}()
	want := []Request{
		{Op: "DynamoDB_20120810.PutItem", Key: key, Trace: trace, Span: span, Status: 200, Table: "t", Units: 1},
		{Op: "DynamoDB_20120810.PutItem", Key: key, Trace: trace, Span: span, Status: 400},
	}
	if len(got) != len(want) {
		t.Fatalf("logged %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// BenchmarkTracedPutItem is one traced DynamoDB PutItem on the endpoint
// without and with its request log (KNHK_ENDPOINT_REQUESTS): the log's cost
// per request is the difference.
func BenchmarkTracedPutItem(b *testing.B) {
	for _, logged := range []bool{false, true} {
		name := "log off"
		if logged {
			name = "log on"
		}
		b.Run(name, func(b *testing.B) {
			if logged {
				b.Setenv(EnvRequests, filepath.Join(b.TempDir(), "requests.jsonl"))
			}
			ep, err := Start(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = ep.Stop() }()
			ctx := context.Background()
			cfg, err := ep.Config(ctx)
			if err != nil {
				b.Fatal(err)
			}
			db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
				o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
			})
			if _, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("t"), BillingMode: types.BillingModePayPerRequest,
				AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: types.ScalarAttributeTypeS}},
				KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: types.KeyTypeHash}}}); err != nil {
				b.Fatal(err)
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("t"), ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal,
					Item: map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: strconv.Itoa(i)}}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
