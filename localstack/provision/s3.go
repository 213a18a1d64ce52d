package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func init() {
	register("AWS::S3::Bucket", s3Bucket{})
	// The endpoint evaluates a bucket policy's statements without their
	// conditions: the stack's TLS-only deny (aws:SecureTransport false)
	// would refuse every request. The CDK assertions pin the policies.
	register("AWS::S3::BucketPolicy", skip{"the local endpoint evaluates bucket policies without their conditions, so the TLS-only deny would refuse every request; the policy is pinned by the CDK assertions instead"})
}

// s3Bucket creates a bucket (with Object Lock when the template enables it,
// which only a new bucket can be given) and applies its Object Lock default
// retention, encryption, versioning, lifecycle, public access block,
// ownership controls and tags. The endpoint records them and refuses the
// deletion of a locked object version before its retention ends, but
// neither expires objects nor checks the KMS key; server
// access logging (LoggingConfiguration) is not applied, since the endpoint
// has no log delivery.
type s3Bucket struct{}

func (s3Bucket) honours() []string {
	return []string{"BucketName", "BucketEncryption", "VersioningConfiguration", "LifecycleConfiguration",
		"PublicAccessBlockConfiguration", "OwnershipControls", "Tags", "ObjectLockEnabled", "ObjectLockConfiguration"}
}

type bucketProps struct {
	BucketName       string   `json:"BucketName"`
	ObjectLock       flexBool `json:"ObjectLockEnabled"`
	ObjectLockConfig *struct {
		Rule *struct {
			DefaultRetention struct {
				Mode  string  `json:"Mode"`
				Days  flexInt `json:"Days"`
				Years flexInt `json:"Years"`
			} `json:"DefaultRetention"`
		} `json:"Rule"`
	} `json:"ObjectLockConfiguration"`
	BucketEncryption *struct {
		Rules []struct {
			Default struct {
				Algorithm string `json:"SSEAlgorithm"`
				KeyID     string `json:"KMSMasterKeyID"`
			} `json:"ServerSideEncryptionByDefault"`
			BucketKey flexBool `json:"BucketKeyEnabled"`
		} `json:"ServerSideEncryptionConfiguration"`
	} `json:"BucketEncryption"`
	Versioning *struct {
		Status string `json:"Status"`
	} `json:"VersioningConfiguration"`
	Lifecycle *struct {
		Rules []struct {
			ID                   string  `json:"Id"`
			Status               string  `json:"Status"`
			Prefix               string  `json:"Prefix"`
			ExpirationInDays     flexInt `json:"ExpirationInDays"`
			NoncurrentExpiration *struct {
				Days flexInt `json:"NoncurrentDays"`
			} `json:"NoncurrentVersionExpiration"`
			AbortMultipart *struct {
				Days flexInt `json:"DaysAfterInitiation"`
			} `json:"AbortIncompleteMultipartUpload"`
		} `json:"Rules"`
	} `json:"LifecycleConfiguration"`
	PublicAccess *struct {
		BlockPublicAcls       flexBool `json:"BlockPublicAcls"`
		BlockPublicPolicy     flexBool `json:"BlockPublicPolicy"`
		IgnorePublicAcls      flexBool `json:"IgnorePublicAcls"`
		RestrictPublicBuckets flexBool `json:"RestrictPublicBuckets"`
	} `json:"PublicAccessBlockConfiguration"`
	Ownership *struct {
		Rules []struct {
			ObjectOwnership string `json:"ObjectOwnership"`
		} `json:"Rules"`
	} `json:"OwnershipControls"`
}

func (s3Bucket) apply(ctx context.Context, e *env, id string, props map[string]any) (physical, Action, error) {
	var p bucketProps
	if err := decode(props, &p); err != nil {
		return physical{}, "", err
	}
	name := p.BucketName
	if name == "" {
		name = strings.ToLower(e.physicalName(id, 63))
	}
	action := Kept
	_, err := e.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(name)})
	var nf *s3types.NotFound
	switch {
	case errors.As(err, &nf):
		in := &s3.CreateBucketInput{Bucket: aws.String(name)}
		if p.ObjectLock.v {
			in.ObjectLockEnabledForBucket = aws.Bool(true)
		}
		if e.region != "us-east-1" {
			in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(e.region)}
		}
		var owned *s3types.BucketAlreadyOwnedByYou // a retried create whose first response was lost
		if _, err := e.s3.CreateBucket(ctx, in); err != nil && !errors.As(err, &owned) {
			return physical{}, "", fmt.Errorf("create bucket %s: %w", name, err)
		}
		action = Created
	case err != nil:
		return physical{}, "", fmt.Errorf("find bucket %s: %w", name, err)
	}
	// Every setting is a replace-all call, so applying it again converges.
	if err := configureBucket(ctx, e.s3, name, p, tagMap(props)); err != nil {
		return physical{}, "", err
	}
	arn := fmt.Sprintf("arn:%s:s3:::%s", e.partition, name)
	return physical{ref: name, attrs: map[string]any{"Arn": arn, "BucketName": name,
		"DomainName": name + ".s3.amazonaws.com", "RegionalDomainName": name + ".s3." + e.region + ".amazonaws.com"}}, action, nil
}

func configureBucket(ctx context.Context, c *s3.Client, name string, p bucketProps, tags map[string]string) error {
	b := aws.String(name)
	if lc := p.ObjectLockConfig; lc != nil && lc.Rule != nil {
		r := &s3types.DefaultRetention{Mode: s3types.ObjectLockRetentionMode(lc.Rule.DefaultRetention.Mode)}
		if d := lc.Rule.DefaultRetention.Days; d.set {
			r.Days = aws.Int32(int32(d.n))
		}
		if y := lc.Rule.DefaultRetention.Years; y.set {
			r.Years = aws.Int32(int32(y.n))
		}
		// The endpoint refuses to change the configuration of a bucket that
		// holds objects (S3 does not): apply it only when it differs.
		cur, err := c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: b})
		same := err == nil && cur.ObjectLockConfiguration != nil && cur.ObjectLockConfiguration.Rule != nil && cur.ObjectLockConfiguration.Rule.DefaultRetention != nil &&
			cur.ObjectLockConfiguration.Rule.DefaultRetention.Mode == r.Mode && aws.ToInt32(cur.ObjectLockConfiguration.Rule.DefaultRetention.Days) == aws.ToInt32(r.Days) &&
			aws.ToInt32(cur.ObjectLockConfiguration.Rule.DefaultRetention.Years) == aws.ToInt32(r.Years)
		if !same {
			if _, err := c.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: b, ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256,
				ObjectLockConfiguration: &s3types.ObjectLockConfiguration{ObjectLockEnabled: s3types.ObjectLockEnabledEnabled,
					Rule: &s3types.ObjectLockRule{DefaultRetention: r}}}); err != nil {
				return fmt.Errorf("bucket %s object lock: %w", name, err)
			}
		}
	}
	if p.BucketEncryption != nil {
		var rules []s3types.ServerSideEncryptionRule
		for _, r := range p.BucketEncryption.Rules {
			d := &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryption(r.Default.Algorithm)}
			if r.Default.KeyID != "" {
				d.KMSMasterKeyID = aws.String(r.Default.KeyID)
			}
			rules = append(rules, s3types.ServerSideEncryptionRule{ApplyServerSideEncryptionByDefault: d, BucketKeyEnabled: aws.Bool(r.BucketKey.v)})
		}
		if _, err := c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: b,
			ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{Rules: rules}}); err != nil {
			return fmt.Errorf("bucket %s encryption: %w", name, err)
		}
	}
	if p.Versioning != nil {
		if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b,
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatus(p.Versioning.Status)}}); err != nil {
			return fmt.Errorf("bucket %s versioning: %w", name, err)
		}
	}
	if p.Lifecycle != nil && len(p.Lifecycle.Rules) > 0 {
		var rules []s3types.LifecycleRule
		for _, r := range p.Lifecycle.Rules {
			lr := s3types.LifecycleRule{ID: aws.String(r.ID), Status: s3types.ExpirationStatus(r.Status),
				Filter: &s3types.LifecycleRuleFilter{Prefix: aws.String(r.Prefix)}}
			if r.ExpirationInDays.set {
				lr.Expiration = &s3types.LifecycleExpiration{Days: aws.Int32(int32(r.ExpirationInDays.n))}
			}
			if r.NoncurrentExpiration != nil {
				lr.NoncurrentVersionExpiration = &s3types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(int32(r.NoncurrentExpiration.Days.n))}
			}
			if r.AbortMultipart != nil {
				lr.AbortIncompleteMultipartUpload = &s3types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(int32(r.AbortMultipart.Days.n))}
			}
			rules = append(rules, lr)
		}
		if _, err := c.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: b,
			LifecycleConfiguration: &s3types.BucketLifecycleConfiguration{Rules: rules}}); err != nil {
			return fmt.Errorf("bucket %s lifecycle: %w", name, err)
		}
	}
	if pa := p.PublicAccess; pa != nil {
		if _, err := c.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: b, PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{
			BlockPublicAcls: aws.Bool(pa.BlockPublicAcls.v), BlockPublicPolicy: aws.Bool(pa.BlockPublicPolicy.v),
			IgnorePublicAcls: aws.Bool(pa.IgnorePublicAcls.v), RestrictPublicBuckets: aws.Bool(pa.RestrictPublicBuckets.v)}}); err != nil {
			return fmt.Errorf("bucket %s public access block: %w", name, err)
		}
	}
	if p.Ownership != nil && len(p.Ownership.Rules) > 0 {
		var rules []s3types.OwnershipControlsRule
		for _, r := range p.Ownership.Rules {
			rules = append(rules, s3types.OwnershipControlsRule{ObjectOwnership: s3types.ObjectOwnership(r.ObjectOwnership)})
		}
		if _, err := c.PutBucketOwnershipControls(ctx, &s3.PutBucketOwnershipControlsInput{Bucket: b,
			OwnershipControls: &s3types.OwnershipControls{Rules: rules}}); err != nil {
			return fmt.Errorf("bucket %s ownership controls: %w", name, err)
		}
	}
	if len(tags) > 0 {
		var ts []s3types.Tag
		for k, v := range tags {
			ts = append(ts, s3types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		if _, err := c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: b, Tagging: &s3types.Tagging{TagSet: ts}}); err != nil {
			return fmt.Errorf("bucket %s tags: %w", name, err)
		}
	}
	return nil
}
