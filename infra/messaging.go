package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/limits"
)

// Messaging is the stack's queues and topic.
type Messaging struct {
	// Work carries start, continue, retry and timer messages to executors.
	Work awssqs.Queue
	// DeadLetter receives work messages that failed MaxReceiveCount times.
	DeadLetter awssqs.Queue
	// Alerts is the topic alarms publish to.
	Alerts awssns.Topic
}

// NewMessaging creates the work queue with its dead-letter queue and the
// alerts topic, all encrypted with key and reachable over TLS only.
func NewMessaging(scope constructs.Construct, cfg stackconfig.Config, key awskms.IKey) Messaging {
	dlq := awssqs.NewQueue(scope, jsii.String("DeadLetterQueue"), &awssqs.QueueProps{
		Encryption:          awssqs.QueueEncryption_KMS,
		EncryptionMasterKey: key,
		EnforceSSL:          jsii.Bool(true),
		RetentionPeriod:     awscdk.Duration_Days(jsii.Number(DeadLetterRetentionDays)),
		// The dead-letter queue holds what the work queue held.
		MaxMessageSizeBytes: jsii.Number(limits.MaxMessageBytes),
		RemovalPolicy:       removalPolicy(cfg),
	})
	work := awssqs.NewQueue(scope, jsii.String("WorkQueue"), &awssqs.QueueProps{
		Encryption:          awssqs.QueueEncryption_KMS,
		EncryptionMasterKey: key,
		EnforceSSL:          jsii.Bool(true),
		// The executor's limit (docs/messages.md): the queue refuses what
		// the executor would drop, so a sender learns it at SendMessage.
		MaxMessageSizeBytes: jsii.Number(limits.MaxMessageBytes),
		VisibilityTimeout:   awscdk.Duration_Seconds(jsii.Number(float64(cfg.VisibilityTimeoutSecs))),
		DeadLetterQueue: &awssqs.DeadLetterQueue{
			Queue:           dlq,
			MaxReceiveCount: jsii.Number(float64(cfg.MaxReceiveCount)),
		},
		RemovalPolicy: removalPolicy(cfg),
	})
	alerts := awssns.NewTopic(scope, jsii.String("AlertsTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("KNHK alerts"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	})
	alerts.ApplyRemovalPolicy(removalPolicy(cfg))
	return Messaging{Work: work, DeadLetter: dlq, Alerts: alerts}
}

// RestrictSenders lets only the executor's role, the stack's own senders
// (the canary) and the configured producer roles send to the work queue: a deny for every other principal, which no
// identity policy can override. Without producer roles the queue keeps
// SQS's default (principals of the account that IAM allows), so a fresh
// stack accepts its operators' messages; tenants are still only those the
// sender is granted (docs/security.md).
func RestrictSenders(work awssqs.Queue, cfg stackconfig.Config, executor awsiam.IRole, own ...awsiam.IRole) {
	if len(cfg.ProducerRoles) == 0 {
		return
	}
	allowed := []*string{executor.RoleArn()}
	for _, r := range own {
		allowed = append(allowed, r.RoleArn())
	}
	for _, r := range cfg.ProducerRoles {
		allowed = append(allowed, jsii.String(r))
	}
	work.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("OnlyExecutorAndProducersSend"),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    jsii.Strings("sqs:SendMessage"),
		Resources:  &[]*string{work.QueueArn()},
		Conditions: &map[string]any{"ArnNotEquals": map[string]any{"aws:PrincipalArn": allowed}},
	}))
}
