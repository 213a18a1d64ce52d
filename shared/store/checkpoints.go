package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/receipt/checkpoint"
	"github.com/knhk/knhk/shared/receipt/merkle"
)

// State table partition keys of checkpoints.
const (
	// CheckpointPK holds one item per checkpoint, sk = its period.
	CheckpointPK = "CHECKPOINT"
	// ProofPKPrefix + caseId holds one item per checkpoint covering the
	// case, sk = the period, with the case's inclusion proof.
	ProofPKPrefix = "PROOF#"
)

// Heads scans the receipts table (strongly consistent, projecting only the
// key, hash and tenant) and returns the head of every case. Its cost grows
// with the table; it is meant for periodic checkpoints.
func (s *Receipts) Heads(ctx context.Context) ([]merkle.Head, error) {
	p := dynamodb.NewScanPaginator(s.db, &dynamodb.ScanInput{
		TableName:                aws.String(s.table),
		ProjectionExpression:     aws.String("#c, #s, #h, #t"),
		ExpressionAttributeNames: map[string]string{"#c": receipt.AttrCase, "#s": receipt.AttrSeq, "#h": receipt.AttrHash, "#t": receipt.AttrTenant},
		ConsistentRead:           aws.Bool(true),
	})
	byCase := map[string]merkle.Head{}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("scan chain heads: %w", err)
		}
		for _, it := range page.Items {
			h := merkle.Head{Tenant: attrS(it, receipt.AttrTenant), CaseID: attrS(it, receipt.AttrCase), Seq: itemSeq(it), Hash: attrS(it, receipt.AttrHash)}
			if h.CaseID == "" || h.Seq < 0 {
				return nil, fmt.Errorf("scan chain heads: item without a valid key")
			}
			if cur, ok := byCase[h.CaseID]; !ok || h.Seq > cur.Seq {
				byCase[h.CaseID] = h
			}
		}
	}
	out := make([]merkle.Head, 0, len(byCase))
	for _, h := range byCase {
		out = append(out, h)
	}
	return out, nil
}

func attrS(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: &types.AttributeValueMemberS{Value: pk}, AttrSK: &types.AttributeValueMemberS{Value: sk}}
}

// ErrCheckpointExists is returned when a checkpoint of the period exists.
var ErrCheckpointExists = errors.New("checkpoint for this period exists")

// PutCheckpoint stores a checkpoint (pk=CHECKPOINT, sk=period; never
// overwritten) and, for each case it covers, the case's inclusion proof
// (pk=PROOF#<caseId>, sk=period).
func (s *State) PutCheckpoint(ctx context.Context, cp *checkpoint.Checkpoint) error {
	sth, err := json.Marshal(cp.Head)
	if err != nil {
		return err
	}
	// Proofs first: a checkpoint item is only visible once all its proofs are.
	var reqs []types.WriteRequest
	for _, h := range cp.Heads {
		p, err := cp.Proof(h.CaseID)
		if err != nil {
			return err
		}
		pj, err := json.Marshal(p)
		if err != nil {
			return err
		}
		it := key(ProofPKPrefix+h.CaseID, cp.Head.Period)
		it["proof"] = &types.AttributeValueMemberS{Value: string(pj)}
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
	}
	if err := s.batchWrite(ctx, reqs); err != nil {
		return fmt.Errorf("store checkpoint proofs: %w", err)
	}
	item := key(CheckpointPK, cp.Head.Period)
	item["sth"] = &types.AttributeValueMemberS{Value: string(sth)}
	item["size"] = &types.AttributeValueMemberN{Value: strconv.FormatUint(cp.Head.Size, 10)}
	item["root"] = &types.AttributeValueMemberS{Value: cp.Head.Root}
	item["signerKey"] = &types.AttributeValueMemberS{Value: cp.SignerKey}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": AttrPK},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("checkpoint %s: %w", cp.Head.Period, ErrCheckpointExists)
	}
	if err != nil {
		return fmt.Errorf("store checkpoint %s: %w", cp.Head.Period, err)
	}
	return nil
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

// Checkpoint reads the tree head of a period.
func (s *State) Checkpoint(ctx context.Context, period string) (checkpoint.TreeHead, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: key(CheckpointPK, period), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return checkpoint.TreeHead{}, fmt.Errorf("read checkpoint %s: %w", period, err)
	}
	if out.Item == nil {
		return checkpoint.TreeHead{}, fmt.Errorf("checkpoint %s: %w", period, ErrNotFound)
	}
	return decodeHead(out.Item)
}

// LatestCheckpoint reads the most recent checkpoint's tree head.
func (s *State) LatestCheckpoint(ctx context.Context) (checkpoint.TreeHead, error) {
	items, err := s.last(ctx, CheckpointPK)
	if err != nil {
		return checkpoint.TreeHead{}, err
	}
	return decodeHead(items)
}

func (s *State) last(ctx context.Context, pk string) (map[string]types.AttributeValue, error) {
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: pk}},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(1),
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", pk, err)
	}
	if len(out.Items) == 0 {
		return nil, fmt.Errorf("%s: %w", pk, ErrNotFound)
	}
	return out.Items[0], nil
}

func decodeHead(item map[string]types.AttributeValue) (checkpoint.TreeHead, error) {
	var h checkpoint.TreeHead
	if err := json.Unmarshal([]byte(attrS(item, "sth")), &h); err != nil {
		return h, fmt.Errorf("decode checkpoint: %w", err)
	}
	return h, nil
}

// CaseProof returns the inclusion proof of a case's head in the latest
// checkpoint that covers the case, and that checkpoint's tree head.
func (s *State) CaseProof(ctx context.Context, caseID string) (checkpoint.Proof, checkpoint.TreeHead, error) {
	item, err := s.last(ctx, ProofPKPrefix+caseID)
	if err != nil {
		return checkpoint.Proof{}, checkpoint.TreeHead{}, fmt.Errorf("proof of %s: %w", caseID, err)
	}
	var p checkpoint.Proof
	if err := json.Unmarshal([]byte(attrS(item, "proof")), &p); err != nil {
		return p, checkpoint.TreeHead{}, fmt.Errorf("decode proof of %s: %w", caseID, err)
	}
	h, err := s.Checkpoint(ctx, attrS(item, AttrSK))
	return p, h, err
}
