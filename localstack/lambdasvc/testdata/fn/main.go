// Command fn is the test function the local Lambda service runs under the
// emulator. Each SQS message body or stream record chooses the behaviour:
//
//	ok            succeed
//	fail          report the message as a batch item failure
//	error         fail the whole invocation (function error)
//	invalid       answer with a malformed batch response
//	sleep:<ms>    sleep, then succeed
//	hang          sleep far beyond any test timeout
//	hang-once     hang on the first receive only
//	emf           print an embedded metric format line
//	fail-once     fail the whole invocation on the first receive only
//
// Every invocation is appended as one JSON line to $OBSERVE_FILE.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

type observation struct {
	PID      int               `json:"pid"`
	Function string            `json:"function"`
	Start    int64             `json:"start"`
	End      int64             `json:"end"`
	Event    json.RawMessage   `json:"event"`
	Env      map[string]string `json:"env,omitempty"`
}

func observe(o observation) {
	path := os.Getenv("OBSERVE_FILE")
	if path == "" {
		return
	}
	b, _ := json.Marshal(o)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.Write(append(b, '\n'))
}

type probe struct {
	Records []struct {
		EventSource string `json:"eventSource"`
	} `json:"Records"`
	Source string `json:"source"`
}

func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	o := observation{PID: os.Getpid(), Function: os.Getenv("AWS_LAMBDA_FUNCTION_NAME"), Start: time.Now().UnixNano(), Event: raw}
	for _, k := range []string{"TABLE_NAME", "QUEUE_URL", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_TIMEOUT", "AWS_ACCESS_KEY_ID"} {
		if v := os.Getenv(k); v != "" {
			if o.Env == nil {
				o.Env = map[string]string{}
			}
			o.Env[k] = v
		}
	}
	defer func() { o.End = time.Now().UnixNano(); observe(o) }()
	fmt.Println("invocation", string(raw))
	var p probe
	_ = json.Unmarshal(raw, &p)
	switch {
	case len(p.Records) > 0 && p.Records[0].EventSource == "aws:sqs":
		var ev events.SQSEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, err
		}
		var cmds []string
		for _, r := range ev.Records {
			cmds = append(cmds, r.Body)
		}
		return run(cmds, func(i int) string { return ev.Records[i].MessageId },
			func(i int) int { n, _ := strconv.Atoi(ev.Records[i].Attributes["ApproximateReceiveCount"]); return n })
	case len(p.Records) > 0 && p.Records[0].EventSource == "aws:dynamodb":
		var ev events.DynamoDBEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, err
		}
		var cmds []string
		for _, r := range ev.Records {
			cmd := "ok"
			img := r.Change.NewImage
			if img == nil {
				img = r.Change.OldImage
			}
			if v, ok := img["cmd"]; ok && v.DataType() == events.DataTypeString {
				cmd = v.String()
			}
			cmds = append(cmds, cmd)
		}
		return run(cmds, func(i int) string { return ev.Records[i].Change.SequenceNumber }, func(int) int { return 1 })
	default:
		return map[string]string{"ok": "true"}, nil
	}
}

func run(cmds []string, id func(int) string, receives func(int) int) (any, error) {
	var failures []events.SQSBatchItemFailure
	for i, c := range cmds {
		switch {
		case c == "fail":
			failures = append(failures, events.SQSBatchItemFailure{ItemIdentifier: id(i)})
		case c == "error":
			return nil, errors.New("requested failure")
		case c == "fail-once" && receives(i) <= 1:
			return nil, errors.New("first receive fails")
		case c == "invalid":
			return "not a batch response", nil
		case c == "hang":
			time.Sleep(10 * time.Minute)
		case c == "hang-once" && receives(i) <= 1:
			time.Sleep(10 * time.Minute)
		case strings.HasPrefix(c, "sleep:"):
			ms, _ := strconv.Atoi(strings.TrimPrefix(c, "sleep:"))
			time.Sleep(time.Duration(ms) * time.Millisecond)
		case c == "emf":
			fmt.Printf(`{"_aws":{"Timestamp":%d,"CloudWatchMetrics":[{"Namespace":"KnhkTest","Dimensions":[["Service"]],"Metrics":[{"Name":"Handled","Unit":"Count"},{"Name":"Latency","Unit":"Milliseconds"}]}]},"Service":"fn","Handled":1,"Latency":[12.5,7]}`+"\n", time.Now().UnixMilli())
		}
	}
	return events.SQSEventResponse{BatchItemFailures: failures}, nil
}

func main() { lambda.Start(handle) }
