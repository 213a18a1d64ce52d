package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/receipt"
)

// expiryDB is the part of the DynamoDB client SetExpiry uses.
type expiryDB interface {
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// SetExpiry sets the time-to-live attribute (receipt.AttrExpires, epoch
// seconds) of every item of a case's chain to at, and returns how many
// items it changed. An item that already expires at at is not written
// again (no stream record), so a repeated call changes nothing. Only the
// archiver calls it, after the case's archive object verified.
func (s *Receipts) SetExpiry(ctx context.Context, caseID string, at time.Time) (int, error) {
	db, ok := s.db.(expiryDB)
	if !ok {
		return 0, errors.New("set expiry: the DynamoDB client cannot update items")
	}
	p := dynamodb.NewQueryPaginator(db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#c = :c"),
		ProjectionExpression:      aws.String("#c, #s"),
		ExpressionAttributeNames:  map[string]string{"#c": receipt.AttrCase, "#s": receipt.AttrSeq},
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: caseID}},
		ConsistentRead:            aws.Bool(true),
	})
	t := &types.AttributeValueMemberN{Value: strconv.FormatInt(at.Unix(), 10)}
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return n, fmt.Errorf("set expiry of %s: read keys: %w", caseID, err)
		}
		for _, it := range page.Items {
			_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName:                 aws.String(s.table),
				Key:                       map[string]types.AttributeValue{receipt.AttrCase: it[receipt.AttrCase], receipt.AttrSeq: it[receipt.AttrSeq]},
				UpdateExpression:          aws.String("SET #e = :t"),
				ConditionExpression:       aws.String("attribute_exists(#c) AND (attribute_not_exists(#e) OR #e <> :t)"),
				ExpressionAttributeNames:  map[string]string{"#e": receipt.AttrExpires, "#c": receipt.AttrCase},
				ExpressionAttributeValues: map[string]types.AttributeValue{":t": t},
			})
			var ccf *types.ConditionalCheckFailedException
			switch {
			case errors.As(err, &ccf):
			case err != nil:
				return n, fmt.Errorf("set expiry of %s item %v: %w", caseID, it[receipt.AttrSeq], err)
			default:
				n++
			}
		}
	}
	return n, nil
}
