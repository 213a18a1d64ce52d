package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/store"
)

// Attribute names of the tables' keys: the store adapters' own.
const (
	ReceiptsPartitionKey = receipt.AttrCase
	ReceiptsSortKey      = receipt.AttrSeq
	StatePartitionKey    = store.AttrPK
	StateSortKey         = store.AttrSK
	StateTTLAttribute    = store.StateTTLAttr
	ReceiptsTTLAttribute = receipt.AttrExpires
	StateIndexName       = store.FindingsIndex
	StateIndexPartition  = "gsi1pk"
	StateIndexSort       = "gsi1sk"
)

// Tables are the stack's DynamoDB tables.
type Tables struct {
	// Receipts holds every case's receipt chain, keyed by (caseId, seq).
	Receipts awsdynamodb.Table
	// State is the single table for descriptors, findings, watermarks and
	// other listings.
	State awsdynamodb.Table
	// Checkpoints holds the signed checkpoint log. Only the checkpointer's
	// role may write it (its resource policy denies every other principal).
	Checkpoints awsdynamodb.Table
}

// CheckpointsTableName is the checkpoints table's name: fixed, so that its
// resource policy can name the table without referring to itself.
func CheckpointsTableName(cfg stackconfig.Config) string { return cfg.NamePrefix + "-checkpoints" }

// NewTables creates the receipts, state and checkpoints tables, encrypted
// with key.
func NewTables(scope constructs.Construct, cfg stackconfig.Config, key awskms.IKey) Tables {
	pitr := &awsdynamodb.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: jsii.Bool(true)}
	receipts := awsdynamodb.NewTable(scope, jsii.String("ReceiptsTable"), &awsdynamodb.TableProps{
		PartitionKey:                     &awsdynamodb.Attribute{Name: jsii.String(ReceiptsPartitionKey), Type: awsdynamodb.AttributeType_STRING},
		SortKey:                          &awsdynamodb.Attribute{Name: jsii.String(ReceiptsSortKey), Type: awsdynamodb.AttributeType_NUMBER},
		BillingMode:                      awsdynamodb.BillingMode_PAY_PER_REQUEST,
		Stream:                           awsdynamodb.StreamViewType_NEW_AND_OLD_IMAGES,
		TimeToLiveAttribute:              jsii.String(ReceiptsTTLAttribute),
		PointInTimeRecoverySpecification: pitr,
		Encryption:                       awsdynamodb.TableEncryption_CUSTOMER_MANAGED,
		EncryptionKey:                    key,
		DeletionProtection:               jsii.Bool(!cfg.Destroyable()),
		RemovalPolicy:                    removalPolicy(cfg),
	})
	state := awsdynamodb.NewTable(scope, jsii.String("StateTable"), &awsdynamodb.TableProps{
		PartitionKey:                     &awsdynamodb.Attribute{Name: jsii.String(StatePartitionKey), Type: awsdynamodb.AttributeType_STRING},
		SortKey:                          &awsdynamodb.Attribute{Name: jsii.String(StateSortKey), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:                      awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: pitr,
		Encryption:                       awsdynamodb.TableEncryption_CUSTOMER_MANAGED,
		EncryptionKey:                    key,
		TimeToLiveAttribute:              jsii.String(StateTTLAttribute),
		DeletionProtection:               jsii.Bool(!cfg.Destroyable()),
		RemovalPolicy:                    removalPolicy(cfg),
	})
	state.AddGlobalSecondaryIndex(&awsdynamodb.GlobalSecondaryIndexProps{
		IndexName:      jsii.String(StateIndexName),
		PartitionKey:   &awsdynamodb.Attribute{Name: jsii.String(StateIndexPartition), Type: awsdynamodb.AttributeType_STRING},
		SortKey:        &awsdynamodb.Attribute{Name: jsii.String(StateIndexSort), Type: awsdynamodb.AttributeType_STRING},
		ProjectionType: awsdynamodb.ProjectionType_ALL,
	})
	checkpoints := awsdynamodb.NewTable(scope, jsii.String("CheckpointsTable"), &awsdynamodb.TableProps{
		TableName:                        jsii.String(CheckpointsTableName(cfg)),
		PartitionKey:                     &awsdynamodb.Attribute{Name: jsii.String(StatePartitionKey), Type: awsdynamodb.AttributeType_STRING},
		SortKey:                          &awsdynamodb.Attribute{Name: jsii.String(StateSortKey), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:                      awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: pitr,
		Encryption:                       awsdynamodb.TableEncryption_CUSTOMER_MANAGED,
		EncryptionKey:                    key,
		DeletionProtection:               jsii.Bool(!cfg.Destroyable()),
		RemovalPolicy:                    removalPolicy(cfg),
	})
	return Tables{Receipts: receipts, State: state, Checkpoints: checkpoints}
}
