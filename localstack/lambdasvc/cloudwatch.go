package lambdasvc

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/knhk/knhk/shared/localaws"
)

// NewCloudWatch returns a CloudWatch client the local endpoint understands
// (see localaws.NewCloudWatch).
func NewCloudWatch(cfg aws.Config) *cloudwatch.Client { return localaws.NewCloudWatch(cfg) }
