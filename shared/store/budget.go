package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// BudgetAlerts records which budget thresholds were alerted in a period, in
// the state table (pk BUDGET#<tenant>#<period>, sk ALERT#<percent>): a
// conditional write per threshold, so each is sent once per period however
// many runs see it crossed.
type BudgetAlerts struct {
	db    leaseDB
	table string
}

// NewBudgetAlerts returns the budget alert records of the named state table.
func NewBudgetAlerts(db leaseDB, table string) *BudgetAlerts {
	return &BudgetAlerts{db: db, table: table}
}

func budgetKey(tenant, period string, percent int) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: s("BUDGET#" + tenant + "#" + period), AttrSK: s("ALERT#" + strconv.Itoa(percent))}
}

// Claim records tenant's threshold for period; first is false when a run
// recorded it before.
func (b *BudgetAlerts) Claim(ctx context.Context, tenant, period string, percent int) (first bool, err error) {
	_, err = b.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(b.table), Item: budgetKey(tenant, period, percent),
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("claim budget alert %s %s %d%%: %w", tenant, period, percent, err)
	}
	return true, nil
}

// Unclaim forgets a claim whose alert could not be sent, so the next run
// sends it.
func (b *BudgetAlerts) Unclaim(ctx context.Context, tenant, period string, percent int) error {
	if _, err := b.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(b.table), Key: budgetKey(tenant, period, percent)}); err != nil {
		return fmt.Errorf("unclaim budget alert %s %s %d%%: %w", tenant, period, percent, err)
	}
	return nil
}
