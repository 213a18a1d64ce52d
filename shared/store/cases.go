package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/receipt"
)

// CaseDB is the part of the DynamoDB client the case records use.
type CaseDB interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Cases keeps per-case records in the state table: quarantine (pk
// CASE#<case>, sk QUARANTINE), listen subscriptions (pk SUB#<tenant>, sk
// <case>), verified watermarks (sk WATERMARK) and alert markers (sk ALERTED).
// Large inputs are read through the embedded State.
type Cases struct {
	*State
	db  CaseDB
	now func() time.Time
}

// NewCases returns the case records of the state table.
func NewCases(db interface {
	DynamoDB
	CaseDB
}, table string) *Cases {
	return &Cases{State: NewState(db, table), db: db, now: time.Now}
}

func caseKey(caseID, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: s("CASE#" + caseID), AttrSK: s(sk)}
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// Quarantine records a case's integrity findings once; first reports
// whether this call created the record.
func (c *Cases) Quarantine(ctx context.Context, tenant, caseID string, findings []receipt.Finding) (bool, error) {
	b, err := json.Marshal(findings)
	if err != nil {
		return false, fmt.Errorf("encode findings: %w", err)
	}
	item := caseKey(caseID, "QUARANTINE")
	item["tenant"] = s(tenant)
	item["findings"] = s(string(b))
	item["at"] = s(c.now().UTC().Format(time.RFC3339Nano))
	item["gsi1pk"] = s("FINDINGS")
	item["gsi1sk"] = s(c.now().UTC().Format(time.RFC3339Nano) + "#" + caseID)
	return c.putOnce(ctx, item)
}

// Quarantined returns a case's recorded findings, or nil.
func (c *Cases) Quarantined(ctx context.Context, caseID string) ([]receipt.Finding, error) {
	out, err := c.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(c.table), Key: caseKey(caseID, "QUARANTINE"), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("read quarantine of %s: %w", caseID, err)
	}
	v, ok := out.Item["findings"].(*types.AttributeValueMemberS)
	if !ok {
		return nil, nil
	}
	var fs []receipt.Finding
	if err := json.Unmarshal([]byte(v.Value), &fs); err != nil {
		return nil, fmt.Errorf("decode quarantine of %s: %w", caseID, err)
	}
	return fs, nil
}

// MarkAlerted records that a case's integrity alert went out; it reports
// true only the first time, so alerts are sent once per case.
func (c *Cases) MarkAlerted(ctx context.Context, caseID string) (bool, error) {
	item := caseKey(caseID, "ALERTED")
	item["at"] = s(c.now().UTC().Format(time.RFC3339Nano))
	return c.putOnce(ctx, item)
}

func (c *Cases) putOnce(ctx context.Context, item map[string]types.AttributeValue) (bool, error) {
	_, err := c.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(c.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("put %v: %w", item[AttrPK], err)
	}
	return true, nil
}

// Watermark returns the last verified position of a case's chain (seq -1
// when none).
func (c *Cases) Watermark(ctx context.Context, caseID string) (receipt.Watermark, error) {
	out, err := c.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(c.table), Key: caseKey(caseID, "WATERMARK"), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return receipt.Watermark{}, fmt.Errorf("read watermark of %s: %w", caseID, err)
	}
	w := receipt.Watermark{Seq: -1}
	if v, ok := out.Item["w"].(*types.AttributeValueMemberS); ok {
		if err := json.Unmarshal([]byte(v.Value), &w); err != nil {
			return w, fmt.Errorf("decode watermark of %s: %w", caseID, err)
		}
	}
	return w, nil
}

// SetWatermark advances a case's verified watermark; it never moves it back.
func (c *Cases) SetWatermark(ctx context.Context, caseID string, w receipt.Watermark) error {
	b, _ := json.Marshal(w)
	item := caseKey(caseID, "WATERMARK")
	item["w"] = s(string(b))
	item["seq"] = &types.AttributeValueMemberN{Value: fmt.Sprint(w.Seq)}
	_, err := c.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(c.table), Item: item,
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR seq < :s"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":s": item["seq"]},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("set watermark of %s: %w", caseID, err)
	}
	return nil
}

func subKey(tenant, caseID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: s("SUB#" + tenant), AttrSK: s(caseID)}
}

// Subscribe records that a case waits for events of the given CloudEvent
// types (any type when types is empty).
func (c *Cases) Subscribe(ctx context.Context, tenant, caseID string, eventTypes []string) error {
	item := subKey(tenant, caseID)
	item["at"] = s(c.now().UTC().Format(time.RFC3339Nano))
	if len(eventTypes) > 0 {
		item["types"] = &types.AttributeValueMemberSS{Value: slices.Compact(slices.Sorted(slices.Values(eventTypes)))}
	}
	if _, err := c.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(c.table), Item: item}); err != nil {
		return fmt.Errorf("subscribe %s: %w", caseID, err)
	}
	return nil
}

// Unsubscribe removes a case's subscription.
func (c *Cases) Unsubscribe(ctx context.Context, tenant, caseID string) error {
	if _, err := c.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(c.table), Key: subKey(tenant, caseID)}); err != nil {
		return fmt.Errorf("unsubscribe %s: %w", caseID, err)
	}
	return nil
}

// Subscribers lists the cases of a tenant that wait for events.
func (c *Cases) Subscribers(ctx context.Context, tenant string) ([]string, error) {
	return c.SubscribersFor(ctx, tenant, "")
}

// SubscribersFor lists the cases of a tenant that wait for an event of the
// given type (every waiting case when eventType is empty).
func (c *Cases) SubscribersFor(ctx context.Context, tenant, eventType string) ([]string, error) {
	var ids []string
	var start map[string]types.AttributeValue
	for {
		out, err := c.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(c.table),
			KeyConditionExpression:    aws.String("pk = :p"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": s("SUB#" + tenant)},
			ConsistentRead:            aws.Bool(true),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, fmt.Errorf("subscribers of %s: %w", tenant, err)
		}
		for _, it := range out.Items {
			id, ok := it[AttrSK].(*types.AttributeValueMemberS)
			if ok && wants(it["types"], eventType) {
				ids = append(ids, id.Value)
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return ids, nil
		}
		start = out.LastEvaluatedKey
	}
}

// wants reports whether a subscription's types admit an event type.
func wants(v types.AttributeValue, eventType string) bool {
	set, ok := v.(*types.AttributeValueMemberSS)
	if !ok || eventType == "" {
		return true
	}
	return slices.Contains(set.Value, eventType)
}
