package meter

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/receipt"
)

func TestCall(t *testing.T) {
	big := strings.Repeat("x", 64<<10) // one byte over a chunk with any attribute
	item := map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: strings.Repeat("k", 1020)}, "n": &dbtypes.AttributeValueMemberN{Value: "12"}}
	for _, tc := range []struct {
		name    string
		svc, op string
		in, out any
		want    cost.Usage
	}{
		{"put reported", "DynamoDB", "PutItem", &dynamodb.PutItemInput{Item: item}, &dynamodb.PutItemOutput{ConsumedCapacity: &dbtypes.ConsumedCapacity{CapacityUnits: aws.Float64(1)}}, cost.Usage{DynamoRequests: 1, WriteUnits: 1}},
		{"put from size", "DynamoDB", "PutItem", &dynamodb.PutItemInput{Item: item}, &dynamodb.PutItemOutput{}, cost.Usage{DynamoRequests: 1, WriteUnits: 2}},
		{"failed conditional put", "DynamoDB", "PutItem", &dynamodb.PutItemInput{Item: item}, nil, cost.Usage{DynamoRequests: 1, WriteUnits: 1}},
		{"eventual get from size", "DynamoDB", "GetItem", &dynamodb.GetItemInput{}, &dynamodb.GetItemOutput{Item: item}, cost.Usage{DynamoRequests: 1, ReadUnits: 0.5}},
		{"strong query from size", "DynamoDB", "Query", &dynamodb.QueryInput{ConsistentRead: aws.Bool(true)},
			&dynamodb.QueryOutput{Items: []map[string]dbtypes.AttributeValue{item, item, item, item}}, cost.Usage{DynamoRequests: 1, ReadUnits: 2}},
		{"small send", "SQS", "SendMessage", &sqs.SendMessageInput{MessageBody: aws.String("{}")}, nil, cost.Usage{SQSRequests: 1}},
		{"send over 64 KB", "SQS", "SendMessage", &sqs.SendMessageInput{MessageBody: &big, MessageAttributes: map[string]sqstypes.MessageAttributeValue{"a": {DataType: aws.String("String"), StringValue: aws.String("v")}}}, nil, cost.Usage{SQSRequests: 2}},
		{"batch counted by payload", "SQS", "SendMessageBatch", &sqs.SendMessageBatchInput{Entries: []sqstypes.SendMessageBatchRequestEntry{{MessageBody: aws.String("a")}, {MessageBody: aws.String("b")}}}, nil, cost.Usage{SQSRequests: 1}},
		{"delete", "SQS", "DeleteMessage", &sqs.DeleteMessageInput{}, nil, cost.Usage{SQSRequests: 1}},
		{"publish", "SNS", "Publish", &sns.PublishInput{Message: aws.String("alert")}, nil, cost.Usage{SNSPublishes: 1}},
		{"sign is asymmetric", "KMS", "Sign", &kms.SignInput{}, nil, cost.Usage{KMSAsymRequests: 1}},
		{"decrypt is symmetric", "KMS", "Decrypt", nil, nil, cost.Usage{KMSRequests: 1}},
		{"secret", "Secrets Manager", "GetSecretValue", nil, nil, cost.Usage{SecretsRequests: 1}},
		{"s3 put", "S3", "PutObject", nil, nil, cost.Usage{S3Puts: 1}},
		{"s3 list", "S3", "ListObjectsV2", nil, nil, cost.Usage{S3Puts: 1}},
		{"s3 get", "S3", "GetObject", nil, nil, cost.Usage{S3Gets: 1}},
		{"unpriced service", "Lambda", "Invoke", nil, nil, cost.Usage{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Call(tc.svc, tc.op, tc.in, tc.out); got != tc.want {
				t.Errorf("Call = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAskCapacity(t *testing.T) {
	in := &dynamodb.PutItemInput{}
	askCapacity(in)
	if in.ReturnConsumedCapacity != dbtypes.ReturnConsumedCapacityTotal {
		t.Errorf("ReturnConsumedCapacity %q", in.ReturnConsumedCapacity)
	}
	q := &dynamodb.QueryInput{ReturnConsumedCapacity: dbtypes.ReturnConsumedCapacityIndexes}
	askCapacity(q)
	if q.ReturnConsumedCapacity != dbtypes.ReturnConsumedCapacityIndexes {
		t.Errorf("a caller's choice was overridden: %q", q.ReturnConsumedCapacity)
	}
}

// TestReceiptRoundTrip: a usage survives the receipt form exactly.
func TestReceiptRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		mem := int64(128 * (1 + rng.IntN(80)))
		u := cost.Usage{Arch: cost.Arm64, InvocationMicros: rng.Int64N(1e6), LambdaMBms: mem * rng.Int64N(1e5),
			WriteUnits: float64(rng.IntN(20)), ReadUnits: float64(rng.IntN(20)) / 2, SQSRequests: rng.Int64N(5),
			SNSPublishes: rng.Int64N(2), KMSRequests: rng.Int64N(2), KMSAsymRequests: rng.Int64N(2), SecretsRequests: rng.Int64N(3),
			S3Puts: rng.Int64N(2), S3Gets: rng.Int64N(2), HTTPCalls: rng.Int64N(9), HTTPBytes: rng.Int64N(1e6), DynamoRequests: rng.Int64N(9)}
		if u.LambdaMBms == 0 {
			u.Arch = ""
		}
		if got := Usage(Receipt(u, mem)); got != u {
			t.Fatalf("round trip\n got %+v\nwant %+v", got, u)
		}
	}
	// receipts made before the optional members: requests count as DynamoDB
	// requests, billed milliseconds carry no memory
	old := Usage(receipt.Usage{BilledMs: 12, ReadUnits: 0.5, WriteUnits: 1, Requests: 2})
	if old != (cost.Usage{ReadUnits: 0.5, WriteUnits: 1, DynamoRequests: 2}) {
		t.Errorf("old usage %+v", old)
	}
}

func TestMeterContexts(t *testing.T) {
	Shared.Take()
	m := &Meter{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				charge(With(context.Background(), m), cost.Usage{SQSRequests: 1})
				charge(Off(context.Background()), cost.Usage{SQSRequests: 1})
				charge(context.Background(), cost.Usage{HTTPCalls: 1})
			}
		}()
	}
	wg.Wait()
	if got := m.Take(); got.SQSRequests != 800 {
		t.Errorf("case meter %+v", got)
	}
	if got := Shared.Take(); got.HTTPCalls != 800 || got.SQSRequests != 0 {
		t.Errorf("shared meter %+v", got)
	}
	if got := m.Peek(); got != (cost.Usage{}) {
		t.Errorf("after Take %+v", got)
	}
}

func TestTransportCountsBodies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	m := &Meter{}
	c := &http.Client{Transport: Transport{}}
	req, _ := http.NewRequestWithContext(With(context.Background(), m), http.MethodPost, srv.URL, strings.NewReader(`{"a":1}`))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := m.Take(); got.HTTPCalls != 1 || got.HTTPBytes != int64(len(`{"a":1}`)+len(`{"ok":true}`)) {
		t.Errorf("usage %+v", got)
	}
	// a refused connection is still a call
	srv.Close()
	req, _ = http.NewRequestWithContext(With(context.Background(), m), http.MethodGet, srv.URL, nil)
	if _, err := c.Do(req); err == nil {
		t.Fatal("want an error from a closed server")
	}
	if got := m.Take(); got.HTTPCalls != 1 {
		t.Errorf("usage %+v", got)
	}
}

// BenchmarkMeterPerReceipt is metering's work for one receipt: two metered
// requests (the middleware's accounting of a DynamoDB read and an SQS send),
// one HTTP call, then the take that turns the step's usage into the
// receipt's.
func BenchmarkMeterPerReceipt(b *testing.B) {
	m := &Meter{}
	ctx := With(context.Background(), m)
	get, gout := &dynamodb.GetItemInput{}, &dynamodb.GetItemOutput{ConsumedCapacity: &dbtypes.ConsumedCapacity{CapacityUnits: aws.Float64(0.5)}}
	send := &sqs.SendMessageInput{MessageBody: aws.String(`{"kind":"continue"}`)}
	b.ReportAllocs()
	for b.Loop() {
		charge(ctx, Call("DynamoDB", "GetItem", get, gout))
		charge(ctx, Call("SQS", "SendMessage", send, nil))
		charge(ctx, cost.Usage{HTTPCalls: 1, HTTPBytes: 400})
		_ = Receipt(m.Take(), 1024)
	}
}
