package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/receipt"
)

// TableCreator is the part of the DynamoDB client CreateTables uses.
type TableCreator interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
}

// CreateTables creates the receipts table (caseId S, seq N, with a
// NEW_AND_OLD_IMAGES stream) and the state table (pk S, sk S, index gsi1), on demand,
// for local runs and tests; deployed stacks get them from the CDK template.
func CreateTables(ctx context.Context, db TableCreator, receiptsTable, stateTable string) error {
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(receiptsTable),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(receipt.AttrCase), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(receipt.AttrSeq), AttributeType: types.ScalarAttributeTypeN},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(receipt.AttrCase), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(receipt.AttrSeq), KeyType: types.KeyTypeRange},
		},
		BillingMode:         types.BillingModePayPerRequest,
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	if err != nil && !alreadyExists(err) {
		return fmt.Errorf("create receipts table: %w", err)
	}
	in := pkSKTable(stateTable)
	in.AttributeDefinitions = append(in.AttributeDefinitions,
		types.AttributeDefinition{AttributeName: aws.String(attrGSI1PK), AttributeType: types.ScalarAttributeTypeS},
		types.AttributeDefinition{AttributeName: aws.String(attrGSI1SK), AttributeType: types.ScalarAttributeTypeS})
	in.GlobalSecondaryIndexes = []types.GlobalSecondaryIndex{{
		IndexName: aws.String(FindingsIndex),
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrGSI1PK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrGSI1SK), KeyType: types.KeyTypeRange},
		},
		Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
	}}
	if _, err = db.CreateTable(ctx, in); err != nil && !alreadyExists(err) {
		return fmt.Errorf("create state table: %w", err)
	}
	return nil
}

// CreateCheckpointsTable creates the checkpoints table (pk S, sk S) for
// local runs and tests.
func CreateCheckpointsTable(ctx context.Context, db TableCreator, table string) error {
	if _, err := db.CreateTable(ctx, pkSKTable(table)); err != nil {
		return fmt.Errorf("create checkpoints table: %w", err)
	}
	return nil
}

func pkSKTable(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(AttrSK), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	}
}

// alreadyExists reports a table that exists: a CreateTable the SDK retried
// after the first attempt succeeded unseen, or a second local setup.
func alreadyExists(err error) bool {
	var inUse *types.ResourceInUseException
	return errors.As(err, &inUse)
}
