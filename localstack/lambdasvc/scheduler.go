package lambdasvc

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"
)

// ScheduledEvent builds the EventBridge "Scheduled Event" a rule delivers.
func ScheduledEvent(ruleARN, region, account string, at time.Time) events.CloudWatchEvent {
	return events.CloudWatchEvent{
		Version: "0", ID: uuid.NewString(), DetailType: "Scheduled Event", Source: "aws.events",
		AccountID: account, Time: at.UTC().Truncate(time.Second), Region: region,
		Resources: []string{ruleARN}, Detail: json.RawMessage(`{}`),
	}
}

// scheduler fires one rule's targets.
type scheduler struct {
	s           Schedule
	region      string
	account     string
	log         *slog.Logger
	speedup     float64
	fireAtStart bool
	pools       map[string]*pool
	inflight    sync.WaitGroup
}

func (sr *scheduler) run(ctx context.Context) {
	defer sr.inflight.Wait()
	timing, err := ParseSchedule(sr.s.Expression)
	if err != nil {
		sr.log.Error("schedule not started", "rule", sr.s.LogicalID, "err", err)
		return
	}
	// Schedule time runs speedup times faster than the wall clock from
	// the start.
	start := time.Now()
	virtual := func() time.Time {
		return start.Add(time.Duration(float64(time.Since(start)) * sr.speedup))
	}
	if sr.fireAtStart {
		sr.fire(ctx, start)
	}
	next := timing.Next(start)
	for !next.IsZero() {
		wait := time.Duration(float64(next.Sub(virtual())) / sr.speedup)
		sleep(ctx, wait)
		if ctx.Err() != nil {
			return
		}
		sr.fire(ctx, next)
		next = timing.Next(next)
	}
}

// fire invokes every target asynchronously, as EventBridge does.
func (sr *scheduler) fire(ctx context.Context, at time.Time) {
	for _, fn := range sr.s.Targets {
		var payload []byte
		if in, ok := sr.s.Inputs[fn]; ok {
			payload = []byte(in)
		} else {
			b, err := json.Marshal(ScheduledEvent(sr.s.RuleARN, sr.region, sr.account, at))
			if err != nil {
				sr.log.Error("encode scheduled event", "err", err)
				continue
			}
			payload = b
		}
		p := sr.pools[fn]
		if p == nil {
			continue
		}
		sr.inflight.Go(func() {
			res, err := p.invoke(context.WithoutCancel(ctx), payload)
			switch {
			case err != nil:
				sr.log.Warn("scheduled invoke", "rule", sr.s.RuleName, "function", fn, "err", err)
			case res.Failed():
				sr.log.Info("scheduled invocation failed", "rule", sr.s.RuleName, "function", fn, "reason", res.Reason)
			}
		})
	}
}
