package meter

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/knhk/knhk/shared/cost"
)

// Install adds the metering middleware to every client made from cfg.
func Install(cfg *aws.Config) {
	cfg.APIOptions = append(cfg.APIOptions, AddMiddleware)
}

// AddMiddleware adds the metering middleware to one client's stack (as an
// APIOptions entry). It asks DynamoDB for the capacity each request consumed
// and charges each call, once however many times the SDK retried it, to the
// Meter of the call's context.
func AddMiddleware(st *middleware.Stack) error {
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("knhkMeter",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			askCapacity(in.Parameters)
			out, md, err := next.HandleInitialize(ctx, in)
			charge(ctx, Call(awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx), in.Parameters, out.Result))
			return out, md, err
		}), middleware.After)
}

// askCapacity sets ReturnConsumedCapacity TOTAL on DynamoDB requests that
// did not ask for it.
func askCapacity(params any) {
	var p *dbtypes.ReturnConsumedCapacity
	switch v := params.(type) {
	case *dynamodb.PutItemInput:
		p = &v.ReturnConsumedCapacity
	case *dynamodb.GetItemInput:
		p = &v.ReturnConsumedCapacity
	case *dynamodb.UpdateItemInput:
		p = &v.ReturnConsumedCapacity
	case *dynamodb.DeleteItemInput:
		p = &v.ReturnConsumedCapacity
	case *dynamodb.QueryInput:
		p = &v.ReturnConsumedCapacity
	case *dynamodb.ScanInput:
		p = &v.ReturnConsumedCapacity
	}
	if p != nil && *p == "" {
		*p = dbtypes.ReturnConsumedCapacityTotal
	}
}

// Call is the usage of one AWS API call of the named service and operation
// with its input and output (nil when it failed; a failed call still counts
// as a request).
func Call(service, op string, in, out any) cost.Usage {
	var u cost.Usage
	switch service {
	case "DynamoDB":
		u.DynamoRequests = 1
		w, r := dynamoUnits(in, out)
		u.WriteUnits, u.ReadUnits = w, r
	case "SQS":
		u.SQSRequests = sqsRequests(in)
	case "SNS":
		u.SNSPublishes = 1
		if p, ok := in.(*sns.PublishInput); ok {
			u.SNSPublishes = cost.SQSChunks(len(aws.ToString(p.Message)))
		}
	case "KMS":
		switch op {
		case "Sign", "Verify", "GetPublicKey":
			u.KMSAsymRequests = 1
		default:
			u.KMSRequests = 1
		}
	case "Secrets Manager":
		u.SecretsRequests = 1
	case "S3":
		if strings.HasPrefix(op, "Put") || strings.HasPrefix(op, "Copy") || strings.HasPrefix(op, "List") ||
			strings.HasPrefix(op, "Create") || strings.HasPrefix(op, "Complete") || strings.HasPrefix(op, "Upload") {
			u.S3Puts = 1
		} else {
			u.S3Gets = 1
		}
	}
	return u
}

// sqsRequests counts an SQS call as SQS bills it: each 64 KB of a send's
// payload (a batch's entries together) is one request.
func sqsRequests(in any) int64 {
	switch v := in.(type) {
	case *sqs.SendMessageInput:
		return cost.SQSChunks(len(aws.ToString(v.MessageBody)) + attrBytes(v.MessageAttributes))
	case *sqs.SendMessageBatchInput:
		n := 0
		for _, e := range v.Entries {
			n += len(aws.ToString(e.MessageBody)) + attrBytes(e.MessageAttributes)
		}
		return cost.SQSChunks(n)
	}
	return 1
}
