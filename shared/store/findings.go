package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/receipt"
)

// Finding items in the state table. One item per distinct finding:
//
//	pk      CASE#<caseId>
//	sk      FINDING#<seq, 19 digits>#<kind>#<digest>   (seq "NOSEQ" when unknown)
//	gsi1pk  FINDINGS
//	gsi1sk  <RFC 3339 time>#<caseId>
//	finding the receipt.Finding as JSON; tenant, kind, seq, at as attributes
//
// The digest (16 hex digits of SHA-256 over expected, actual and detail)
// tells apart findings of one kind at one seq (two different changes of the
// same item) while keeping a redelivered finding on the same key, so writing
// it again is a no-op.
const (
	FindingPrefix   = "FINDING#" // sort key prefix of finding items
	FindingsIndexPK = "FINDINGS" // gsi1pk of finding items (and quarantines)
	AttrFinding     = "finding"  // the finding as JSON
	attrGSI1PK      = "gsi1pk"
	attrGSI1SK      = "gsi1sk"
	// FindingsIndex is the state table's index that lists recent findings.
	FindingsIndex = "gsi1"
)

// Findings records the verifier's integrity findings in the state table.
type Findings struct {
	db    CaseDB
	table string
	now   func() time.Time
}

// NewFindings returns the finding records of the state table.
func NewFindings(db CaseDB, table string) *Findings {
	return &Findings{db: db, table: table, now: time.Now}
}

// FindingKey returns the sort key of a finding item.
func FindingKey(f receipt.Finding) string {
	seq := "NOSEQ"
	if f.Seq >= 0 {
		seq = fmt.Sprintf("%019d", f.Seq)
	}
	h := sha256.New()
	for _, s := range []string{f.Expected, f.Actual, f.Detail} {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	return FindingPrefix + seq + "#" + string(f.Kind) + "#" + hex.EncodeToString(h.Sum(nil)[:8])
}

// attrWriter holds a random token of the Put call that wrote a finding, so
// that a retried write whose first attempt succeeded (its answer lost)
// still knows it created the finding and its caller alerts once.
const attrWriter = "writer"

// Put records a finding once; created reports whether this call wrote it
// (false: the same finding was already recorded by another call).
func (s *Findings) Put(ctx context.Context, f receipt.Finding) (created bool, err error) {
	if f.CaseID == "" {
		return false, fmt.Errorf("record finding %s: no case id", f.Kind)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return false, fmt.Errorf("encode finding: %w", err)
	}
	at := s.now().UTC().Format(time.RFC3339Nano)
	item := caseKey(f.CaseID, FindingKey(f))
	item[AttrFinding] = &types.AttributeValueMemberS{Value: string(b)}
	item["kind"] = &types.AttributeValueMemberS{Value: string(f.Kind)}
	item["seq"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(f.Seq, 10)}
	item["at"] = &types.AttributeValueMemberS{Value: at}
	if f.Tenant != "" {
		item["tenant"] = &types.AttributeValueMemberS{Value: f.Tenant}
	}
	item[attrGSI1PK] = &types.AttributeValueMemberS{Value: FindingsIndexPK}
	item[attrGSI1SK] = &types.AttributeValueMemberS{Value: at + "#" + f.CaseID}
	var token [16]byte
	if _, err := rand.Read(token[:]); err != nil {
		return false, fmt.Errorf("record finding: writer token: %w", err)
	}
	writer := hex.EncodeToString(token[:])
	item[attrWriter] = &types.AttributeValueMemberS{Value: writer}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)"),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		old := ccf.Item
		if old == nil {
			got, gerr := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table),
				Key: caseKey(f.CaseID, FindingKey(f)), ConsistentRead: aws.Bool(true)})
			if gerr != nil {
				return false, fmt.Errorf("record finding %s of %s seq %d: read the recorded one: %w", f.Kind, f.CaseID, f.Seq, gerr)
			}
			old = got.Item
		}
		// An SDK retry of this very call finds its own first write.
		return attrS(old, attrWriter) == writer, nil
	case err != nil:
		return false, fmt.Errorf("record finding %s of %s seq %d: %w", f.Kind, f.CaseID, f.Seq, err)
	}
	return true, nil
}

// Case returns the recorded findings of one case in seq order (strongly
// consistent).
func (s *Findings) Case(ctx context.Context, caseID string) ([]receipt.Finding, error) {
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("pk = :p AND begins_with(sk, :f)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": &types.AttributeValueMemberS{Value: "CASE#" + caseID},
			":f": &types.AttributeValueMemberS{Value: FindingPrefix},
		},
		ConsistentRead: aws.Bool(true),
	})
	var out []receipt.Finding
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("read findings of %s: %w", caseID, err)
		}
		for _, it := range page.Items {
			f, err := decodeFinding(it)
			if err != nil {
				return nil, fmt.Errorf("read findings of %s: %w", caseID, err)
			}
			out = append(out, f)
		}
	}
	return out, nil
}

// RecordedFinding is a finding with the time it was recorded.
type RecordedFinding struct {
	receipt.Finding
	At time.Time `json:"at"`
}

// Recent lists findings recorded at or after since, newest first, at most
// limit (all when limit <= 0), from the state table's findings index
// (eventually consistent). Quarantine records, which share the index, are
// left out.
func (s *Findings) Recent(ctx context.Context, since time.Time, limit int) ([]RecordedFinding, error) {
	in := &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		IndexName:              aws.String(FindingsIndex),
		KeyConditionExpression: aws.String("gsi1pk = :p AND gsi1sk >= :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": &types.AttributeValueMemberS{Value: FindingsIndexPK},
			":t": &types.AttributeValueMemberS{Value: since.UTC().Format(time.RFC3339Nano)},
		},
		ScanIndexForward: aws.Bool(false),
	}
	var out []RecordedFinding
	p := dynamodb.NewQueryPaginator(s.db, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list recent findings: %w", err)
		}
		for _, it := range page.Items {
			if sk, ok := it[AttrSK].(*types.AttributeValueMemberS); !ok || !strings.HasPrefix(sk.Value, FindingPrefix) {
				continue
			}
			f, err := decodeFinding(it)
			if err != nil {
				return nil, fmt.Errorf("list recent findings: %w", err)
			}
			rf := RecordedFinding{Finding: f}
			if at, ok := it["at"].(*types.AttributeValueMemberS); ok {
				rf.At, _ = time.Parse(time.RFC3339Nano, at.Value)
			}
			out = append(out, rf)
			if limit > 0 && len(out) == limit {
				return out, nil
			}
		}
	}
	return out, nil
}

// Alerted reports whether a case's integrity alert already went out (see
// Cases.MarkAlerted), strongly consistent.
func (s *Findings) Alerted(ctx context.Context, caseID string) (bool, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: caseKey(caseID, "ALERTED"), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return false, fmt.Errorf("read alert marker of %s: %w", caseID, err)
	}
	return out.Item != nil, nil
}

func decodeFinding(it map[string]types.AttributeValue) (receipt.Finding, error) {
	var f receipt.Finding
	v, ok := it[AttrFinding].(*types.AttributeValueMemberS)
	if !ok {
		return f, fmt.Errorf("finding item %v has no %q attribute", it[AttrSK], AttrFinding)
	}
	if err := json.Unmarshal([]byte(v.Value), &f); err != nil {
		return f, fmt.Errorf("decode finding item %v: %w", it[AttrSK], err)
	}
	return f, nil
}

// Range reads the receipts of a case with seq in [from, to] in seq order:
// a strongly consistent Query, newest first from to, of the items up to the
// one that holds from (a segment may start before it). Receipts that do not
// decode are returned as Malformed findings instead.
func (s *Receipts) Range(ctx context.Context, caseID string, from, to int64) ([]*receipt.Receipt, []receipt.Finding, error) {
	if from < 0 {
		from = 0
	}
	if to < from {
		return nil, nil, nil
	}
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		KeyConditionExpression:   aws.String("#c = :c AND #s <= :b"),
		ExpressionAttributeNames: map[string]string{"#c": receipt.AttrCase, "#s": receipt.AttrSeq},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":c": &types.AttributeValueMemberS{Value: caseID},
			":b": &types.AttributeValueMemberN{Value: strconv.FormatInt(to, 10)},
		},
		ScanIndexForward: aws.Bool(false),
		ConsistentRead:   aws.Bool(true),
	})
	var items []map[string]types.AttributeValue
pages:
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s seq %d..%d: %w", caseID, from, to, err)
		}
		for _, it := range page.Items {
			items = append(items, it)
			if itemSeq(it) <= from {
				break pages
			}
		}
	}
	var rs []*receipt.Receipt
	var bad []receipt.Finding
	for i := len(items) - 1; i >= 0; i-- {
		got, fs := itemReceipts(items[i])
		for _, r := range got {
			if r.Seq >= from && r.Seq <= to {
				rs = append(rs, r)
			}
		}
		for _, f := range fs {
			if f.Seq >= from && f.Seq <= to || f.Seq < 0 {
				bad = append(bad, f)
			}
		}
	}
	return rs, bad, nil
}
