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

// Release ends a case's quarantine as an operator action: the quarantine
// record is deleted and a release record (sk RELEASE#<time>) keeps what was
// released, by whom and why, beside the case's other records. It returns the
// findings released; ErrNotQuarantined when the case is not quarantined.
func (c *Cases) Release(ctx context.Context, caseID, by, reason string) ([]receipt.Finding, error) {
	fs, err := c.Quarantined(ctx, caseID)
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		return nil, fmt.Errorf("case %s: %w", caseID, ErrNotQuarantined)
	}
	b, err := json.Marshal(fs)
	if err != nil {
		return nil, fmt.Errorf("encode findings: %w", err)
	}
	at := c.now().UTC().Format(time.RFC3339Nano)
	item := caseKey(caseID, "RELEASE#"+at)
	item["findings"], item["by"], item["reason"], item["at"] = s(string(b)), s(by), s(reason), s(at)
	if _, err := c.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(c.table), Item: item}); err != nil {
		return nil, fmt.Errorf("record release of %s: %w", caseID, err)
	}
	if _, err := c.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(c.table), Key: caseKey(caseID, "QUARANTINE")}); err != nil {
		return nil, fmt.Errorf("release %s: %w", caseID, err)
	}
	return fs, nil
}

// ErrNotQuarantined means a case has no quarantine to release.
var ErrNotQuarantined = errors.New("not quarantined")

// StartConflict is a start message that reused a case's idempotency key
// with another input.
type StartConflict struct {
	Tenant         string    `json:"tenant"`
	CaseID         string    `json:"caseId"`
	IdempotencyKey string    `json:"idempotencyKey"`
	CaseInputHash  string    `json:"caseInputHash"` // the genesis receipt's input hash
	InputHash      string    `json:"inputHash"`     // the refused message's input hash
	At             time.Time `json:"at"`
}

// StartConflict records a conflict once per (case, input) under pk
// CASE#<case>, sk CONFLICT#<input hash>; first reports whether this call
// created the record.
func (c *Cases) StartConflict(ctx context.Context, sc StartConflict) (bool, error) {
	b, err := json.Marshal(sc)
	if err != nil {
		return false, fmt.Errorf("encode conflict: %w", err)
	}
	item := caseKey(sc.CaseID, "CONFLICT#"+sc.InputHash)
	item["conflict"] = s(string(b))
	item["tenant"] = s(sc.Tenant)
	item["at"] = s(sc.At.UTC().Format(time.RFC3339Nano))
	return c.putOnce(ctx, item)
}

// StartConflicts returns the start conflicts recorded for a case.
func (c *Cases) StartConflicts(ctx context.Context, caseID string) ([]StartConflict, error) {
	out, err := c.db.Query(ctx, &dynamodb.QueryInput{
		TableName:              aws.String(c.table),
		KeyConditionExpression: aws.String("pk = :p AND begins_with(sk, :c)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": s("CASE#" + caseID), ":c": s("CONFLICT#"),
		},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("start conflicts of %s: %w", caseID, err)
	}
	var cs []StartConflict
	for _, it := range out.Items {
		var sc StartConflict
		if err := json.Unmarshal([]byte(attrS(it, "conflict")), &sc); err != nil {
			return nil, fmt.Errorf("decode start conflict of %s: %w", caseID, err)
		}
		cs = append(cs, sc)
	}
	return cs, nil
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
		item[attrGSI1PK] = s(WatermarksIndexPK)
		item[attrGSI1SK] = s(c.now().UTC().Format(WatermarkTimeLayout) + "#" + id)
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	if err := c.batchWrite(ctx, reqs); err != nil {
		return fmt.Errorf("write %d watermarks: %w", len(reqs), err)
	}
	return nil
}

// WatermarksIndexPK is the gsi1pk of watermark items: the index lists the
// watermarks by the time they were last written (gsi1sk
// <WatermarkTimeLayout time>#<caseId>), so the checkpointer reads only the
// cases that advanced.
const WatermarksIndexPK = "WATERMARKS"

// WatermarkTimeLayout is a fixed-width UTC time, so that index keys sort
// by time.
const WatermarkTimeLayout = "2006-01-02T15:04:05.000000000Z"

// CaseWatermark is one case's verified position.
type CaseWatermark struct {
	CaseID    string
	Watermark receipt.Watermark
	// Written is when the verifier last wrote it, in WatermarkTimeLayout.
	Written string
}

// ChangedWatermarks lists the watermarks written at or after since, oldest
// first, from the state table's index (eventually consistent: a caller
// looks back a margin and ignores positions it has already handled).
func (c *Cases) ChangedWatermarks(ctx context.Context, since time.Time) ([]CaseWatermark, error) {
	p := dynamodb.NewQueryPaginator(c.db, &dynamodb.QueryInput{
		TableName:              aws.String(c.table),
		IndexName:              aws.String(FindingsIndex),
		KeyConditionExpression: aws.String("gsi1pk = :p AND gsi1sk >= :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": s(WatermarksIndexPK), ":t": s(since.UTC().Format(WatermarkTimeLayout)),
		},
	})
	var out []CaseWatermark
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list changed watermarks: %w", err)
		}
		for _, it := range page.Items {
			var w receipt.Watermark
			if err := json.Unmarshal([]byte(attrS(it, "w")), &w); err != nil {
				return nil, fmt.Errorf("decode watermark %s: %w", attrS(it, AttrPK), err)
			}
			written, _, _ := strings.Cut(attrS(it, attrGSI1SK), "#")
			out = append(out, CaseWatermark{CaseID: strings.TrimPrefix(attrS(it, AttrPK), "CASE#"), Watermark: w, Written: written})
		}
	}
	return out, nil
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
