package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/merkle"
)

// Items of the checkpoints table (pk S, sk S), which only the checkpointer
// can write:
//
//	pk CHECKPOINT  sk <seq, 20 digits>              sth, consistency, chunks, cursor, signerKey
//	pk LEAVES      sk <seq, 20 digits>#<chunk, 6>   leaves (JSON, up to LeavesPerChunk heads)
//	pk LEASE#checkpointer  sk LEASE                 the run's lease (see Leases)
//
// A checkpoint and its leaves are written in one transaction, each item
// only if absent: a checkpoint is never overwritten, never visible without
// its leaves, and two runs cannot both write the same position.
const (
	CheckpointPK = "CHECKPOINT"
	leavesPK     = "LEAVES"
	// LeavesPerChunk heads share one leaves item (well under 400 KB).
	LeavesPerChunk = 1000
	// MaxLeaves is the most heads one checkpoint appends: the transaction
	// holds the checkpoint and at most 24 leaf chunks (under its 4 MB and
	// 100-item limits). More heads wait for the next run.
	MaxLeaves = 24 * LeavesPerChunk
)

// CheckpointDB is the part of the DynamoDB client the checkpoint log uses.
type CheckpointDB interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Checkpoints is the adapter of the checkpoints table.
type Checkpoints struct {
	db    CheckpointDB
	table string
	now   func() time.Time
}

// NewCheckpoints returns the checkpoint log stored in the named table.
func NewCheckpoints(db CheckpointDB, table string) *Checkpoints {
	return &Checkpoints{db: db, table: table, now: time.Now}
}

// ErrCheckpointExists is returned when the checkpoint's position is taken.
var ErrCheckpointExists = errors.New("a checkpoint at this position exists")

// StoredLog is the checkpoint log as stored: its entries in seq order and
// the cursor the last checkpoint recorded.
type StoredLog struct {
	Entries []checkpoint.Entry
	// Cursor is the watermark time up to which the last checkpoint looked
	// (see Cases.ChangedWatermarks); empty before the first.
	Cursor string
}

func seqKey(seq uint64) string { return fmt.Sprintf("%020d", seq) }

// Load reads the whole log: every checkpoint and its leaves (two strongly
// consistent paginated Queries). It does not verify it (checkpoint.VerifyLog
// does); entries whose leaves are missing fail that check.
func (c *Checkpoints) Load(ctx context.Context) (StoredLog, error) {
	var out StoredLog
	bySeq := map[string]int{}
	err := c.query(ctx, CheckpointPK, func(it map[string]types.AttributeValue) error {
		var e checkpoint.Entry
		if err := json.Unmarshal([]byte(attrS(it, "sth")), &e.Head); err != nil {
			return fmt.Errorf("decode checkpoint %s: %w", attrS(it, AttrSK), err)
		}
		if err := json.Unmarshal([]byte(attrS(it, "consistency")), &e.Consistency); err != nil {
			return fmt.Errorf("decode checkpoint %s consistency proof: %w", attrS(it, AttrSK), err)
		}
		bySeq[attrS(it, AttrSK)] = len(out.Entries)
		out.Entries = append(out.Entries, e)
		out.Cursor = attrS(it, "cursor")
		return nil
	})
	if err != nil {
		return StoredLog{}, err
	}
	err = c.query(ctx, leavesPK, func(it map[string]types.AttributeValue) error {
		sk := attrS(it, AttrSK)
		seq, _, _ := strings.Cut(sk, "#")
		i, ok := bySeq[seq]
		if !ok {
			return nil // leaves of a checkpoint that is not there: VerifyLog reports the gap
		}
		var hs []merkle.Head
		if err := json.Unmarshal([]byte(attrS(it, "leaves")), &hs); err != nil {
			return fmt.Errorf("decode checkpoint leaves %s: %w", sk, err)
		}
		out.Entries[i].Leaves = append(out.Entries[i].Leaves, hs...)
		return nil
	})
	if err != nil {
		return StoredLog{}, err
	}
	return out, nil
}

func (c *Checkpoints) query(ctx context.Context, pk string, each func(map[string]types.AttributeValue) error) error {
	p := dynamodb.NewQueryPaginator(c.db, &dynamodb.QueryInput{
		TableName:                 aws.String(c.table),
		KeyConditionExpression:    aws.String("pk = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": s(pk)},
		ConsistentRead:            aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("read checkpoint log (%s): %w", pk, err)
		}
		for _, it := range page.Items {
			if err := each(it); err != nil {
				return err
			}
		}
	}
	return nil
}

// Commit stores a checkpoint and its leaves in one transaction, only if its
// position is free (ErrCheckpointExists otherwise).
func (c *Checkpoints) Commit(ctx context.Context, e checkpoint.Entry, signerKey, cursor string) error {
	chunks := slices.Collect(slices.Chunk(e.Leaves, LeavesPerChunk))
	if len(chunks) > MaxLeaves/LeavesPerChunk {
		return fmt.Errorf("checkpoint %d: %d leaves, at most %d per checkpoint", e.Head.Seq, len(e.Leaves), MaxLeaves)
	}
	sth, err := json.Marshal(e.Head)
	if err != nil {
		return err
	}
	cons, err := json.Marshal(e.Consistency)
	if err != nil {
		return err
	}
	if e.Consistency == nil {
		cons = []byte("[]")
	}
	put := func(item map[string]types.AttributeValue) types.TransactWriteItem {
		return types.TransactWriteItem{Put: &types.Put{TableName: aws.String(c.table), Item: item,
			ConditionExpression: aws.String("attribute_not_exists(pk)")}}
	}
	head := key(CheckpointPK, seqKey(e.Head.Seq))
	head["sth"] = s(string(sth))
	head["consistency"] = s(string(cons))
	head["chunks"] = &types.AttributeValueMemberN{Value: strconv.Itoa(len(chunks))}
	head["cursor"] = s(cursor)
	head["signerKey"] = s(signerKey)
	items := []types.TransactWriteItem{put(head)}
	for i, ch := range chunks {
		b, err := json.Marshal(ch)
		if err != nil {
			return err
		}
		it := key(leavesPK, fmt.Sprintf("%s#%06d", seqKey(e.Head.Seq), i))
		it["leaves"] = s(string(b))
		items = append(items, put(it))
	}
	_, err = c.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		for _, r := range tce.CancellationReasons {
			if aws.ToString(r.Code) == "ConditionalCheckFailed" {
				return fmt.Errorf("checkpoint %d: %w", e.Head.Seq, ErrCheckpointExists)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("store checkpoint %d: %w", e.Head.Seq, err)
	}
	return nil
}

func attrS(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: s(pk), AttrSK: s(sk)}
}

// batchWrite writes in batches of 25, resending unprocessed items with a
// growing pause.
func (s *State) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	for batch := range slices.Chunk(reqs, 25) {
		for attempt := 0; len(batch) > 0; attempt++ {
			if attempt > 8 {
				return fmt.Errorf("%d items unprocessed after retries", len(batch))
			}
			if err := pause(ctx, attempt); err != nil {
				return err
			}
			out, err := s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{s.table: batch}})
			if err != nil {
				return err
			}
			batch = out.UnprocessedItems[s.table]
		}
	}
	return nil
}
