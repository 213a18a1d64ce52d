package lambdasvc

import (
	"context"
	"path"
	"slices"
	"sync"
	"time"
)

// SQS metrics the local service publishes for the queues its mappings poll,
// as SQS publishes them to CloudWatch on AWS (namespace AWS/SQS, dimension
// QueueName, one Sum per minute).
const (
	SQSNamespace            = "AWS/SQS"
	MetricEmptyReceives     = "NumberOfEmptyReceives"
	MetricMessagesReceived  = "NumberOfMessagesReceived"
	MetricMessagesDeleted   = "NumberOfMessagesDeleted"
	sqsQueueNameDimension   = "QueueName"
	sqsMetricsMinute        = time.Minute
	sqsMetricsStorageRes    = 60
	sqsMetricsDefaultPeriod = 5 * time.Second
)

// pollCounts is one minute's counts of a queue.
type pollCounts struct{ empty, received, deleted float64 }

// queueMetrics counts a mapping's receives and deletes per minute and
// hands each finished minute to emit as three AWS/SQS metrics: every
// minute the mapping polled has all three, zeros included, as on AWS for
// an active queue. Only what the mapping itself did is counted (on AWS
// the metrics count every consumer of the queue).
type queueMetrics struct {
	queue string
	emit  func(...Metric)
	now   func() time.Time
	mu    sync.Mutex
	mins  map[time.Time]*pollCounts
}

func newQueueMetrics(queueURL string, emit func(...Metric)) *queueMetrics {
	return &queueMetrics{queue: path.Base(queueURL), emit: emit, now: time.Now, mins: map[time.Time]*pollCounts{}}
}

func (q *queueMetrics) counts() *pollCounts {
	m := q.now().UTC().Truncate(sqsMetricsMinute)
	c := q.mins[m]
	if c == nil {
		c = &pollCounts{}
		q.mins[m] = c
	}
	return c
}

// received records one ReceiveMessage that returned n messages.
func (q *queueMetrics) received(n int) {
	if q == nil {
		return
	}
	q.mu.Lock()
	c := q.counts()
	if n == 0 {
		c.empty++
	} else {
		c.received += float64(n)
	}
	q.mu.Unlock()
}

// deleted records n messages deleted.
func (q *queueMetrics) deleted(n int) {
	if q == nil || n <= 0 {
		return
	}
	q.mu.Lock()
	q.counts().deleted += float64(n)
	q.mu.Unlock()
}

// flush emits the finished minutes, or with all every minute counted.
func (q *queueMetrics) flush(all bool) {
	current := q.now().UTC().Truncate(sqsMetricsMinute)
	q.mu.Lock()
	var ms []Metric
	keys := make([]time.Time, 0, len(q.mins))
	for m := range q.mins {
		if all || m.Before(current) {
			keys = append(keys, m)
		}
	}
	slices.SortFunc(keys, func(a, b time.Time) int { return a.Compare(b) })
	for _, m := range keys {
		c := q.mins[m]
		delete(q.mins, m)
		for _, v := range []struct {
			name  string
			value float64
		}{{MetricEmptyReceives, c.empty}, {MetricMessagesReceived, c.received}, {MetricMessagesDeleted, c.deleted}} {
			ms = append(ms, Metric{Namespace: SQSNamespace, Name: v.name, Unit: "Count", Timestamp: m,
				Dimensions: map[string]string{sqsQueueNameDimension: q.queue}, Values: []float64{v.value},
				StorageResolution: sqsMetricsStorageRes})
		}
	}
	q.mu.Unlock()
	if len(ms) > 0 {
		q.emit(ms...)
	}
}

// run emits finished minutes every interval until ctx ends (the caller
// flushes the rest once the mapping stopped).
func (q *queueMetrics) run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = sqsMetricsDefaultPeriod
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			q.flush(false)
		}
	}
}
