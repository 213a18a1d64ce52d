package costjob

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/knhk/knhk/shared/cost"
)

// EnvPolledQueues names the queues event source mappings poll (names,
// comma-separated) whose polling the job prices.
const EnvPolledQueues = "KNHK_COST_POLLED_QUEUES"

// SQS's CloudWatch metrics of a queue's consumers.
const (
	sqsNamespace           = "AWS/SQS"
	metricEmptyReceives    = "NumberOfEmptyReceives"
	metricMessagesReceived = "NumberOfMessagesReceived"
	metricMessagesDeleted  = "NumberOfMessagesDeleted"
)

// pollingPeriod is the statistics' period: an hour keeps a month within
// one request's 1,440 datapoints and is valid however old the month is
// (CloudWatch wants a multiple of 3,600 s beyond 63 days).
const pollingPeriod = 3600

// Polling reads what the event source mappings' pollers did on their
// queues in [from, to).
type Polling interface {
	Polling(ctx context.Context, from, to time.Time) ([]cost.Polling, error)
}

// MetricStatistics is the CloudWatch call CloudWatchPolling makes.
type MetricStatistics interface {
	GetMetricStatistics(ctx context.Context, in *cloudwatch.GetMetricStatisticsInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricStatisticsOutput, error)
}

// CloudWatchPolling reads the queues' AWS/SQS metrics (Sum): on AWS, SQS
// publishes them for every active queue; locally, the local Lambda service
// publishes them for the queues it polls.
type CloudWatchPolling struct {
	CW     MetricStatistics
	Queues []string
}

// Polling implements Polling: one GetMetricStatistics per queue and metric.
func (c CloudWatchPolling) Polling(ctx context.Context, from, to time.Time) ([]cost.Polling, error) {
	out := make([]cost.Polling, 0, len(c.Queues))
	for _, q := range c.Queues {
		p := cost.Polling{Queue: q}
		for _, m := range []struct {
			name string
			into *int64
		}{{metricEmptyReceives, &p.EmptyReceives}, {metricMessagesReceived, &p.MessagesReceived}, {metricMessagesDeleted, &p.MessagesDeleted}} {
			res, err := c.CW.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{
				Namespace: aws.String(sqsNamespace), MetricName: aws.String(m.name),
				Dimensions: []cwtypes.Dimension{{Name: aws.String("QueueName"), Value: aws.String(q)}},
				StartTime:  aws.Time(from), EndTime: aws.Time(to), Period: aws.Int32(pollingPeriod),
				Statistics: []cwtypes.Statistic{cwtypes.StatisticSum},
			})
			if err != nil {
				return nil, fmt.Errorf("polling of %s: %s: %w", q, m.name, err)
			}
			sum := 0.0
			for _, dp := range res.Datapoints {
				sum += aws.ToFloat64(dp.Sum)
			}
			*m.into = int64(math.Round(sum))
		}
		out = append(out, p)
	}
	return out, nil
}
