package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/sla"
)

// SLIRetention is how long service-level buckets are kept: the 30-day
// objective window plus the longest burn-rate window and a margin.
const SLIRetention = 40 * 24 * time.Hour

// SLIs are the service-level buckets in the state table, one item per
// workflow-minute per writer batch: pk SLI#<UTC day>, sk
// <minute>#<workflow>#<batch>, the outcome counts as numbers and the
// latency sketch as bytes. Sketches merge exactly but not in place, so each
// verifier batch writes its own items (a retried batch that folds the same
// cases writes the same keys again) and readers merge them; one Query per
// day reads every workflow's minutes.
type SLIs struct {
	*State
	now func() time.Time
}

// NewSLIs returns the service-level buckets of the named state table.
func NewSLIs(db DynamoDB, table string) *SLIs {
	return &SLIs{State: NewState(db, table), now: time.Now}
}

// StateTTLAttr is the state table's time-to-live attribute (epoch
// seconds): DynamoDB deletes an item some time after it passes.
const StateTTLAttr = "expiresAt"

const sliMinute = "2006-01-02T15:04Z"

func sliPK(t time.Time) string { return "SLI#" + t.UTC().Format(time.DateOnly) }

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// PutBuckets writes a batch's buckets (in requests of 25 items). batch
// names the writer's batch; it keeps two batches' items apart.
func (l *SLIs) PutBuckets(ctx context.Context, batch string, bs []*sla.Bucket) error {
	if batch == "" || strings.Contains(batch, "#") {
		return fmt.Errorf("write sli buckets: batch name %q: want a non-empty name without '#'", batch)
	}
	reqs := make([]types.WriteRequest, 0, len(bs))
	for _, b := range bs {
		if b.Workflow == "" || strings.Contains(b.Workflow, "#") {
			return fmt.Errorf("write sli buckets: workflow %q: want a non-empty name without '#'", b.Workflow)
		}
		m := b.Minute.UTC().Truncate(time.Minute)
		item := key(sliPK(m), m.Format(sliMinute)+"#"+b.Workflow+"#"+batch)
		item["workflow"] = s(b.Workflow)
		item["minute"] = num(m.Unix())
		item["cmp"] = num(b.Counts.Completed)
		item["wff"] = num(b.Counts.WorkflowFaulted)
		item["pff"] = num(b.Counts.PlatformFaulted)
		item["tmo"] = num(b.Counts.TimedOut)
		item["dlq"] = num(b.Counts.DeadLettered)
		if b.Latency != nil && !b.Latency.IsEmpty() {
			item["lat"] = &types.AttributeValueMemberB{Value: sla.EncodeSketch(b.Latency)}
		}
		item[StateTTLAttr] = num(m.Add(SLIRetention).Unix())
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	if err := l.batchWrite(ctx, reqs); err != nil {
		return fmt.Errorf("write %d sli buckets: %w", len(reqs), err)
	}
	return nil
}

// Buckets reads the buckets of the minutes in [from, to), merged per
// workflow and minute, in minute then workflow order. It costs one Query
// (and its pages) per UTC day of the span.
func (l *SLIs) Buckets(ctx context.Context, from, to time.Time) ([]*sla.Bucket, error) {
	from, to = from.UTC().Truncate(time.Minute), to.UTC().Truncate(time.Minute)
	merged := map[string]*sla.Bucket{}
	for day := from.Truncate(24 * time.Hour); day.Before(to); day = day.Add(24 * time.Hour) {
		p := dynamodb.NewQueryPaginator(l.db, &dynamodb.QueryInput{
			TableName:              aws.String(l.table),
			KeyConditionExpression: aws.String("pk = :p AND sk BETWEEN :a AND :b"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":p": s(sliPK(day)), ":a": s(from.Format(sliMinute)), ":b": s(to.Add(-time.Minute).Format(sliMinute) + "#\uffff"),
			},
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("read sli buckets of %s: %w", day.Format(time.DateOnly), err)
			}
			for _, it := range page.Items {
				b, err := decodeBucket(it)
				if err != nil {
					return nil, err
				}
				k := b.Minute.Format(sliMinute) + "#" + b.Workflow
				if cur, ok := merged[k]; ok {
					if err := cur.Merge(b); err != nil {
						return nil, fmt.Errorf("merge sli bucket %s: %w", attrS(it, AttrSK), err)
					}
					continue
				}
				merged[k] = b
			}
		}
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]*sla.Bucket, len(keys))
	for i, k := range keys {
		out[i] = merged[k]
	}
	return out, nil
}

func attrN(item map[string]types.AttributeValue, name string) (int64, error) {
	v, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, nil
	}
	return strconv.ParseInt(v.Value, 10, 64)
}

func decodeBucket(it map[string]types.AttributeValue) (*sla.Bucket, error) {
	sk := attrS(it, AttrSK)
	minute, err := attrN(it, "minute")
	if err != nil {
		return nil, fmt.Errorf("sli bucket %s: minute: %w", sk, err)
	}
	b := sla.NewBucket(attrS(it, "workflow"), time.Unix(minute, 0))
	for name, dst := range map[string]*int64{"cmp": &b.Counts.Completed, "wff": &b.Counts.WorkflowFaulted,
		"pff": &b.Counts.PlatformFaulted, "tmo": &b.Counts.TimedOut, "dlq": &b.Counts.DeadLettered} {
		if *dst, err = attrN(it, name); err != nil {
			return nil, fmt.Errorf("sli bucket %s: %s: %w", sk, name, err)
		}
	}
	if v, ok := it["lat"].(*types.AttributeValueMemberB); ok {
		if b.Latency, err = sla.DecodeSketch(v.Value); err != nil {
			return nil, fmt.Errorf("sli bucket %s: %w", sk, err)
		}
	}
	return b, nil
}

// slaReportsPK is the partition of the latest SLA reports, one item per
// workflow (sk the workflow name, or the platform's key).
const slaReportsPK = "SLA#REPORT"

// PutReports stores the latest reports, replacing the previous ones of the
// same workflows (in requests of 25).
func (l *SLIs) PutReports(ctx context.Context, rs []sla.Report) error {
	reqs := make([]types.WriteRequest, 0, len(rs))
	for _, r := range rs {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode sla report of %q: %w", r.Workflow, err)
		}
		item := key(slaReportsPK, r.Workflow)
		item["report"] = s(string(b))
		item["at"] = num(r.To.Unix())
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	if err := l.batchWrite(ctx, reqs); err != nil {
		return fmt.Errorf("write %d sla reports: %w", len(reqs), err)
	}
	return nil
}

// Reports reads the latest stored reports, in workflow order.
func (l *SLIs) Reports(ctx context.Context) ([]sla.Report, error) {
	p := dynamodb.NewQueryPaginator(l.db, &dynamodb.QueryInput{
		TableName:                 aws.String(l.table),
		KeyConditionExpression:    aws.String("pk = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": s(slaReportsPK)},
	})
	var out []sla.Report
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("read sla reports: %w", err)
		}
		for _, it := range page.Items {
			var r sla.Report
			if err := json.Unmarshal([]byte(attrS(it, "report")), &r); err != nil {
				return nil, fmt.Errorf("decode sla report %s: %w", attrS(it, AttrSK), err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}
