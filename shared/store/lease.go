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
)

// Leases are the scheduled jobs' mutual exclusion in the state table (pk
// LEASE#<job>, sk LEASE): a run takes its job's lease with a conditional
// write before it works, so two overlapping runs (a schedule that fired
// twice, a slow run overtaken by the next) never both work. A lease expires
// on its own, so a run that died frees its job after the lease time.
type Leases struct {
	db    leaseDB
	table string
	now   func() time.Time
}

// leaseDB is the part of the DynamoDB client leases use.
type leaseDB interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// NewLeases returns the leases of the named state table.
func NewLeases(db leaseDB, table string) *Leases {
	return &Leases{db: db, table: table, now: time.Now}
}

func leaseKey(job string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: s("LEASE#" + job), AttrSK: s("LEASE")}
}

// Acquire takes job's lease for owner until ttl from now if it is free or
// expired (or already owner's); ok is false when another run holds it.
func (l *Leases) Acquire(ctx context.Context, job, owner string, ttl time.Duration) (ok bool, err error) {
	if job == "" || owner == "" || ttl <= 0 {
		return false, errors.New("lease: job, owner and a positive ttl are required")
	}
	now := l.now()
	item := leaseKey(job)
	item["owner"] = s(owner)
	item["expires"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(ttl).UnixMilli(), 10)}
	_, err = l.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.table), Item: item,
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR expires < :now OR #o = :owner"),
		ExpressionAttributeNames:  map[string]string{"#o": "owner"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixMilli(), 10)}, ":owner": s(owner)},
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("acquire lease %s: %w", job, err)
	}
	return true, nil
}

// Release gives job's lease back if owner still holds it.
func (l *Leases) Release(ctx context.Context, job, owner string) error {
	_, err := l.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(l.table), Key: leaseKey(job),
		ConditionExpression:       aws.String("#o = :owner"),
		ExpressionAttributeNames:  map[string]string{"#o": "owner"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":owner": s(owner)},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("release lease %s: %w", job, err)
	}
	return nil
}
