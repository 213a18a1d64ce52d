package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/xray"

	"github.com/knhk/knhk/localstack/otlpsink"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/telemetry"
)

// xrayTraceID turns the trace id of a W3C traceparent into X-Ray's form,
// 1-<8 hex>-<24 hex>: the id under which X-Ray keeps the spans the
// functions export by OTLP.
func xrayTraceID(traceparent string) (string, error) {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 || len(parts[1]) != 32 || strings.Trim(parts[1], "0123456789abcdef") != "" || strings.Trim(parts[1], "0") == "" {
		return "", fmt.Errorf("traceparent %q: want 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>", traceparent)
	}
	return "1-" + parts[1][:8] + "-" + parts[1][8:], nil
}

// xraySegment is the part of an X-Ray segment (or subsegment) document the
// waterfall shows.
type xraySegment struct {
	ID          string                    `json:"id"`
	Name        string                    `json:"name"`
	TraceID     string                    `json:"trace_id"`
	ParentID    string                    `json:"parent_id"`
	StartTime   float64                   `json:"start_time"`
	EndTime     float64                   `json:"end_time"`
	Error       bool                      `json:"error"`
	Fault       bool                      `json:"fault"`
	Cause       *struct{ Message string } `json:"cause"`
	Annotations map[string]any            `json:"annotations"`
	Metadata    map[string]map[string]any `json:"metadata"`
	HTTP        *struct {
		Request  struct{ Method, URL string } `json:"request"`
		Response struct {
			Status int `json:"status"`
		} `json:"response"`
	} `json:"http"`
	AWS         map[string]any `json:"aws"`
	Subsegments []xraySegment  `json:"subsegments"`
}

// xraySpans flattens X-Ray segment documents (and their subsegments, which
// become children of their segment) into spans of the W3C trace id.
func xraySpans(docs []string) ([]otlpsink.Span, error) {
	var out []otlpsink.Span
	var walk func(s xraySegment, traceID, parent string)
	walk = func(s xraySegment, traceID, parent string) {
		if s.ParentID != "" {
			parent = s.ParentID
		}
		sp := otlpsink.Span{TraceID: traceID, SpanID: s.ID, ParentSpanID: parent, Name: s.Name,
			Start: epoch(s.StartTime), End: epoch(s.EndTime), Attributes: map[string]any{}}
		for k, v := range s.Annotations {
			if k == telemetry.XRayCaseAnnotation {
				k = telemetry.SpanCaseID // the span attribute X-Ray indexed
			}
			sp.Attributes[k] = v
		}
		for _, ns := range s.Metadata {
			for k, v := range ns {
				sp.Attributes[k] = v
			}
		}
		if h := s.HTTP; h != nil {
			if h.Request.Method != "" {
				sp.Attributes["http.request.method"] = h.Request.Method
			}
			if h.Request.URL != "" {
				sp.Attributes["url.full"] = h.Request.URL
			}
			if h.Response.Status != 0 {
				sp.Attributes["http.response.status_code"] = h.Response.Status
			}
		}
		if op, ok := s.AWS["operation"]; ok {
			sp.Attributes["rpc.method"] = op
		}
		if s.Error || s.Fault {
			sp.Status = "ERROR"
			if s.Cause != nil {
				sp.Message = s.Cause.Message
			}
		}
		out = append(out, sp)
		for _, sub := range s.Subsegments {
			walk(sub, traceID, s.ID)
		}
	}
	for _, d := range docs {
		var s xraySegment
		if err := json.Unmarshal([]byte(d), &s); err != nil {
			return nil, fmt.Errorf("x-ray segment: %w", err)
		}
		walk(s, strings.ReplaceAll(strings.TrimPrefix(s.TraceID, "1-"), "-", ""), "")
	}
	return out, nil
}

func epoch(s float64) time.Time {
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// traceBatchGetter is the part of the X-Ray client the reader uses.
type traceBatchGetter interface {
	BatchGetTraces(ctx context.Context, in *xray.BatchGetTracesInput, optFns ...func(*xray.Options)) (*xray.BatchGetTracesOutput, error)
}

// xrayTrace reads one trace from X-Ray as spans, by start time.
func xrayTrace(ctx context.Context, c traceBatchGetter, id string) (otlpsink.Trace, error) {
	t := otlpsink.Trace{ID: id}
	p := xray.NewBatchGetTracesPaginator(c, &xray.BatchGetTracesInput{TraceIds: []string{id}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return t, fmt.Errorf("x-ray trace %s: %w", id, err)
		}
		for _, tr := range page.Traces {
			var docs []string
			for _, s := range tr.Segments {
				docs = append(docs, aws.ToString(s.Document))
			}
			spans, err := xraySpans(docs)
			if err != nil {
				return t, fmt.Errorf("x-ray trace %s: %w", id, err)
			}
			t.Spans = append(t.Spans, spans...)
		}
	}
	sort.SliceStable(t.Spans, func(i, j int) bool { return t.Spans[i].Start.Before(t.Spans[j].Start) })
	return t, nil
}

// xraySummaryWindow is the span of one GetTraceSummaries request: X-Ray
// answers time ranges of up to 6 hours.
const xraySummaryWindow = 6 * time.Hour

// xrayRetention is how far back X-Ray keeps traces.
const xrayRetention = 30 * 24 * time.Hour

// caseXRayTraces reads from X-Ray the trace a case started in (the
// traceparent its genesis receipt recorded), then every other trace that
// holds a span of the case (annotated with its id: a step resumed by a
// CloudEvent runs in the event's trace), between the genesis and a few
// minutes after the chain's last receipt.
func caseXRayTraces(ctx context.Context, caseID string, now time.Time) ([]otlpsink.Trace, error) {
	cfg, res, err := deployedStack(ctx, stack.OutReceiptsTable)
	if err != nil {
		return nil, err
	}
	rs, _, err := store.NewReceipts(dynamodb.NewFromConfig(cfg), res.ReceiptsTable).Chain(ctx, caseID)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 || rs[0].Genesis == nil {
		return nil, withExit(2, fmt.Errorf("trace: case %s has no genesis receipt", caseID))
	}
	if rs[0].Genesis.TraceParent == "" {
		return nil, withExit(1, fmt.Errorf("trace: case %s recorded no trace context when it started", caseID))
	}
	id, err := xrayTraceID(rs[0].Genesis.TraceParent)
	if err != nil {
		return nil, err
	}
	c := xray.NewFromConfig(cfg)
	t, err := xrayTrace(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if len(t.Spans) == 0 {
		return nil, withExit(1, fmt.Errorf("trace: X-Ray holds no segment of trace %s (case %s) yet", id, caseID))
	}
	from, to := rs[0].Started.Add(-time.Minute), rs[len(rs)-1].Started.Add(5*time.Minute)
	if oldest := now.Add(-xrayRetention); from.Before(oldest) {
		from = oldest
	}
	if to.After(now) {
		to = now
	}
	ids, err := xrayCaseTraceIDs(ctx, c, caseID, from, to)
	if err != nil {
		return nil, err
	}
	out := []otlpsink.Trace{t}
	for _, other := range ids {
		if other == id {
			continue
		}
		lt, err := xrayTrace(ctx, c, other)
		if err != nil {
			return nil, err
		}
		lt.Linked = true
		out = append(out, lt)
	}
	return out, nil
}

// xrayCaseTraceIDs lists, in the order X-Ray answers them, the ids of the
// traces in [from, to) that hold a segment annotated with the case's id.
func xrayCaseTraceIDs(ctx context.Context, c xray.GetTraceSummariesAPIClient, caseID string, from, to time.Time) ([]string, error) {
	filter := fmt.Sprintf("annotation.%s = %s", telemetry.XRayCaseAnnotation, strconv.Quote(caseID))
	var ids []string
	seen := map[string]bool{}
	for start := from; start.Before(to); start = start.Add(xraySummaryWindow) {
		end := start.Add(xraySummaryWindow)
		if end.After(to) {
			end = to
		}
		p := xray.NewGetTraceSummariesPaginator(c, &xray.GetTraceSummariesInput{StartTime: aws.Time(start), EndTime: aws.Time(end),
			FilterExpression: aws.String(filter)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("x-ray traces of case %s: %w", caseID, err)
			}
			for _, s := range page.TraceSummaries {
				if id := aws.ToString(s.Id); id != "" && !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
	}
	return ids, nil
}
