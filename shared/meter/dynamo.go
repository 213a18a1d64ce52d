package meter

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// dynamoUnits is the write and read units a DynamoDB call consumed: what
// DynamoDB reported (ReturnConsumedCapacity TOTAL), or where it reported
// nothing, the units computed from the item sizes as DynamoDB bills them
// (a write unit per started 1 KB written, a read unit per started 4 KB read,
// half for an eventually consistent read; one unit for an update or delete,
// whose stored size the caller does not see).
func dynamoUnits(in, out any) (write, read float64) {
	switch v := out.(type) {
	case *dynamodb.PutItemOutput:
		if c, ok := reported(v.ConsumedCapacity); ok {
			return c, 0
		}
		if p, ok := in.(*dynamodb.PutItemInput); ok {
			return float64(blocks(ItemSize(p.Item), 1<<10)), 0
		}
	case *dynamodb.UpdateItemOutput:
		if c, ok := reported(v.ConsumedCapacity); ok {
			return c, 0
		}
		return 1, 0
	case *dynamodb.DeleteItemOutput:
		if c, ok := reported(v.ConsumedCapacity); ok {
			return c, 0
		}
		return 1, 0
	case *dynamodb.GetItemOutput:
		if c, ok := reported(v.ConsumedCapacity); ok {
			return 0, c
		}
		p, _ := in.(*dynamodb.GetItemInput)
		return 0, readUnits(ItemSize(v.Item), p != nil && aws.ToBool(p.ConsistentRead))
	case *dynamodb.QueryOutput:
		if c, ok := reported(v.ConsumedCapacity); ok {
			return 0, c
		}
		p, _ := in.(*dynamodb.QueryInput)
		return 0, readUnits(itemsSize(v.Items), p != nil && aws.ToBool(p.ConsistentRead))
	case *dynamodb.ScanOutput:
		if c, ok := reported(v.ConsumedCapacity); ok {
			return 0, c
		}
		p, _ := in.(*dynamodb.ScanInput)
		return 0, readUnits(itemsSize(v.Items), p != nil && aws.ToBool(p.ConsistentRead))
	case nil:
		// a failed call: a failed conditional write consumes a write unit
		switch in.(type) {
		case *dynamodb.PutItemInput, *dynamodb.UpdateItemInput, *dynamodb.DeleteItemInput:
			return 1, 0
		}
	}
	return 0, 0
}

func reported(c *dbtypes.ConsumedCapacity) (float64, bool) {
	if c == nil || c.CapacityUnits == nil {
		return 0, false
	}
	return *c.CapacityUnits, true
}

func readUnits(size int, consistent bool) float64 {
	u := float64(blocks(size, 4<<10))
	if !consistent {
		u /= 2
	}
	return u
}

// blocks is how many started blocks of n bytes size takes, at least one.
func blocks(size, n int) int64 {
	return int64(max((size+n-1)/n, 1))
}

func itemsSize(items []map[string]dbtypes.AttributeValue) int {
	n := 0
	for _, it := range items {
		n += ItemSize(it)
	}
	return n
}

// ItemSize is an item's size as DynamoDB counts it: attribute names plus
// values (strings and binaries by length, numbers by about one byte per two
// digits plus one, containers 3 bytes plus one per element).
func ItemSize(item map[string]dbtypes.AttributeValue) int {
	n := 0
	for k, v := range item {
		n += len(k) + valueSize(v)
	}
	return n
}

func valueSize(v dbtypes.AttributeValue) int {
	switch x := v.(type) {
	case *dbtypes.AttributeValueMemberS:
		return len(x.Value)
	case *dbtypes.AttributeValueMemberN:
		return len(x.Value)/2 + 1
	case *dbtypes.AttributeValueMemberB:
		return len(x.Value)
	case *dbtypes.AttributeValueMemberSS:
		n := 0
		for _, s := range x.Value {
			n += len(s)
		}
		return n
	case *dbtypes.AttributeValueMemberNS:
		n := 0
		for _, s := range x.Value {
			n += len(s)/2 + 1
		}
		return n
	case *dbtypes.AttributeValueMemberBS:
		n := 0
		for _, b := range x.Value {
			n += len(b)
		}
		return n
	case *dbtypes.AttributeValueMemberM:
		return 3 + len(x.Value) + ItemSize(x.Value)
	case *dbtypes.AttributeValueMemberL:
		n := 3 + len(x.Value)
		for _, e := range x.Value {
			n += valueSize(e)
		}
		return n
	}
	return 1 // BOOL, NULL
}

// attrBytes is the size SQS counts for message attributes: names, types and
// values.
func attrBytes(attrs map[string]sqstypes.MessageAttributeValue) int {
	n := 0
	for k, a := range attrs {
		n += len(k) + len(aws.ToString(a.DataType)) + len(aws.ToString(a.StringValue)) + len(a.BinaryValue)
	}
	return n
}
