// Package alert publishes operator alerts to the stack's SNS topic.
package alert

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/sns"
)

// maxSubject is SNS's limit on an email subject.
const maxSubject = 100

// Publisher is the part of the SNS client alerts use.
type Publisher interface {
	Publish(ctx context.Context, in *sns.PublishInput, opts ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// SNS sends alerts to one topic.
type SNS struct {
	client Publisher
	topic  string
}

// NewSNS returns an alerter on topic; an empty topic disables alerts.
func NewSNS(client Publisher, topic string) *SNS { return &SNS{client: client, topic: topic} }

// Alert publishes one alert. Subjects longer than SNS allows are shortened.
func (a *SNS) Alert(ctx context.Context, subject, body string) error {
	if a == nil || a.topic == "" {
		return nil
	}
	_, err := a.client.Publish(ctx, &sns.PublishInput{TopicArn: &a.topic, Subject: strPtr(shorten(subject, maxSubject)), Message: &body})
	if err != nil {
		return fmt.Errorf("publish alert: %w", err)
	}
	return nil
}

func strPtr(s string) *string { return &s }

// shorten cuts s to at most n bytes on a rune boundary, marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
