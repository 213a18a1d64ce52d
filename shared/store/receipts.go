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

	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/meter"
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
	Receipt *receipt.Receipt // the (last) receipt now in the chain
	// Receipts are the receipts now in the chain, in seq order (an
	// AppendSegment's; Receipt's alone otherwise).
	Receipts []*receipt.Receipt
	// Existing is true when the events were already in the chain at that
	// position and nothing was written (an idempotent re-append).
	Existing bool
	Attempts int // PutItem calls made
	// WriteUnits and ReadUnits are the capacity the append consumed, as
	// DynamoDB reported it (ReturnConsumedCapacity TOTAL).
	WriteUnits, ReadUnits float64
	// Lost is the usage of what stored nothing: each conditional PutItem
	// that lost its position (a request, and the write units DynamoDB
	// charges a failed conditional write: one per started KB of the larger
	// of the item offered and the item in place, at least one) and each
	// read that resolved it. No chain item prices it; the writer charges it
	// to the case (docs/cost.md).
	Lost cost.Usage
}

// lose records a failed conditional write of an item of offered bytes
// against an item of inPlace bytes (0 when unknown).
func (a *Appended) lose(offered, inPlace int) {
	a.Lost.DynamoRequests++
	a.Lost.WriteUnits += float64(max(kb(offered), kb(inPlace)))
}

// lostRead records a read that resolved a failed write: its units as
// DynamoDB reported them, else a strongly consistent read of the item it
// returned (nil: none).
func (a *Appended) lostRead(c *types.ConsumedCapacity, item map[string]types.AttributeValue) {
	a.Lost.DynamoRequests++
	if c != nil && c.CapacityUnits != nil {
		a.Lost.ReadUnits += *c.CapacityUnits
		return
	}
	a.Lost.ReadUnits += float64(max((meter.ItemSize(item)+4<<10-1)/(4<<10), 1))
}

// kb is the number of started kilobytes of n bytes, at least one.
func kb(n int) int { return max((n+1<<10-1)/(1<<10), 1) }

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
		offered, err := s.put(ctx, []*receipt.Receipt{r}, &res)
		if err == nil {
			res.Receipt, res.Receipts = r, []*receipt.Receipt{r}
			return res, nil
		}
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return res, fmt.Errorf("append %s seq %d: %w", caseID, r.Seq, err)
		}
		// The item in place is at r's seq, not necessarily the tail read
		// next: its size is unknown, so the offered one is charged.
		res.lose(meter.ItemSize(offered), 0)
		tail, err := s.tail(ctx, caseID, &res)
		if err != nil {
			return res, err
		}
		if tail == nil {
			return res, fmt.Errorf("append %s seq %d: condition failed but the chain is empty", caseID, r.Seq)
		}
		if k, err := tail.EventKey(); err == nil && k == key {
			res.Receipt, res.Receipts, res.Existing = tail, []*receipt.Receipt{tail}, true
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
	return s.AppendSegment(ctx, prev, tenant, caseID, []Pending{{Event: ev, Options: opts}})
}

// Pending is one event of a segment to append, with the options (usage)
// of its receipt.
type Pending struct {
	Event   history.Event
	Options []receipt.Option
}

// AppendSegment records evs, in order, right after prev (nil when the
// first is a genesis), as segments: one item and one conditional PutItem per
// receipt.MaxSegmentReceipts receipts or receipt.MaxSegmentBytes stored
// bytes, usually one. Each item's sort key is its first seq and it is
// written only if absent, so like AppendExact it never writes elsewhere: a
// position taken by the same events (a retried write) is returned as
// Existing, one taken by other events fails with ErrConflict, after the
// segments before it were written (Receipts holds them). prev must be the
// last receipt of a stored item (the chain's tail as read or as written),
// which is what makes segments impossible to overlap (docs/receipts.md).
func (s *Receipts) AppendSegment(ctx context.Context, prev *receipt.Receipt, tenant, caseID string, evs []Pending) (Appended, error) {
	var res Appended
	if len(evs) == 0 {
		return res, nil
	}
	rs := make([]*receipt.Receipt, 0, len(evs))
	sizes := make([]int, 0, len(evs))
	last := prev
	for _, p := range evs {
		r, err := receipt.New(last, tenant, caseID, p.Event, p.Options...)
		if err != nil {
			return res, err
		}
		c, err := r.Compact()
		if err != nil {
			return res, fmt.Errorf("append %s seq %d: %w", caseID, r.Seq, err)
		}
		rs, sizes, last = append(rs, r), append(sizes, len(c)), r
	}
	for _, r := range rs {
		if err := s.putBlobs(ctx, r); err != nil {
			return res, err
		}
	}
	existing := true
	for _, run := range receipt.Split(rs, sizes) {
		res.Attempts++
		offered, err := s.put(ctx, run, &res)
		var ccf *types.ConditionalCheckFailedException
		switch {
		case err == nil:
			existing = false
			res.Receipts = append(res.Receipts, run...)
			continue
		case !errors.As(err, &ccf):
			return res, fmt.Errorf("append %s seq %d: %w", caseID, run[0].Seq, err)
		}
		taken, inPlace, err := s.at(ctx, caseID, run[0].Seq, &res)
		res.lose(meter.ItemSize(offered), inPlace)
		if err != nil {
			return res, err
		}
		if !sameEvents(taken, run) {
			return res, fmt.Errorf("append %s seq %d: %w", caseID, run[0].Seq, ErrConflict)
		}
		res.Receipts = append(res.Receipts, taken...)
	}
	res.Existing = existing
	res.Receipt = res.Receipts[len(res.Receipts)-1]
	return res, nil
}

// sameEvents reports whether stored, the receipts of the item at run's
// position, record exactly run's events at the same positions (a retried
// write whose first try landed).
func sameEvents(stored, run []*receipt.Receipt) bool {
	if len(stored) != len(run) || stored[0].PrevHash != run[0].PrevHash {
		return false
	}
	for i := range run {
		want, err1 := run[i].EventKey()
		got, err2 := stored[i].EventKey()
		if err1 != nil || err2 != nil || want != got {
			return false
		}
	}
	return true
}

// at reads the receipts of the item at one seq, strongly consistent (nil
// when absent), and the item's size; the read is Lost usage (it resolves a
// failed write).
func (s *Receipts) at(ctx context.Context, caseID string, seq int64, res *Appended) ([]*receipt.Receipt, int, error) {
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
		res.Lost.DynamoRequests++ // a failed read is a request, no units
		return nil, 0, fmt.Errorf("read %s seq %d: %w", caseID, seq, err)
	}
	res.ReadUnits += units(out.ConsumedCapacity)
	res.lostRead(out.ConsumedCapacity, out.Item)
	if out.Item == nil {
		return nil, 0, nil
	}
	size := meter.ItemSize(out.Item)
	rs, err := decodeItem(out.Item)
	if err != nil {
		return nil, size, fmt.Errorf("read %s seq %d: %w", caseID, seq, err)
	}
	return rs, size, nil
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

// put writes rs, one linked run, as one segment item if absent, and
// returns the item (sized only when the write failed).
func (s *Receipts) put(ctx context.Context, rs []*receipt.Receipt, res *Appended) (map[string]types.AttributeValue, error) {
	item, err := SegmentItem(rs)
	if err != nil {
		return nil, err
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
	return item, err
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

// Item is the stored form of one receipt as written before segments: the
// canonical JSON in "r" plus the key and the attributes that queries use.
// Such items are still read (a chain may mix them with segments); new
// receipts are written as segments (SegmentItem).
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

// SegmentItem is the stored form of rs, consecutive linked receipts of one
// case: the key (case, first seq), the last seq, tenant, the first
// receipt's prevHash, the last one's hash and type, and each receipt's
// Compact form in "rs".
func SegmentItem(rs []*receipt.Receipt) (map[string]types.AttributeValue, error) {
	seg, err := receipt.NewSegment(rs)
	if err != nil {
		return nil, err
	}
	list := make([]types.AttributeValue, len(seg.Receipts))
	for i, b := range seg.Receipts {
		list[i] = &types.AttributeValueMemberS{Value: string(b)}
	}
	last := rs[len(rs)-1]
	return map[string]types.AttributeValue{
		receipt.AttrCase:     &types.AttributeValueMemberS{Value: seg.CaseID},
		receipt.AttrSeq:      &types.AttributeValueMemberN{Value: strconv.FormatInt(seg.First, 10)},
		receipt.AttrLast:     &types.AttributeValueMemberN{Value: strconv.FormatInt(last.Seq, 10)},
		receipt.AttrTenant:   &types.AttributeValueMemberS{Value: seg.Tenant},
		receipt.AttrPrevHash: &types.AttributeValueMemberS{Value: seg.PrevHash},
		receipt.AttrHash:     &types.AttributeValueMemberS{Value: last.Hash},
		receipt.AttrType:     &types.AttributeValueMemberS{Value: string(last.Type)},
		receipt.AttrReceipts: &types.AttributeValueMemberL{Value: list},
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
		res.Lost.DynamoRequests++ // a failed read is a request, no units
		return nil, fmt.Errorf("read tail of %s: %w", caseID, err)
	}
	res.ReadUnits += units(out.ConsumedCapacity)
	var first map[string]types.AttributeValue
	if len(out.Items) > 0 {
		first = out.Items[0]
	}
	res.lostRead(out.ConsumedCapacity, first)
	if len(out.Items) == 0 {
		return nil, nil
	}
	rs, err := decodeItem(out.Items[0])
	if err != nil {
		return nil, fmt.Errorf("read tail of %s: %w", caseID, err)
	}
	return rs[len(rs)-1], nil
}

// decodeItem returns the receipts an item holds: a segment's, or the one
// receipt of an item written before segments. It fails unless all decode.
func decodeItem(item map[string]types.AttributeValue) ([]*receipt.Receipt, error) {
	rs, bad := itemReceipts(item)
	if len(bad) > 0 {
		return nil, errors.New(bad[0].Detail)
	}
	return rs, nil
}

// itemReceipts returns the receipts of an item that decode and a Malformed
// finding for each seq it holds that does not.
func itemReceipts(item map[string]types.AttributeValue) ([]*receipt.Receipt, []receipt.Finding) {
	caseID, seq := attrS(item, receipt.AttrCase), itemSeq(item)
	malformed := func(seq int64, detail string) receipt.Finding {
		return receipt.Finding{Kind: receipt.Malformed, Tenant: attrS(item, receipt.AttrTenant), CaseID: caseID, Seq: seq, Detail: detail}
	}
	l, ok := item[receipt.AttrReceipts].(*types.AttributeValueMemberL)
	if !ok {
		v, ok := item[receipt.AttrReceipt].(*types.AttributeValueMemberS)
		if !ok {
			return nil, []receipt.Finding{malformed(seq, fmt.Sprintf("item has neither %q nor %q", receipt.AttrReceipts, receipt.AttrReceipt))}
		}
		r, err := receipt.Decode([]byte(v.Value))
		if err != nil {
			return nil, []receipt.Finding{malformed(seq, err.Error())}
		}
		return []*receipt.Receipt{r}, nil
	}
	seg := receipt.Segment{Tenant: attrS(item, receipt.AttrTenant), CaseID: caseID, First: seq, PrevHash: attrS(item, receipt.AttrPrevHash)}
	for _, e := range l.Value {
		var b []byte
		if s, ok := e.(*types.AttributeValueMemberS); ok {
			b = []byte(s.Value)
		}
		seg.Receipts = append(seg.Receipts, b)
	}
	if len(seg.Receipts) == 0 || seg.Tenant == "" || caseID == "" || seq < 0 {
		return nil, []receipt.Finding{malformed(seq, "segment item lacks its receipts, case, tenant or first seq")}
	}
	rs, err := seg.Decode()
	if err == nil {
		return rs, nil
	}
	var bad []receipt.Finding
	for s := seg.First + int64(len(rs)); s <= seg.Last(); s++ {
		bad = append(bad, malformed(s, err.Error()))
	}
	return rs, bad
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
// paginated Query calls, segments and items written before segments alike.
// Receipts that do not decode are returned as Malformed findings instead,
// so a verifier still sees the rest.
func (s *Receipts) Chain(ctx context.Context, caseID string) ([]*receipt.Receipt, []receipt.Finding, error) {
	rs, _, bad, err := s.chain(ctx, caseID, false)
	return rs, bad, err
}

// StoredChain is Chain with the billed sizes of the items that store the
// receipts (one per segment or single-receipt item, meter.ItemSize), which
// price the chain's own writes.
func (s *Receipts) StoredChain(ctx context.Context, caseID string) ([]*receipt.Receipt, []int, []receipt.Finding, error) {
	return s.chain(ctx, caseID, true)
}

// chain reads the case's items; it sizes them only when asked, so that the
// executor's read of its chain on every step does not.
func (s *Receipts) chain(ctx context.Context, caseID string, sized bool) ([]*receipt.Receipt, []int, []receipt.Finding, error) {
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#c = :c"),
		ExpressionAttributeNames:  map[string]string{"#c": receipt.AttrCase},
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: caseID}},
		ConsistentRead:            aws.Bool(true),
	})
	var rs []*receipt.Receipt
	var sizes []int
	var bad []receipt.Finding
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read chain of %s: %w", caseID, err)
		}
		for _, it := range page.Items {
			got, fs := itemReceipts(it)
			rs, bad = append(rs, got...), append(bad, fs...)
			if sized && len(got) > 0 {
				sizes = append(sizes, meter.ItemSize(it))
			}
		}
	}
	return rs, sizes, bad, nil
}
