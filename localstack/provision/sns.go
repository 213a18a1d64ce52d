package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
)

func init() {
	register("AWS::SNS::Topic", snsTopic{})
	register("AWS::SNS::TopicPolicy", snsTopicPolicy{})
}

// topicAttributes are the topic properties that are SNS attributes of the
// same name.
var topicAttributes = []string{"DisplayName", "KmsMasterKeyId", "SignatureVersion", "TracingConfig",
	"ContentBasedDeduplication", "FifoThroughputScope"}

type snsTopic struct{}

func (snsTopic) honours() []string {
	return append([]string{"TopicName", "FifoTopic", "Tags"}, topicAttributes...)
}

func (snsTopic) apply(ctx context.Context, e *env, id string, props map[string]any) (physical, Action, error) {
	want := map[string]string{}
	for _, k := range append([]string{"FifoTopic"}, topicAttributes...) {
		if v, ok := props[k]; ok {
			s, err := scalarString(v)
			if err != nil {
				return physical{}, "", fmt.Errorf("%s: %w", k, err)
			}
			want[k] = s
		}
	}
	fifo := want["FifoTopic"] == "true"
	name, _ := props["TopicName"].(string)
	if name == "" {
		if fifo {
			name = e.physicalName(id, 256-len(".fifo")) + ".fifo"
		} else {
			name = e.physicalName(id, 256)
		}
	}
	arn := fmt.Sprintf("arn:%s:sns:%s:%s:%s", e.partition, e.region, e.account, name)
	have, err := e.sns.GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: aws.String(arn)})
	var nf *snstypes.NotFoundException
	switch {
	case errors.As(err, &nf):
		in := &sns.CreateTopicInput{Name: aws.String(name), Attributes: want}
		for k, v := range tagMap(props) {
			in.Tags = append(in.Tags, snstypes.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		out, err := e.sns.CreateTopic(ctx, in)
		if err != nil {
			return physical{}, "", fmt.Errorf("create topic %s: %w", name, err)
		}
		arn = aws.ToString(out.TopicArn)
		return physical{ref: arn, attrs: map[string]any{"TopicArn": arn, "TopicName": name}}, Created, nil
	case err != nil:
		return physical{}, "", fmt.Errorf("find topic %s: %w", name, err)
	}
	action := Kept
	for k, v := range want {
		if k == "FifoTopic" || have.Attributes[k] == v {
			continue
		}
		if _, err := e.sns.SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{TopicArn: aws.String(arn), AttributeName: aws.String(k), AttributeValue: aws.String(v)}); err != nil {
			return physical{}, "", fmt.Errorf("update topic %s %s: %w", name, k, err)
		}
		action = Updated
	}
	return physical{ref: arn, attrs: map[string]any{"TopicArn": arn, "TopicName": name}}, action, nil
}

type snsTopicPolicy struct{}

func (snsTopicPolicy) honours() []string { return []string{"Topics", "PolicyDocument"} }

func (snsTopicPolicy) apply(ctx context.Context, e *env, id string, props map[string]any) (physical, Action, error) {
	var p struct {
		Topics         []string `json:"Topics"`
		PolicyDocument any      `json:"PolicyDocument"`
	}
	if err := decode(props, &p); err != nil {
		return physical{}, "", err
	}
	if len(p.Topics) == 0 || p.PolicyDocument == nil {
		return physical{}, "", errors.New("topic policy needs Topics and PolicyDocument")
	}
	doc, err := jsonString(p.PolicyDocument)
	if err != nil {
		return physical{}, "", fmt.Errorf("policy document: %w", err)
	}
	action := Kept
	for _, arn := range p.Topics {
		have, err := e.sns.GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: aws.String(arn)})
		if err != nil {
			return physical{}, "", fmt.Errorf("topic policy of %s: %w", arn, err)
		}
		if sameJSON(have.Attributes["Policy"], doc) {
			continue
		}
		if _, err := e.sns.SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{TopicArn: aws.String(arn), AttributeName: aws.String("Policy"), AttributeValue: aws.String(doc)}); err != nil {
			return physical{}, "", fmt.Errorf("set topic policy of %s: %w", arn, err)
		}
		action = bump(action)
	}
	return physical{ref: e.physicalName(id, 128), attrs: map[string]any{"Id": strings.Join(p.Topics, ",")}}, action, nil
}
