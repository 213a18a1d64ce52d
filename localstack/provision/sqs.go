package provision

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func init() {
	register("AWS::SQS::Queue", sqsQueue{})
	register("AWS::SQS::QueuePolicy", sqsQueuePolicy{})
}

// queueAttributes are the queue properties that are SQS attributes of the
// same name.
var queueAttributes = []string{"VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize",
	"ReceiveMessageWaitTimeSeconds", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled",
	"RedrivePolicy", "RedriveAllowPolicy", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"}

type sqsQueue struct{}

func (sqsQueue) honours() []string {
	return append([]string{"QueueName", "FifoQueue", "Tags"}, queueAttributes...)
}

func (sqsQueue) apply(ctx context.Context, e *env, id string, props map[string]any) (physical, Action, error) {
	want, err := desiredQueueAttributes(props)
	if err != nil {
		return physical{}, "", err
	}
	fifo := want["FifoQueue"] == "true"
	name, _ := props["QueueName"].(string)
	if name == "" {
		if fifo {
			name = e.physicalName(id, 80-len(".fifo")) + ".fifo"
		} else {
			name = e.physicalName(id, 80)
		}
	}
	action := Kept
	var url string
	got, err := e.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	var missing *sqstypes.QueueDoesNotExist
	switch {
	case errors.As(err, &missing):
		in := &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: want}
		if tags := tagMap(props); len(tags) > 0 {
			in.Tags = tags
		}
		out, err := e.sqs.CreateQueue(ctx, in)
		if err != nil {
			return physical{}, "", fmt.Errorf("create queue %s: %w", name, err)
		}
		url, action = aws.ToString(out.QueueUrl), Created
	case err != nil:
		return physical{}, "", fmt.Errorf("find queue %s: %w", name, err)
	default:
		url = aws.ToString(got.QueueUrl)
		have, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
		if err != nil {
			return physical{}, "", fmt.Errorf("queue attributes %s: %w", name, err)
		}
		diff := map[string]string{}
		for k, v := range want {
			if k != "FifoQueue" && !sameJSON(have.Attributes[k], v) {
				diff[k] = v
			}
		}
		if len(diff) > 0 {
			if _, err := e.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: diff}); err != nil {
				return physical{}, "", fmt.Errorf("update queue %s: %w", name, err)
			}
			action = Updated
		}
	}
	attrs, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return physical{}, "", fmt.Errorf("queue arn %s: %w", name, err)
	}
	return physical{ref: url, attrs: map[string]any{"Arn": attrs.Attributes["QueueArn"], "QueueName": name, "QueueUrl": url}}, action, nil
}

// desiredQueueAttributes renders queue properties as SQS attribute strings.
func desiredQueueAttributes(props map[string]any) (map[string]string, error) {
	out := map[string]string{}
	for _, k := range append([]string{"FifoQueue"}, queueAttributes...) {
		v, ok := props[k]
		if !ok {
			continue
		}
		switch x := v.(type) {
		case map[string]any, []any:
			s, err := jsonString(x)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = s
		default:
			s, err := scalarString(x)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = s
		}
	}
	return out, nil
}

func tagMap(props map[string]any) map[string]string {
	var p struct {
		Tags []cfnTag `json:"Tags"`
	}
	if decode(props, &p) != nil || len(p.Tags) == 0 {
		return nil
	}
	out := make(map[string]string, len(p.Tags))
	for _, t := range p.Tags {
		out[t.Key] = t.Value
	}
	return out
}

type sqsQueuePolicy struct{}

func (sqsQueuePolicy) honours() []string { return []string{"Queues", "PolicyDocument"} }

func (sqsQueuePolicy) apply(ctx context.Context, e *env, id string, props map[string]any) (physical, Action, error) {
	var p struct {
		Queues         []string `json:"Queues"`
		PolicyDocument any      `json:"PolicyDocument"`
	}
	if err := decode(props, &p); err != nil {
		return physical{}, "", err
	}
	if len(p.Queues) == 0 || p.PolicyDocument == nil {
		return physical{}, "", errors.New("queue policy needs Queues and PolicyDocument")
	}
	doc, err := jsonString(p.PolicyDocument)
	if err != nil {
		return physical{}, "", fmt.Errorf("policy document: %w", err)
	}
	action := Kept
	for _, url := range p.Queues {
		have, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNamePolicy}})
		if err != nil {
			return physical{}, "", fmt.Errorf("queue policy of %s: %w", url, err)
		}
		if sameJSON(have.Attributes["Policy"], doc) {
			continue
		}
		if _, err := e.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: map[string]string{"Policy": doc}}); err != nil {
			return physical{}, "", fmt.Errorf("set queue policy of %s: %w", url, err)
		}
		if have.Attributes["Policy"] == "" {
			action = Created
		} else if action == Kept {
			action = Updated
		}
	}
	queues := append([]string(nil), p.Queues...)
	sort.Strings(queues)
	return physical{ref: e.physicalName(id, 128), attrs: map[string]any{"Id": strings.Join(queues, ",")}}, action, nil
}
