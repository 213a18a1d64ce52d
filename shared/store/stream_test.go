package store

import (
	"context"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/knhk/knhk/localstack/lambdasvc"
	"github.com/knhk/knhk/shared/receipt"
)

// The stream of a real (local) receipts table: appends verify, a later
// change and a deletion are reported.
func TestStreamRecordsOfTheTable(t *testing.T) {
	db, rt, _ := tables(t)
	ctx := context.Background()
	rs := appendN(t, NewReceipts(db, rt), "streamed", 3)
	it := rawItem(t, db, rt, "streamed", 1)
	it["hash"] = &types.AttributeValueMemberS{Value: rs[0].Hash}
	putRaw(t, db, rt, it)
	if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(rt),
		Key: map[string]types.AttributeValue{"caseId": &types.AttributeValueMemberS{Value: "streamed"}, "seq": &types.AttributeValueMemberN{Value: "2"}}}); err != nil {
		t.Fatal(err)
	}

	cfg, _ := endpoint.Config(ctx)
	desc, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(rt)})
	if err != nil {
		t.Fatal(err)
	}
	sc := dynamodbstreams.NewFromConfig(cfg)
	sd, err := sc.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: desc.Table.LatestStreamArn})
	if err != nil || len(sd.StreamDescription.Shards) == 0 {
		t.Fatal(err)
	}
	var got []receipt.Kind
	var names []string
	for _, sh := range sd.StreamDescription.Shards {
		itr, err := sc.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: desc.Table.LatestStreamArn,
			ShardId: sh.ShardId, ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := sc.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: itr.ShardIterator})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range lambdasvc.DynamoDBEvent(recs.Records, "", "").Records {
			names = append(names, ev.EventName)
			for _, f := range receipt.VerifyStreamRecord(ev) {
				if f.CaseID != "streamed" {
					t.Errorf("finding without its case: %+v", f)
				}
				got = append(got, f.Kind)
			}
		}
	}
	if want := []string{"INSERT", "INSERT", "INSERT", "MODIFY", "REMOVE"}; !slices.Equal(names, want) {
		t.Fatalf("stream events %v, want %v", names, want)
	}
	if want := []receipt.Kind{receipt.Modified, receipt.Removed}; !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v", got, want)
	}
}
