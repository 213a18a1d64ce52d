package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// Cases keeps per-case records in the state table: quarantine (pk
// CASE#<case>, sk QUARANTINE), listen subscriptions (pk SUB#<tenant>, sk
// <case>) and their index (listen.go), verified watermarks (sk WATERMARK)
// and alert markers (sk ALERTED).
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

// Watermarks returns the last verified position of each case's chain (seq
// -1 when none), with strongly consistent batch reads of up to 100 keys.
func (c *Cases) Watermarks(ctx context.Context, caseIDs []string) (map[string]receipt.Watermark, error) {
	out := make(map[string]receipt.Watermark, len(caseIDs))
	for _, id := range caseIDs {
		out[id] = receipt.Watermark{Seq: -1}
	}
	for chunk := range slices.Chunk(caseIDs, 100) {
		keys := make([]map[string]types.AttributeValue, 0, len(chunk))
		for _, id := range chunk {
			keys = append(keys, caseKey(id, "WATERMARK"))
		}
		for attempt := 0; len(keys) > 0; attempt++ {
			if attempt > 8 {
				return nil, fmt.Errorf("read watermarks: %d keys unprocessed after retries", len(keys))
			}
			if err := pause(ctx, attempt); err != nil {
				return nil, err
			}
			res, err := c.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
				c.table: {Keys: keys, ConsistentRead: aws.Bool(true)},
			}})
			if err != nil {
				return nil, fmt.Errorf("read watermarks: %w", err)
			}
			for _, it := range res.Responses[c.table] {
				id := strings.TrimPrefix(attrS(it, AttrPK), "CASE#")
				v, ok := it["w"].(*types.AttributeValueMemberS)
				if !ok {
					continue
				}
				var w receipt.Watermark
				if err := json.Unmarshal([]byte(v.Value), &w); err != nil {
					return nil, fmt.Errorf("decode watermark of %s: %w", id, err)
				}
				out[id] = w
			}
			keys = res.UnprocessedKeys[c.table].Keys
		}
	}
	return out, nil
}

// SetWatermarks writes cases' verified positions in batches of 25. The
// writes are unconditional: the caller (the stream verifier) handles a
// case's records one invocation at a time and in order, and writes only a
// position above the one it read.
func (c *Cases) SetWatermarks(ctx context.Context, ws map[string]receipt.Watermark) error {
	reqs := make([]types.WriteRequest, 0, len(ws))
	for _, id := range slices.Sorted(maps.Keys(ws)) {
		b, err := json.Marshal(ws[id])
		if err != nil {
			return fmt.Errorf("encode watermark of %s: %w", id, err)
		}
		item := caseKey(id, "WATERMARK")
		item["w"] = s(string(b))
		item["seq"] = &types.AttributeValueMemberN{Value: fmt.Sprint(ws[id].Seq)}
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	if err := c.batchWrite(ctx, reqs); err != nil {
		return fmt.Errorf("write %d watermarks: %w", len(reqs), err)
	}
	return nil
}

// pause waits before a retry of unprocessed batch items: nothing before the
// first attempt, then 10 ms doubling.
func pause(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(10<<(attempt-1)) * time.Millisecond):
		return nil
	}
}
