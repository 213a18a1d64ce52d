package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/archive"
)

// Items of the archive index in the state table:
//
//	pk CASE#<case>  sk ARCHIVED   summary (archive.Summary as JSON), gsi1pk ARCHIVED, gsi1sk <ended>#<case>
//	pk ARCHIVER     sk CURSOR     checkpoint, leaf: the next checkpoint leaf the archiver examines
//
// A case's ARCHIVED item is written once, only after its archive object was
// read back from S3 and verified; the verifier reads it to tell the
// retention of an archived case from tampering.
const (
	ArchivedIndexPK = "ARCHIVED"
	archivedSK      = "ARCHIVED"
	attrSummary     = "summary"
)

// ArchiveDB is the part of the DynamoDB client the archive index uses.
type ArchiveDB interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Archives is the archive index of the state table.
type Archives struct {
	db    ArchiveDB
	table string
}

// NewArchives returns the archive index of the named state table.
func NewArchives(db ArchiveDB, table string) *Archives { return &Archives{db: db, table: table} }

// Record adds an archived case to the index; recording a case again is a
// no-op that reports false.
func (a *Archives) Record(ctx context.Context, s archive.Summary) (bool, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return false, fmt.Errorf("encode archive summary of %s: %w", s.CaseID, err)
	}
	item := caseKey(s.CaseID, archivedSK)
	item[attrSummary] = &types.AttributeValueMemberS{Value: string(b)}
	item["tenant"] = &types.AttributeValueMemberS{Value: s.Tenant}
	item[attrGSI1PK] = &types.AttributeValueMemberS{Value: ArchivedIndexPK}
	item[attrGSI1SK] = &types.AttributeValueMemberS{Value: s.Ended.UTC().Format(WatermarkTimeLayout) + "#" + s.CaseID}
	_, err = a.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(a.table), Item: item,
		ConditionExpression: aws.String("attribute_not_exists(pk)")})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("record archive of %s: %w", s.CaseID, err)
	}
	return true, nil
}

// Archived returns a case's index entry; ok is false when the case is not
// archived. The read is strongly consistent.
func (a *Archives) Archived(ctx context.Context, caseID string) (s archive.Summary, ok bool, err error) {
	out, err := a.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(a.table), Key: caseKey(caseID, archivedSK), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return s, false, fmt.Errorf("read archive record of %s: %w", caseID, err)
	}
	v := attrS(out.Item, attrSummary)
	if v == "" {
		return s, false, nil
	}
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return s, false, fmt.Errorf("decode archive record of %s: %w", caseID, err)
	}
	return s, true, nil
}

// List returns the cases archived whose end time is in [from, to), oldest
// first, from the state table's index (eventually consistent).
func (a *Archives) List(ctx context.Context, from, to time.Time) ([]archive.Summary, error) {
	p := dynamodb.NewQueryPaginator(a.db, &dynamodb.QueryInput{
		TableName:              aws.String(a.table),
		IndexName:              aws.String(FindingsIndex),
		KeyConditionExpression: aws.String("gsi1pk = :p AND gsi1sk BETWEEN :f AND :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": s(ArchivedIndexPK),
			":f": s(from.UTC().Format(WatermarkTimeLayout)),
			// '#' sorts before every case id character, so this bound
			// excludes exactly the cases that ended at to.
			":t": s(to.UTC().Format(WatermarkTimeLayout)),
		},
	})
	var out []archive.Summary
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list archived cases: %w", err)
		}
		for _, it := range page.Items {
			var sm archive.Summary
			if err := json.Unmarshal([]byte(attrS(it, attrSummary)), &sm); err != nil {
				return nil, fmt.Errorf("decode archive record %s: %w", attrS(it, AttrPK), err)
			}
			if !sm.Ended.Before(to) {
				continue
			}
			out = append(out, sm)
		}
	}
	return out, nil
}

// ArchiveCursor is the archiver's position in the checkpoint log: the next
// leaf to examine is leaf Leaf of checkpoint Checkpoint.
type ArchiveCursor struct {
	Checkpoint uint64
	Leaf       int
}

func archiverCursorKey() map[string]types.AttributeValue { return key("ARCHIVER", "CURSOR") }

// Cursor reads the archiver's position (zero before its first run).
func (a *Archives) Cursor(ctx context.Context) (ArchiveCursor, error) {
	out, err := a.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(a.table), Key: archiverCursorKey(), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return ArchiveCursor{}, fmt.Errorf("read archiver cursor: %w", err)
	}
	var c ArchiveCursor
	if v, ok := out.Item["checkpoint"].(*types.AttributeValueMemberN); ok {
		if c.Checkpoint, err = strconv.ParseUint(v.Value, 10, 64); err != nil {
			return ArchiveCursor{}, fmt.Errorf("archiver cursor checkpoint %q: %w", v.Value, err)
		}
	}
	if v, ok := out.Item["leaf"].(*types.AttributeValueMemberN); ok {
		if c.Leaf, err = strconv.Atoi(v.Value); err != nil {
			return ArchiveCursor{}, fmt.Errorf("archiver cursor leaf %q: %w", v.Value, err)
		}
	}
	return c, nil
}

// SetCursor stores the archiver's position. The caller holds the
// archiver's lease.
func (a *Archives) SetCursor(ctx context.Context, c ArchiveCursor) error {
	item := archiverCursorKey()
	item["checkpoint"] = &types.AttributeValueMemberN{Value: strconv.FormatUint(c.Checkpoint, 10)}
	item["leaf"] = &types.AttributeValueMemberN{Value: strconv.Itoa(c.Leaf)}
	if _, err := a.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(a.table), Item: item}); err != nil {
		return fmt.Errorf("write archiver cursor: %w", err)
	}
	return nil
}
