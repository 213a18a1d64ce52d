package canary

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/store"
)

// StoreChains reads the verifier's records of a case from the deployed
// tables: its watermark (state table), its receipts (receipts table) and its
// recorded findings (state table).
type StoreChains struct {
	Cases    *store.Cases
	Receipts *store.Receipts
	Found    *store.Findings
}

// Watermarks returns the cases' verified positions.
func (s StoreChains) Watermarks(ctx context.Context, ids []string) (map[string]receipt.Watermark, error) {
	return s.Cases.Watermarks(ctx, ids)
}

// Range reads receipts from..to of a case.
func (s StoreChains) Range(ctx context.Context, caseID string, from, to int64) ([]*receipt.Receipt, []receipt.Finding, error) {
	return s.Receipts.Range(ctx, caseID, from, to)
}

// Findings returns the case's recorded findings.
func (s StoreChains) Findings(ctx context.Context, caseID string) ([]receipt.Finding, error) {
	return s.Found.Case(ctx, caseID)
}

// ProbeDB is the part of the DynamoDB client the probe store uses.
type ProbeDB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// StateProbes keeps the waiting probes in one state-table item
// (pk CANARY, sk PROBES, attribute p: their JSON).
type StateProbes struct {
	DB    ProbeDB
	Table string
}

func (s StateProbes) key() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		store.AttrPK: &types.AttributeValueMemberS{Value: "CANARY"},
		store.AttrSK: &types.AttributeValueMemberS{Value: "PROBES"},
	}
}

// Probes reads the waiting probes (strongly consistent).
func (s StateProbes) Probes(ctx context.Context) ([]Probe, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: s.key(), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("read canary probes: %w", err)
	}
	v, ok := out.Item["p"].(*types.AttributeValueMemberS)
	if !ok {
		return nil, nil
	}
	var ps []Probe
	if err := json.Unmarshal([]byte(v.Value), &ps); err != nil {
		return nil, fmt.Errorf("decode canary probes: %w", err)
	}
	return ps, nil
}

// SetProbes replaces the waiting probes.
func (s StateProbes) SetProbes(ctx context.Context, ps []Probe) error {
	b, err := json.Marshal(ps)
	if err != nil {
		return err
	}
	item := s.key()
	item["p"] = &types.AttributeValueMemberS{Value: string(b)}
	if _, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: item}); err != nil {
		return fmt.Errorf("write canary probes: %w", err)
	}
	return nil
}
