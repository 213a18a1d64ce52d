package localaws

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"
)

// cloudWatchAPIVersion is the CloudWatch API version of the query protocol.
const cloudWatchAPIVersion = "2010-08-01"

// NewCloudWatch returns a CloudWatch client that speaks the awsQuery
// protocol. The SDK defaults to the newer CBOR protocol, which the embedded
// local endpoint does not understand; CloudWatch itself accepts both, so
// the client serves AWS and the local endpoint alike.
func NewCloudWatch(cfg aws.Config) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
		o.Protocol = awsquery.New(smithy.NewServiceSchema(nil, cloudWatchAPIVersion))
	})
}
