package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Items of the cases the archiver refused, in the state table:
//
//	pk CASE#<case>  sk ARCHIVE-REFUSED  tenant, headSeq, headHash, leafIndex, checkpoint, reason,
//	                                    attempts, firstAt, lastAt, nextAt;
//	                                    gsi1pk ARCHIVE-REFUSED, gsi1sk <nextAt>#<case>
//
// A later run retries a refused case once its nextAt has passed (the index
// by next retry time finds those due without a scan), and deletes the item
// once the case is archived.
const (
	RefusedIndexPK = "ARCHIVE-REFUSED"
	refusedSK      = "ARCHIVE-REFUSED"
)

// RefusedCase is an ended case the archiver refused to archive, and when
// it is retried.
type RefusedCase struct {
	Tenant  string `json:"tenant"`
	CaseID  string `json:"caseId"`
	HeadSeq int64  `json:"headSeq"`
	// HeadHash, LeafIndex and Checkpoint name the signed head the case was
	// refused at: its leaf in the checkpoint log and the first checkpoint
	// that holds it.
	HeadHash   string `json:"headHash"`
	LeafIndex  uint64 `json:"leafIndex"`
	Checkpoint uint64 `json:"checkpoint"`
	// Reason is why the last attempt was refused.
	Reason string `json:"reason"`
	// Attempts counts the refusals; FirstAt and LastAt are the first and
	// the last; NextAt is when a run next retries it.
	Attempts int       `json:"attempts"`
	FirstAt  time.Time `json:"firstAt"`
	LastAt   time.Time `json:"lastAt"`
	NextAt   time.Time `json:"nextAt"`
}

// RefusedDB is the part of the DynamoDB client the refused cases use.
type RefusedDB interface {
	ArchiveDB
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Refusals are the archiver's refused cases in the state table.
type Refusals struct {
	db    RefusedDB
	table string
}

// NewRefusals returns the refused cases of the named state table.
func NewRefusals(db RefusedDB, table string) *Refusals { return &Refusals{db: db, table: table} }

func refusedSortKey(at time.Time, caseID string) string {
	return at.UTC().Format(WatermarkTimeLayout) + "#" + caseID
}

// Put records (or replaces) a refused case.
func (r *Refusals) Put(ctx context.Context, c RefusedCase) error {
	item := caseKey(c.CaseID, refusedSK)
	item["tenant"] = s(c.Tenant)
	item["headSeq"] = num(c.HeadSeq)
	item["headHash"] = s(c.HeadHash)
	item["leafIndex"] = &types.AttributeValueMemberN{Value: strconv.FormatUint(c.LeafIndex, 10)}
	item["checkpoint"] = &types.AttributeValueMemberN{Value: strconv.FormatUint(c.Checkpoint, 10)}
	item["reason"] = s(c.Reason)
	item["attempts"] = num(int64(c.Attempts))
	item["firstAt"] = s(c.FirstAt.UTC().Format(WatermarkTimeLayout))
	item["lastAt"] = s(c.LastAt.UTC().Format(WatermarkTimeLayout))
	item["nextAt"] = s(c.NextAt.UTC().Format(WatermarkTimeLayout))
	item[attrGSI1PK] = s(RefusedIndexPK)
	item[attrGSI1SK] = s(refusedSortKey(c.NextAt, c.CaseID))
	if _, err := r.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(r.table), Item: item}); err != nil {
		return fmt.Errorf("record refused archive of %s: %w", c.CaseID, err)
	}
	return nil
}

// Get returns a case's refusal; ok is false when it has none. The read is
// strongly consistent.
func (r *Refusals) Get(ctx context.Context, caseID string) (c RefusedCase, ok bool, err error) {
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(r.table), Key: caseKey(caseID, refusedSK), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return c, false, fmt.Errorf("read refused archive of %s: %w", caseID, err)
	}
	if out.Item == nil {
		return c, false, nil
	}
	c, err = decodeRefused(out.Item)
	return c, err == nil, err
}

// Delete removes a case's refusal (none is no error).
func (r *Refusals) Delete(ctx context.Context, caseID string) error {
	if _, err := r.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(r.table), Key: caseKey(caseID, refusedSK)}); err != nil {
		return fmt.Errorf("delete refused archive of %s: %w", caseID, err)
	}
	return nil
}

// Due returns up to limit refused cases whose next retry is at or before
// now, the longest due first, from the state table's index (eventually
// consistent: a refusal recorded a moment ago may be missed until the next
// run).
func (r *Refusals) Due(ctx context.Context, now time.Time, limit int) ([]RefusedCase, error) {
	// '$' sorts right after '#': the bound takes every case due at now.
	return r.query(ctx, "gsi1pk = :p AND gsi1sk <= :t", map[string]types.AttributeValue{
		":p": s(RefusedIndexPK), ":t": s(now.UTC().Format(WatermarkTimeLayout) + "$")}, limit)
}

// List returns every refused case, the soonest retried first.
func (r *Refusals) List(ctx context.Context) ([]RefusedCase, error) {
	return r.query(ctx, "gsi1pk = :p", map[string]types.AttributeValue{":p": s(RefusedIndexPK)}, 0)
}

func (r *Refusals) query(ctx context.Context, cond string, vals map[string]types.AttributeValue, limit int) ([]RefusedCase, error) {
	in := &dynamodb.QueryInput{TableName: aws.String(r.table), IndexName: aws.String(FindingsIndex),
		KeyConditionExpression: aws.String(cond), ExpressionAttributeValues: vals}
	if limit > 0 {
		in.Limit = aws.Int32(int32(min(limit, 1000)))
	}
	p := dynamodb.NewQueryPaginator(r.db, in)
	var out []RefusedCase
	for p.HasMorePages() && (limit <= 0 || len(out) < limit) {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list refused archives: %w", err)
		}
		for _, it := range page.Items {
			c, err := decodeRefused(it)
			if err != nil {
				return nil, err
			}
			if limit > 0 && len(out) == limit {
				break
			}
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].NextAt.Before(out[j].NextAt) })
	return out, nil
}

// ErrNotRefused is returned by RetryNow for a case with no refusal.
var ErrNotRefused = errors.New("the archiver has not refused this case")

// RetryNow makes a refused case due at at, so that the next archiver run
// retries it; its attempts are kept.
func (r *Refusals) RetryNow(ctx context.Context, caseID string, at time.Time) error {
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(r.table),
		Key:                       caseKey(caseID, refusedSK),
		UpdateExpression:          aws.String("SET nextAt = :n, gsi1sk = :k"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":n": s(at.UTC().Format(WatermarkTimeLayout)), ":k": s(refusedSortKey(at, caseID))},
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return fmt.Errorf("case %s: %w", caseID, ErrNotRefused)
	case err != nil:
		return fmt.Errorf("retry refused archive of %s: %w", caseID, err)
	}
	return nil
}

func decodeRefused(it map[string]types.AttributeValue) (RefusedCase, error) {
	c := RefusedCase{Tenant: attrS(it, "tenant"), HeadHash: attrS(it, "headHash"), Reason: attrS(it, "reason")}
	pk := attrS(it, AttrPK)
	c.CaseID = pk[len("CASE#"):]
	var err error
	number := func(name string) uint64 {
		v, ok := it[name].(*types.AttributeValueMemberN)
		if !ok {
			err = errors.Join(err, fmt.Errorf("%s missing", name))
			return 0
		}
		u, perr := strconv.ParseUint(v.Value, 10, 64)
		err = errors.Join(err, perr)
		return u
	}
	at := func(name string) time.Time {
		t, perr := time.Parse(WatermarkTimeLayout, attrS(it, name))
		err = errors.Join(err, perr)
		return t
	}
	c.HeadSeq, c.LeafIndex, c.Checkpoint, c.Attempts = int64(number("headSeq")), number("leafIndex"), number("checkpoint"), int(number("attempts"))
	c.FirstAt, c.LastAt, c.NextAt = at("firstAt"), at("lastAt"), at("nextAt")
	if err != nil {
		return c, fmt.Errorf("decode refused archive %s: %w", pk, err)
	}
	return c, nil
}
