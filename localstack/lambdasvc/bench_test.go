package lambdasvc

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	st "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func BenchmarkParseEMF(b *testing.B) {
	line := []byte(`{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"KNHK","Dimensions":[["Service","Workflow"]],"Metrics":[{"Name":"TaskLatency","Unit":"Milliseconds"},{"Name":"Tasks","Unit":"Count"}]}]},"Service":"executor","Workflow":"claims","TaskLatency":[12.5,7,7,30],"Tasks":4,"caseId":"c-1"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := ParseEMF(line); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkSQSEvent10(b *testing.B) {
	msgs := make([]sqstypes.Message, 10)
	for i := range msgs {
		msgs[i] = sqstypes.Message{MessageId: aws.String(fmt.Sprint(i)), ReceiptHandle: aws.String("rh"), Body: aws.String(`{"caseId":"c","seq":1}`),
			MD5OfBody: aws.String("x"), Attributes: map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{"traceparent": {DataType: aws.String("String"), StringValue: aws.String("00-a-b-01")}}}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(SQSEvent(msgs, "arn:aws:sqs:us-east-1:1:q", "us-east-1")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDynamoDBEvent100(b *testing.B) {
	now := time.Now()
	recs := make([]st.Record, 100)
	for i := range recs {
		recs[i] = st.Record{EventID: aws.String("e"), EventName: st.OperationTypeInsert, Dynamodb: &st.StreamRecord{
			SequenceNumber: aws.String(fmt.Sprint(1000 + i)), ApproximateCreationDateTime: &now, SizeBytes: aws.Int64(100),
			Keys:     map[string]st.AttributeValue{"pk": &st.AttributeValueMemberS{Value: "case#1"}, "seq": &st.AttributeValueMemberN{Value: fmt.Sprint(i)}},
			NewImage: map[string]st.AttributeValue{"hash": &st.AttributeValueMemberB{Value: make([]byte, 32)}, "body": &st.AttributeValueMemberM{Value: map[string]st.AttributeValue{"k": &st.AttributeValueMemberS{Value: "v"}}}},
		}}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(DynamoDBEvent(recs, "arn:aws:dynamodb:us-east-1:1:table/t/stream/x", "us-east-1")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCronNext(b *testing.B) {
	s, err := ParseSchedule("cron(0 9 ? * MON-FRI *)")
	if err != nil {
		b.Fatal(err)
	}
	t := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Next(t)
	}
}
