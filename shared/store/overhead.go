package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/cost"
)

// Overheads records the usage that belongs to no single case, per month, in
// the state table (pk USAGE#<YYYY-MM>, sk <class>#<function>#<arch>): each
// flush adds its counters to the item with one UpdateItem (ADD), so
// concurrent execution environments sum without a read.
type Overheads struct {
	db    overheadDB
	table string
}

// overheadDB is the part of the DynamoDB client Overheads use.
type overheadDB interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// NewOverheads returns the overhead usage records of the named state table.
func NewOverheads(db overheadDB, table string) *Overheads {
	return &Overheads{db: db, table: table}
}

func overheadPK(period string) string { return "USAGE#" + period }

// Add adds u to the period's record of function's overhead of class. A
// zero usage writes nothing.
func (o *Overheads) Add(ctx context.Context, period string, class cost.Overhead, function string, u cost.Usage) error {
	names := map[string]string{}
	values := map[string]types.AttributeValue{}
	var adds []string
	for _, c := range u.Counters() {
		if c.Value() == 0 {
			continue
		}
		i := strconv.Itoa(len(adds))
		names["#f"+i] = c.Name
		if c.Int != nil {
			values[":v"+i] = &types.AttributeValueMemberN{Value: strconv.FormatInt(*c.Int, 10)}
		} else {
			values[":v"+i] = &types.AttributeValueMemberN{Value: strconv.FormatFloat(*c.Float, 'f', -1, 64)}
		}
		adds = append(adds, "#f"+i+" :v"+i)
	}
	if len(adds) == 0 {
		return nil
	}
	arch := string(u.Arch)
	if arch == "" {
		arch = "none"
	}
	names["#a"] = "arch"
	values[":a"] = s(string(u.Arch))
	_, err := o.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(o.table),
		Key:                       key(overheadPK(period), string(class)+"#"+function+"#"+arch),
		UpdateExpression:          aws.String("SET #a = :a ADD " + strings.Join(adds, ", ")),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if err != nil {
		return fmt.Errorf("add %s overhead of %s for %s: %w", class, function, period, err)
	}
	return nil
}

// Overhead is one function's overhead usage of a class in a period.
type Overhead struct {
	Class    cost.Overhead
	Function string
	Usage    cost.Usage
}

// Period returns every overhead record of period (YYYY-MM), ordered by
// class, function and architecture.
func (o *Overheads) Period(ctx context.Context, period string) ([]Overhead, error) {
	var out []Overhead
	var start map[string]types.AttributeValue
	for {
		res, err := o.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(o.table),
			KeyConditionExpression:    aws.String("#pk = :pk"),
			ExpressionAttributeNames:  map[string]string{"#pk": AttrPK},
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s(overheadPK(period))},
			ExclusiveStartKey:         start,
			ConsistentRead:            aws.Bool(true),
		})
		if err != nil {
			return nil, fmt.Errorf("read overheads of %s: %w", period, err)
		}
		for _, item := range res.Items {
			u, err := overheadUsage(item)
			if err != nil {
				return nil, fmt.Errorf("decode overhead of %s: %w", period, err)
			}
			class, rest, _ := strings.Cut(attrS(item, AttrSK), "#")
			fn, _, _ := strings.Cut(rest, "#")
			out = append(out, Overhead{Class: cost.Overhead(class), Function: fn, Usage: u})
		}
		if len(res.LastEvaluatedKey) == 0 {
			return out, nil
		}
		start = res.LastEvaluatedKey
	}
}

// Split returns a period's overheads as the shared and idle usages the
// chargeback prices.
func Split(all []Overhead) (shared, idle []cost.Usage) {
	for _, o := range all {
		if o.Class == cost.Idle {
			idle = append(idle, o.Usage)
		} else {
			shared = append(shared, o.Usage)
		}
	}
	return shared, idle
}

// overheadUsage reads an overhead item's counters back into a Usage.
func overheadUsage(item map[string]types.AttributeValue) (cost.Usage, error) {
	u := cost.Usage{Arch: cost.Arch(attrS(item, "arch"))}
	for _, c := range u.Counters() {
		n, ok := item[c.Name].(*types.AttributeValueMemberN)
		if !ok {
			continue
		}
		var err error
		if c.Int != nil {
			*c.Int, err = strconv.ParseInt(n.Value, 10, 64)
		} else {
			*c.Float, err = strconv.ParseFloat(n.Value, 64)
		}
		if err != nil {
			return u, fmt.Errorf("counter %s: %w", c.Name, err)
		}
	}
	return u, nil
}

// Since is what after (a later Period reading) added to before.
func Since(before, after []Overhead) []Overhead {
	type k struct {
		class    cost.Overhead
		function string
		arch     cost.Arch
	}
	was := map[k]cost.Usage{}
	for _, o := range before {
		was[k{o.Class, o.Function, o.Usage.Arch}] = o.Usage
	}
	var out []Overhead
	for _, o := range after {
		o.Usage.Sub(was[k{o.Class, o.Function, o.Usage.Arch}])
		if o.Usage != (cost.Usage{Arch: o.Usage.Arch}) {
			out = append(out, o)
		}
	}
	return out
}
