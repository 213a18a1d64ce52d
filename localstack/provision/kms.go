package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// Tags that identify a provisioned KMS key, which has no name of its own.
const (
	tagStack     = "knhk:stack"
	tagLogicalID = "knhk:logical-id"
)

func init() {
	register("AWS::KMS::Key", kmsKey{})
	register("AWS::KMS::Alias", kmsAlias{})
}

type kmsKey struct{}

func (kmsKey) honours() []string {
	return []string{"Description", "KeyPolicy", "KeySpec", "KeyUsage", "EnableKeyRotation", "RotationPeriodInDays",
		"Enabled", "MultiRegion", "Tags", "PendingWindowInDays"}
}

type keyProps struct {
	Description          string   `json:"Description"`
	KeyPolicy            any      `json:"KeyPolicy"`
	KeySpec              string   `json:"KeySpec"`
	KeyUsage             string   `json:"KeyUsage"`
	EnableKeyRotation    flexBool `json:"EnableKeyRotation"`
	RotationPeriodInDays flexInt  `json:"RotationPeriodInDays"`
	Enabled              flexBool `json:"Enabled"`
	MultiRegion          flexBool `json:"MultiRegion"`
	Tags                 []cfnTag `json:"Tags"`
}

func (kmsKey) apply(ctx context.Context, e *env, id string, props map[string]any) (physical, Action, error) {
	var p keyProps
	if err := decode(props, &p); err != nil {
		return physical{}, "", err
	}
	if p.KeySpec == "" {
		p.KeySpec = string(kmstypes.KeySpecSymmetricDefault)
	}
	if p.KeyUsage == "" {
		p.KeyUsage = string(kmstypes.KeyUsageTypeEncryptDecrypt)
	}
	meta, err := findKey(ctx, e, id)
	if err != nil {
		return physical{}, "", err
	}
	action := Kept
	if meta == nil {
		in := &kms.CreateKeyInput{
			Description: aws.String(p.Description),
			KeySpec:     kmstypes.KeySpec(p.KeySpec),
			KeyUsage:    kmstypes.KeyUsageType(p.KeyUsage),
			MultiRegion: aws.Bool(p.MultiRegion.v),
			Tags: []kmstypes.Tag{
				{TagKey: aws.String(tagStack), TagValue: aws.String(e.stack)},
				{TagKey: aws.String(tagLogicalID), TagValue: aws.String(id)},
			},
		}
		for _, t := range p.Tags {
			in.Tags = append(in.Tags, kmstypes.Tag{TagKey: aws.String(t.Key), TagValue: aws.String(t.Value)})
		}
		if p.KeyPolicy != nil {
			doc, err := jsonString(p.KeyPolicy)
			if err != nil {
				return physical{}, "", fmt.Errorf("key policy: %w", err)
			}
			in.Policy = aws.String(doc)
		}
		out, err := e.kms.CreateKey(ctx, in)
		if err != nil {
			return physical{}, "", fmt.Errorf("create key: %w", err)
		}
		meta, action = out.KeyMetadata, Created
	} else if string(meta.KeySpec) != p.KeySpec || string(meta.KeyUsage) != p.KeyUsage {
		return physical{}, "", fmt.Errorf("existing key %s is %s/%s, template wants %s/%s: replacing a key is not supported",
			aws.ToString(meta.KeyId), meta.KeySpec, meta.KeyUsage, p.KeySpec, p.KeyUsage)
	}
	keyID := aws.ToString(meta.KeyId)

	if p.EnableKeyRotation.v {
		st, err := e.kms.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyID)})
		if err != nil {
			return physical{}, "", fmt.Errorf("key rotation status: %w", err)
		}
		if !st.KeyRotationEnabled {
			in := &kms.EnableKeyRotationInput{KeyId: aws.String(keyID)}
			if p.RotationPeriodInDays.set {
				in.RotationPeriodInDays = aws.Int32(int32(p.RotationPeriodInDays.n))
			}
			if _, err := e.kms.EnableKeyRotation(ctx, in); err != nil {
				return physical{}, "", fmt.Errorf("enable key rotation: %w", err)
			}
			if action == Kept {
				action = Updated
			}
		}
	}
	if p.Enabled.set && p.Enabled.v != meta.Enabled {
		if p.Enabled.v {
			_, err = e.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(keyID)})
		} else {
			_, err = e.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyID)})
		}
		if err != nil {
			return physical{}, "", fmt.Errorf("set key enabled=%v: %w", p.Enabled.v, err)
		}
		if action == Kept {
			action = Updated
		}
	}
	return physical{ref: keyID, attrs: map[string]any{"Arn": aws.ToString(meta.Arn), "KeyId": keyID}}, action, nil
}

// findKey returns the usable key tagged with the stack and logical id.
func findKey(ctx context.Context, e *env, id string) (*kmstypes.KeyMetadata, error) {
	pages := kms.NewListKeysPaginator(e.kms, &kms.ListKeysInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		for _, k := range page.Keys {
			tags, err := e.kms.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: k.KeyId})
			if err != nil {
				return nil, fmt.Errorf("list key tags: %w", err)
			}
			if !hasTags(tags.Tags, map[string]string{tagStack: e.stack, tagLogicalID: id}) {
				continue
			}
			d, err := e.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: k.KeyId})
			if err != nil {
				return nil, fmt.Errorf("describe key: %w", err)
			}
			switch d.KeyMetadata.KeyState {
			case kmstypes.KeyStatePendingDeletion, kmstypes.KeyStatePendingReplicaDeletion:
				continue
			}
			return d.KeyMetadata, nil
		}
	}
	return nil, nil
}

func hasTags(tags []kmstypes.Tag, want map[string]string) bool {
	n := 0
	for _, t := range tags {
		if v, ok := want[aws.ToString(t.TagKey)]; ok && v == aws.ToString(t.TagValue) {
			n++
		}
	}
	return n == len(want)
}

type kmsAlias struct{}

func (kmsAlias) honours() []string { return []string{"AliasName", "TargetKeyId"} }

func (kmsAlias) apply(ctx context.Context, e *env, _ string, props map[string]any) (physical, Action, error) {
	var p struct {
		AliasName   string `json:"AliasName"`
		TargetKeyId string `json:"TargetKeyId"`
	}
	if err := decode(props, &p); err != nil {
		return physical{}, "", err
	}
	if !strings.HasPrefix(p.AliasName, "alias/") || p.TargetKeyId == "" {
		return physical{}, "", errors.New("alias needs AliasName alias/... and TargetKeyId")
	}
	target := keyIDOf(p.TargetKeyId)
	ph := physical{ref: p.AliasName, attrs: map[string]any{}}
	pages := kms.NewListAliasesPaginator(e.kms, &kms.ListAliasesInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return physical{}, "", fmt.Errorf("list aliases: %w", err)
		}
		for _, a := range page.Aliases {
			if aws.ToString(a.AliasName) != p.AliasName {
				continue
			}
			if aws.ToString(a.TargetKeyId) == target {
				return ph, Kept, nil
			}
			if _, err := e.kms.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String(p.AliasName), TargetKeyId: aws.String(target)}); err != nil {
				return physical{}, "", fmt.Errorf("update alias: %w", err)
			}
			return ph, Updated, nil
		}
	}
	if _, err := e.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(p.AliasName), TargetKeyId: aws.String(target)}); err != nil {
		return physical{}, "", fmt.Errorf("create alias: %w", err)
	}
	return ph, Created, nil
}

// keyIDOf returns the key id of a key id or key ARN.
func keyIDOf(s string) string {
	if i := strings.LastIndex(s, ":key/"); i >= 0 {
		return s[i+len(":key/"):]
	}
	return s
}
