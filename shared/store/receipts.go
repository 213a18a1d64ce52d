// Package store is the DynamoDB adapter of the receipt chain: conditional
// appends and chain reads on the receipts table, and checkpoints, proofs
// and detached payloads in the state table.
package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/telemetry"
)

// DynamoDB is the part of the DynamoDB client the store uses.
type DynamoDB interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// Errors of Append.
var (
	// ErrContended means every attempt lost the race for the next seq.
	ErrContended = errors.New("receipt append contended: attempts exhausted")
	// ErrCaseExists means a genesis was appended to a case that has one.
	ErrCaseExists = errors.New("case already has a genesis receipt")
	// ErrConflict means AppendExact found its position taken by another
	// event: the chain moved and the caller must re-read it.
	ErrConflict = errors.New("receipt append conflict: another event took the position")
)

// Receipts appends to and reads case chains in the receipts table
// (partition key caseId S, sort key seq N).
type Receipts struct {
	db    DynamoDB
	table string
	// Blobs receives payloads too large to inline; nil rejects them.
	Blobs BlobStore
	// MaxAttempts bounds the writes of one Append (default 10).
	MaxAttempts int
	// BaseDelay and MaxDelay shape the full-jitter backoff between
	// attempts (defaults 5ms and 200ms).
	BaseDelay, MaxDelay time.Duration
}

// NewReceipts returns a store over the named receipts table.
func NewReceipts(db DynamoDB, table string) *Receipts {
	return &Receipts{db: db, table: table, MaxAttempts: 10, BaseDelay: 5 * time.Millisecond, MaxDelay: 200 * time.Millisecond}
}

// Appended is the outcome of an Append.
type Appended struct {
	Receipt *receipt.Receipt // the receipt now in the chain
	// Existing is true when the event was already the chain's tail and
	// nothing was written (an idempotent re-append).
	Existing bool
	Attempts int // PutItem calls made
	// WriteUnits and ReadUnits are the capacity the append consumed, as
	// DynamoDB reported it (ReturnConsumedCapacity TOTAL).
	WriteUnits, ReadUnits float64
}

// Append records ev after prev (nil for a genesis) with one conditional
// PutItem. When another writer took that seq first, it re-reads the tail
// and either returns it (the tail records the same event: see
// receipt.EventKey) or retries at the next seq after a jittered backoff.
// Usage options apply to every attempt.
func (s *Receipts) Append(ctx context.Context, prev *receipt.Receipt, tenant, caseID string, ev history.Event, opts ...receipt.Option) (Appended, error) {
	var res Appended
	r, err := receipt.New(prev, tenant, caseID, ev, opts...)
	if err != nil {
		return res, err
	}
	if err := s.putBlobs(ctx, r); err != nil {
		return res, err
	}
	key, err := r.EventKey()
	if err != nil {
		return res, err
	}
	for {
		res.Attempts++
		err := s.put(ctx, r, &res)
		if err == nil {
			res.Receipt = r
			return res, nil
		}
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return res, fmt.Errorf("append %s seq %d: %w", caseID, r.Seq, err)
		}
		tail, err := s.tail(ctx, caseID, &res)
		if err != nil {
			return res, err
		}
		if tail == nil {
			return res, fmt.Errorf("append %s seq %d: condition failed but the chain is empty", caseID, r.Seq)
		}
		if k, err := tail.EventKey(); err == nil && k == key {
			res.Receipt, res.Existing = tail, true
			return res, nil
		}
		if prev == nil {
			return res, fmt.Errorf("append %s: %w", caseID, ErrCaseExists)
		}
		if res.Attempts >= s.MaxAttempts {
			return res, fmt.Errorf("append %s after %d attempts: %w", caseID, res.Attempts, ErrContended)
		}
		if r, err = receipt.New(tail, tenant, caseID, ev, opts...); err != nil {
			return res, err
		}
		if err := s.sleep(ctx, res.Attempts); err != nil {
			return res, err
		}
	}
}

// AppendExact records ev right after prev (nil for a genesis) with one
// conditional PutItem, and never elsewhere: when the position is taken by
// the same event (a retried write) it returns that receipt as Existing, when
// by another event it fails with ErrConflict. A writer whose next events
// depend on what the chain holds (the executor) uses it, re-reading and
// deciding again on conflict.
func (s *Receipts) AppendExact(ctx context.Context, prev *receipt.Receipt, tenant, caseID string, ev history.Event, opts ...receipt.Option) (Appended, error) {
	res := Appended{Attempts: 1}
	r, err := receipt.New(prev, tenant, caseID, ev, opts...)
	if err != nil {
		return res, err
	}
	if err := s.putBlobs(ctx, r); err != nil {
		return res, err
	}
	err = s.put(ctx, r, &res)
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		res.Receipt = r
		return res, nil
	case !errors.As(err, &ccf):
		return res, fmt.Errorf("append %s seq %d: %w", caseID, r.Seq, err)
	}
	taken, err := s.at(ctx, caseID, r.Seq, &res)
	if err != nil {
		return res, err
	}
	if taken != nil {
		want, err1 := r.EventKey()
		got, err2 := taken.EventKey()
		if err1 == nil && err2 == nil && want == got && taken.PrevHash == r.PrevHash {
			res.Receipt, res.Existing = taken, true
			return res, nil
		}
	}
	return res, fmt.Errorf("append %s seq %d: %w", caseID, r.Seq, ErrConflict)
}

// at reads the receipt at one seq, strongly consistent (nil when absent).
func (s *Receipts) at(ctx context.Context, caseID string, seq int64, res *Appended) (*receipt.Receipt, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table),
		Key: map[string]types.AttributeValue{
			receipt.AttrCase: &types.AttributeValueMemberS{Value: caseID},
			receipt.AttrSeq:  &types.AttributeValueMemberN{Value: strconv.FormatInt(seq, 10)},
		},
		ConsistentRead:         aws.Bool(true),
		ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal,
	})
	if err != nil {
		return nil, fmt.Errorf("read %s seq %d: %w", caseID, seq, err)
	}
	res.ReadUnits += units(out.ConsumedCapacity)
	if out.Item == nil {
		return nil, nil
	}
	r, err := decodeItem(out.Item)
	if err != nil {
		return nil, fmt.Errorf("read %s seq %d: %w", caseID, seq, err)
	}
	return r, nil
}

// Events turns receipts back into the history they record, fetching
// detached payloads from the blob store.
func (s *Receipts) Events(ctx context.Context, rs []*receipt.Receipt) ([]history.Event, error) {
	var blob func(string) ([]byte, error)
	if s.Blobs != nil {
		blob = func(h string) ([]byte, error) { return s.Blobs.Blob(ctx, h) }
	}
	evs := make([]history.Event, len(rs))
	for i, r := range rs {
		ev, err := r.Event(blob)
		if err != nil {
			return nil, fmt.Errorf("receipt %s/%d: %w", r.CaseID, r.Seq, err)
		}
		evs[i] = ev
	}
	return evs, nil
}

// sleep waits a full-jitter backoff: uniform in [0, min(max, base·2^n)).
func (s *Receipts) sleep(ctx context.Context, attempt int) error {
	ceil := s.BaseDelay << min(attempt, 16)
	if ceil > s.MaxDelay || ceil <= 0 {
		ceil = s.MaxDelay
	}
	if ceil <= 0 {
		return nil
	}
	t := time.NewTimer(rand.N(ceil))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (s *Receipts) put(ctx context.Context, r *receipt.Receipt, res *Appended) error {
	item, err := Item(r)
	if err != nil {
		return err
	}
	if tp := telemetry.TraceParent(ctx); tp != "" {
		item[AttrTraceParent] = &types.AttributeValueMemberS{Value: tp}
	}
	out, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#c)"),
		ExpressionAttributeNames: map[string]string{"#c": receipt.AttrCase},
		ReturnConsumedCapacity:   types.ReturnConsumedCapacityTotal,
	})
	if out != nil {
		res.WriteUnits += units(out.ConsumedCapacity)
	}
	return err
}

func (s *Receipts) putBlobs(ctx context.Context, r *receipt.Receipt) error {
	if len(r.Detached) == 0 {
		return nil
	}
	if s.Blobs == nil {
		return fmt.Errorf("receipt %s/%d has payloads over %d bytes and no blob store is set", r.CaseID, r.Seq, receipt.InlineLimit)
	}
	for _, b := range r.Detached {
		if err := s.Blobs.PutBlob(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// AttrTraceParent is the receipt item attribute naming the span that wrote
// it (W3C traceparent), so that the verifier's spans on the table's stream
// join the case's trace. It is no part of the receipt and proves nothing.
const AttrTraceParent = "traceparent"

// Item is the stored form of a receipt: the canonical JSON in "r" plus the
// key and the attributes that queries use.
func Item(r *receipt.Receipt) (map[string]types.AttributeValue, error) {
	c, err := r.Canonical()
	if err != nil {
		return nil, fmt.Errorf("encode receipt %s/%d: %w", r.CaseID, r.Seq, err)
	}
	return map[string]types.AttributeValue{
		receipt.AttrCase:     &types.AttributeValueMemberS{Value: r.CaseID},
		receipt.AttrSeq:      &types.AttributeValueMemberN{Value: strconv.FormatInt(r.Seq, 10)},
		receipt.AttrReceipt:  &types.AttributeValueMemberS{Value: string(c)},
		receipt.AttrHash:     &types.AttributeValueMemberS{Value: r.Hash},
		receipt.AttrPrevHash: &types.AttributeValueMemberS{Value: r.PrevHash},
		receipt.AttrType:     &types.AttributeValueMemberS{Value: string(r.Type)},
		receipt.AttrTenant:   &types.AttributeValueMemberS{Value: r.Tenant},
	}, nil
}

func units(c *types.ConsumedCapacity) float64 {
	if c == nil || c.CapacityUnits == nil {
		return 0
	}
	return *c.CapacityUnits
}

// Tail returns the last receipt of a case, or nil when the case has none.
func (s *Receipts) Tail(ctx context.Context, caseID string) (*receipt.Receipt, error) {
	return s.tail(ctx, caseID, &Appended{})
}

func (s *Receipts) tail(ctx context.Context, caseID string, res *Appended) (*receipt.Receipt, error) {
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#c = :c"),
		ExpressionAttributeNames:  map[string]string{"#c": receipt.AttrCase},
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: caseID}},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(1),
		ConsistentRead:            aws.Bool(true),
		ReturnConsumedCapacity:    types.ReturnConsumedCapacityTotal,
	})
	if err != nil {
		return nil, fmt.Errorf("read tail of %s: %w", caseID, err)
	}
	res.ReadUnits += units(out.ConsumedCapacity)
	if len(out.Items) == 0 {
		return nil, nil
	}
	r, err := decodeItem(out.Items[0])
	if err != nil {
		return nil, fmt.Errorf("read tail of %s: %w", caseID, err)
	}
	return r, nil
}

func decodeItem(item map[string]types.AttributeValue) (*receipt.Receipt, error) {
	v, ok := item[receipt.AttrReceipt].(*types.AttributeValueMemberS)
	if !ok {
		return nil, fmt.Errorf("item has no %q string attribute", receipt.AttrReceipt)
	}
	return receipt.Decode([]byte(v.Value))
}

func itemSeq(item map[string]types.AttributeValue) int64 {
	if n, ok := item[receipt.AttrSeq].(*types.AttributeValueMemberN); ok {
		if v, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
			return v
		}
	}
	return -1
}

// Chain reads a case's receipts in seq order with strongly consistent,
// paginated Query calls. Items that do not decode are returned as Malformed
// findings instead of receipts, so a verifier still sees the rest.
func (s *Receipts) Chain(ctx context.Context, caseID string) ([]*receipt.Receipt, []receipt.Finding, error) {
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#c = :c"),
		ExpressionAttributeNames:  map[string]string{"#c": receipt.AttrCase},
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: caseID}},
		ConsistentRead:            aws.Bool(true),
	})
	var rs []*receipt.Receipt
	var bad []receipt.Finding
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("read chain of %s: %w", caseID, err)
		}
		for _, it := range page.Items {
			r, err := decodeItem(it)
			if err != nil {
				bad = append(bad, receipt.Finding{Kind: receipt.Malformed, CaseID: caseID, Seq: itemSeq(it), Detail: err.Error()})
				continue
			}
			rs = append(rs, r)
		}
	}
	return rs, bad, nil
}
