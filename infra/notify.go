package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awschatbot"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
	"github.com/knhk/knhk/shared/sla"
	"github.com/knhk/knhk/shared/telemetry"
)

// Alarm ids of the health alarms; each has docs/runbooks/<id>.md.
const (
	AlarmCanaryFailure = "canary-failure"
	AlarmUnhealthy     = "unhealthy"
)

// HealthAlarmIDs lists the health alarms' ids.
func HealthAlarmIDs() []string { return []string{AlarmCanaryFailure, AlarmUnhealthy} }

// Output ids of the severity topics.
const (
	OutPageTopicArn   = "PageTopicArn"
	OutTicketTopicArn = "TicketTopicArn"
)

// Notifications are the topics alarms notify by severity: page (wakes
// someone) and ticket (work for office hours), and their subscriptions.
type Notifications struct {
	Page, Ticket awssns.Topic
	Slack        awschatbot.SlackChannelConfiguration // nil without Slack context
}

// Topic returns the topic of a severity.
func (n Notifications) Topic(s sla.Severity) awssns.Topic {
	if s == sla.Page {
		return n.Page
	}
	return n.Ticket
}

// newNotifications creates the page and ticket topics (encrypted with key,
// TLS only, CloudWatch may publish) and subscribes what the context names:
// an e-mail address to both, PagerDuty's Events v2 endpoint to page, a Slack
// channel through AWS Chatbot to both.
func newNotifications(scope constructs.Construct, cfg stackconfig.Config, key awskms.IKey) Notifications {
	topic := func(id, name string) awssns.Topic {
		t := awssns.NewTopic(scope, jsii.String(id), &awssns.TopicProps{
			DisplayName: jsii.String(name),
			MasterKey:   key,
			EnforceSSL:  jsii.Bool(true),
		})
		t.ApplyRemovalPolicy(removalPolicy(cfg))
		allowCloudWatchPublish(t)
		return t
	}
	n := Notifications{Page: topic("PageTopic", "KNHK page"), Ticket: topic("TicketTopic", "KNHK ticket")}
	if cfg.AlarmEmail != "" {
		for _, t := range []awssns.Topic{n.Page, n.Ticket} {
			t.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
		}
	}
	if cfg.PagerDutyURL != "" {
		// PagerDuty reads CloudWatch's alarm notification as SNS delivers
		// it (not raw) and keys the incident by the alarm name.
		n.Page.AddSubscription(awssnssubscriptions.NewUrlSubscription(jsii.String(cfg.PagerDutyURL), &awssnssubscriptions.UrlSubscriptionProps{
			Protocol: awssns.SubscriptionProtocol_HTTPS,
		}))
	}
	if cfg.SlackChannelID != "" {
		n.Slack = awschatbot.NewSlackChannelConfiguration(scope, jsii.String("SlackChannel"), &awschatbot.SlackChannelConfigurationProps{
			SlackChannelConfigurationName: jsii.String(cfg.NamePrefix + "-alarms"),
			SlackWorkspaceId:              jsii.String(cfg.SlackWorkspaceID),
			SlackChannelId:                jsii.String(cfg.SlackChannelID),
			NotificationTopics:            &[]awssns.ITopic{n.Page, n.Ticket},
			// Notifications only: the channel's role may read nothing.
			GuardrailPolicies: &[]awsiam.IManagedPolicy{awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String("AWSDenyAll"))},
			LoggingLevel:      awschatbot.LoggingLevel_ERROR,
		})
	}
	return n
}

// allowCloudWatchPublish lets CloudWatch alarms of this account publish to t.
func allowCloudWatchPublish(t awssns.Topic) {
	t.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowCloudWatchAlarmsToPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{t.TopicArn()},
		Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID()}},
	}))
}

// HealthAlarms are the canary's alarm and the composite of every page alarm.
type HealthAlarms struct {
	Canary    awscloudwatch.Alarm
	Unhealthy awscloudwatch.CompositeAlarm
}

// newHealthAlarms creates the canary failure alarm (page) and "KNHK
// unhealthy", in ALARM while any page alarm is.
func newHealthAlarms(scope constructs.Construct, cfg stackconfig.Config, n Notifications, slaAlarms SLAAlarms) HealthAlarms {
	page := awscloudwatchactions.NewSnsAction(n.Page)
	var h HealthAlarms
	h.Canary = awscloudwatch.NewAlarm(scope, jsii.String("CanaryFailureAlarm"), &awscloudwatch.AlarmProps{
		AlarmName: jsii.String(cfg.NamePrefix + "-" + AlarmCanaryFailure),
		AlarmDescription: jsii.String("PAGE: for 3 minutes no canary case completed with a verified chain within " +
			cfg.CanaryFreshness.String() + " of its submission (or the canary reported nothing)." + runbookLink(cfg, AlarmCanaryFailure)),
		Metric: awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(telemetry.Namespace), MetricName: jsii.String(telemetry.CanarySuccess), Statistic: jsii.String("Minimum"),
			DimensionsMap: &map[string]*string{telemetry.DimFunction: jsii.String(CanaryName)},
			Period:        awscdk.Duration_Minutes(jsii.Number(1)),
		}),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(3),
		DatapointsToAlarm:  jsii.Number(3),
		// A canary that reports nothing is no evidence of health.
		TreatMissingData: awscloudwatch.TreatMissingData_BREACHING,
	})
	h.Canary.AddAlarmAction(page)
	h.Canary.AddOkAction(page)
	rules := []awscloudwatch.IAlarmRule{awscloudwatch.AlarmRule_FromAlarm(h.Canary, awscloudwatch.AlarmState_ALARM)}
	for _, r := range sla.WorkbookRules() {
		if r.Severity == sla.Page {
			rules = append(rules, awscloudwatch.AlarmRule_FromAlarm(slaAlarms.Composites[SLABurnAlarmID(r)], awscloudwatch.AlarmState_ALARM))
		}
	}
	h.Unhealthy = awscloudwatch.NewCompositeAlarm(scope, jsii.String("UnhealthyAlarm"), &awscloudwatch.CompositeAlarmProps{
		CompositeAlarmName: jsii.String(cfg.NamePrefix + "-" + AlarmUnhealthy),
		AlarmDescription:   jsii.String("KNHK unhealthy: a page alarm (canary failure or a page burn-rate rule) is in ALARM." + runbookLink(cfg, AlarmUnhealthy)),
		AlarmRule:          awscloudwatch.AlarmRule_AnyOf(rules...),
		// Its inputs page on their own; the composite is the one state to
		// watch (dashboards, status pages, deploy gates).
		ActionsEnabled: jsii.Bool(false),
	})
	return h
}
