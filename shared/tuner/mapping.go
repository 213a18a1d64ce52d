package tuner

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/shared/learn"
)

// MappingSettings are the work queue mapping's tunable values now.
type MappingSettings struct {
	MaxConcurrency int64 // 0: none set
	BatchSize      int64
}

// LambdaAPI is the part of the Lambda client the mapping adapter uses.
type LambdaAPI interface {
	ListEventSourceMappings(ctx context.Context, in *lambda.ListEventSourceMappingsInput, optFns ...func(*lambda.Options)) (*lambda.ListEventSourceMappingsOutput, error)
	UpdateEventSourceMapping(ctx context.Context, in *lambda.UpdateEventSourceMappingInput, optFns ...func(*lambda.Options)) (*lambda.UpdateEventSourceMappingOutput, error)
}

// LambdaMapping reads and updates the executor's work queue mapping through
// the Lambda API.
type LambdaMapping struct {
	Client   LambdaAPI
	Function string // the executor function's name
	QueueARN string
	uuid     string
}

func settingsOf(m lambdatypes.EventSourceMappingConfiguration) MappingSettings {
	s := MappingSettings{BatchSize: int64(aws.ToInt32(m.BatchSize))}
	if m.ScalingConfig != nil {
		s.MaxConcurrency = int64(aws.ToInt32(m.ScalingConfig.MaximumConcurrency))
	}
	return s
}

// Settings finds the mapping (once) and reads its values.
func (l *LambdaMapping) Settings(ctx context.Context) (MappingSettings, error) {
	out, err := l.Client.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{
		FunctionName: aws.String(l.Function), EventSourceArn: aws.String(l.QueueARN)})
	if err != nil {
		return MappingSettings{}, fmt.Errorf("tuner: list mappings of %s: %w", l.Function, err)
	}
	if len(out.EventSourceMappings) != 1 {
		return MappingSettings{}, fmt.Errorf("tuner: %d mappings from %s to %s, want 1", len(out.EventSourceMappings), l.QueueARN, l.Function)
	}
	m := out.EventSourceMappings[0]
	l.uuid = aws.ToString(m.UUID)
	return settingsOf(m), nil
}

// Set changes the mapping's maximum concurrency or batch size.
func (l *LambdaMapping) Set(ctx context.Context, kind learn.SettingKind, v int64) error {
	if l.uuid == "" {
		if _, err := l.Settings(ctx); err != nil {
			return err
		}
	}
	in := &lambda.UpdateEventSourceMappingInput{UUID: aws.String(l.uuid)}
	switch kind {
	case learn.MaxConcurrency:
		in.ScalingConfig = &lambdatypes.ScalingConfig{MaximumConcurrency: aws.Int32(int32(v))}
	case learn.BatchSize:
		in.BatchSize = aws.Int32(int32(v))
	default:
		return fmt.Errorf("tuner: %s is not a mapping setting", kind)
	}
	if _, err := l.Client.UpdateEventSourceMapping(ctx, in); err != nil {
		return fmt.Errorf("tuner: update mapping %s %s=%d: %w", l.uuid, kind, v, err)
	}
	return nil
}

// QueueAPI is the part of the SQS client the depth probe uses.
type QueueAPI interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// SQSDepth reads the work queue's depth: messages waiting and in flight.
type SQSDepth struct {
	Client QueueAPI
	URL    string
}

// Depth implements Queue.
func (q SQSDepth) Depth(ctx context.Context) (waiting, inFlight int64, err error) {
	out, err := q.Client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.URL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return 0, 0, fmt.Errorf("tuner: work queue depth: %w", err)
	}
	waiting, _ = strconv.ParseInt(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)], 10, 64)
	inFlight, _ = strconv.ParseInt(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)], 10, 64)
	return waiting, inFlight, nil
}
