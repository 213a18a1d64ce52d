package batch

import (
	"context"
	"encoding/base64"

	"github.com/aws/aws-lambda-go/events"
)

// DynamoDBOptions configure ProcessDynamoDB.
type DynamoDBOptions struct {
	Options
	// Key returns the group of a record, usually its partition key; records
	// of one group are handled in batch (shard) order. A nil Key puts the
	// whole batch in one group (strict order); an empty key makes the record
	// a group of its own.
	Key func(events.DynamoDBEventRecord) string
}

// ProcessDynamoDB handles the records of a DynamoDB Streams batch and returns
// the partial batch response for Lambda (ReportBatchItemFailures). Records are
// in shard order, and Lambda resumes from the reported record, so the response
// holds at most one item: the sequence number of the first record (in batch
// order) that failed, panicked or was not started for lack of time. Once a
// record has failed, no later record of the batch is started. Records whose
// handler returned a Permanent error are dropped and processing continues.
func ProcessDynamoDB(ctx context.Context, ev events.DynamoDBEvent, opts DynamoDBOptions, handle func(context.Context, events.DynamoDBEventRecord) error) events.DynamoDBEventResponse {
	recs := ev.Records
	key := func(i int) (string, bool) {
		if opts.Key == nil {
			return "", true
		}
		k := safeKey(opts.Key, recs[i])
		return k, k != ""
	}
	out := run(ctx, opts.Options, job{
		n:             len(recs),
		key:           key,
		id:            func(i int) string { return recs[i].Change.SequenceNumber },
		handle:        func(ctx context.Context, i int) error { return handle(ctx, recs[i]) },
		stopOnFailure: true,
	})
	resp := events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{}}
	for i, o := range out {
		if o == failed || o == deferred {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: recs[i].Change.SequenceNumber})
			break
		}
	}
	return resp
}

// ByKeyAttribute groups stream records by one attribute of the item's key,
// e.g. the partition key "pk". The group key is the value prefixed with its
// type (S:, N:, or B: with base64), so that equal text of different types
// does not collide; a missing or non-key-typed attribute yields no key.
func ByKeyAttribute(name string) func(events.DynamoDBEventRecord) string {
	return func(r events.DynamoDBEventRecord) string {
		v, ok := r.Change.Keys[name]
		if !ok {
			return ""
		}
		switch v.DataType() {
		case events.DataTypeString:
			return "S:" + v.String()
		case events.DataTypeNumber:
			return "N:" + v.Number()
		case events.DataTypeBinary:
			return "B:" + base64.StdEncoding.EncodeToString(v.Binary())
		default:
			return ""
		}
	}
}
