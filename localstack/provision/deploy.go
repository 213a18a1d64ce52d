package provision

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/knhk/knhk/shared/localaws"
	"github.com/knhk/knhk/shared/objects"
)

// Action says what a deploy did to a resource.
type Action string

// Actions a deploy reports per resource.
const (
	Created Action = "created"
	Updated Action = "updated"
	Kept    Action = "kept"
	Skipped Action = "skipped"
)

// Result is the outcome of one resource.
type Result struct {
	LogicalID  string `json:"logicalId"`
	Type       string `json:"type"`
	PhysicalID string `json:"physicalId,omitempty"`
	Action     Action `json:"action"`
	// Reason explains a skip, or lists template properties that were not
	// applied locally.
	Reason string `json:"reason,omitempty"`
}

// Outputs maps stack output ids to their resolved values.
type Outputs map[string]string

// Options tune a deploy.
type Options struct {
	// StackName names the stack; physical names derive from it. Default: the
	// template file name without ".template.json".
	StackName string
	// Parameters overrides template parameter defaults.
	Parameters map[string]string
	// OutputsFile, when set, receives the outputs as a JSON object.
	OutputsFile string
	// StateFile, when set, receives the stack state: the logical to physical
	// map and every result.
	StateFile string
}

// Deployment is the outcome of a deploy.
type Deployment struct {
	Stack   string  `json:"stack"`
	Region  string  `json:"region"`
	Account string  `json:"account"`
	Outputs Outputs `json:"outputs"`
	// OmittedOutputs names outputs that could not be resolved and why.
	OmittedOutputs map[string]string      `json:"omittedOutputs,omitempty"`
	Results        []Result               `json:"results"`
	Resources      map[string]StateRecord `json:"resources"`
	// Notes lists template sections that are not evaluated locally.
	Notes []string `json:"notes,omitempty"`
}

// StateRecord is a deployed resource as the state file records it.
type StateRecord struct {
	Type       string         `json:"type"`
	PhysicalID string         `json:"physicalId"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Changed reports whether the deploy created or updated anything.
func (d *Deployment) Changed() bool {
	for _, r := range d.Results {
		if r.Action == Created || r.Action == Updated {
			return true
		}
	}
	return false
}

// physical is a deployed resource as the rest of the template sees it.
type physical struct {
	ref   string
	attrs map[string]any
}

// handler deploys one resource type. apply creates the resource or finds
// the existing one by its physical identity, converging it to props.
type handler interface {
	apply(ctx context.Context, e *env, id string, props map[string]any) (physical, Action, error)
	// honours lists the template properties the handler applies.
	honours() []string
}

// skip is the handler of a type that is deliberately not created locally.
type skip struct{ reason string }

func (s skip) apply(_ context.Context, _ *env, id string, _ map[string]any) (physical, Action, error) {
	return physical{}, Skipped, fmt.Errorf("%s: %s", id, s.reason)
}

func (skip) honours() []string { return nil }

// handlers is the table of honoured and deliberately skipped types.
var handlers = map[string]handler{}

func register(typ string, h handler) { handlers[typ] = h }

func init() {
	register("AWS::CDK::Metadata", skip{"CDK usage metadata: there is nothing to create"})
}

// skippedFamilies are service namespaces deliberately not created on the
// endpoint, with the reason.
var skippedFamilies = map[string]string{
	"AWS::IAM::":    "the local endpoint does not enforce IAM, so roles and policies have no local effect",
	"AWS::Lambda::": "the local endpoint does not run functions; the local Lambda service runs them and their event sources from the template",
}

// handlerFor returns the handler of a type, or a skip with the reason.
func handlerFor(typ string) handler {
	if h, ok := handlers[typ]; ok {
		return h
	}
	for prefix, why := range skippedFamilies {
		if strings.HasPrefix(typ, prefix) {
			return skip{why}
		}
	}
	return skip{"resource type not honoured by the local provisioner (see docs/local-aws.md)"}
}

// Types lists the honoured resource types, sorted.
func Types() []string {
	var out []string
	for t, h := range handlers {
		if _, ok := h.(skip); !ok {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// env is what handlers need: clients and the stack's identity.
type env struct {
	stack, region, account, partition string
	kms                               *kms.Client
	ddb                               *dynamodb.Client
	sqs                               *sqs.Client
	sns                               *sns.Client
	s3                                *s3.Client
	cw                                *cloudwatch.Client
}

// physicalName derives a deterministic name as CloudFormation would
// generate one: stack, logical id and a stable suffix, within max bytes.
func (e *env) physicalName(id string, max int) string {
	sum := sha256.Sum256([]byte(e.stack + "/" + id))
	suffix := strings.ToUpper(fmt.Sprintf("%x", sum[:6]))
	base := e.stack + "-" + id
	if room := max - len(suffix) - 1; len(base) > room {
		base = base[:room]
	}
	return base + "-" + suffix
}

// Deploy provisions the template at templatePath and returns its outputs.
func Deploy(ctx context.Context, cfg aws.Config, templatePath string, opts Options) (Outputs, error) {
	d, err := DeployFile(ctx, cfg, templatePath, opts)
	if err != nil {
		return nil, err
	}
	return d.Outputs, nil
}

// DeployFile provisions the template at templatePath and returns the full
// deployment report.
func DeployFile(ctx context.Context, cfg aws.Config, templatePath string, opts Options) (*Deployment, error) {
	t, err := LoadTemplate(templatePath)
	if err != nil {
		return nil, err
	}
	if opts.StackName == "" {
		opts.StackName = strings.TrimSuffix(filepath.Base(templatePath), ".template.json")
	}
	return Apply(ctx, cfg, t, opts)
}

var errNotDeployed = errors.New("not provisioned locally")

// Apply provisions a parsed template.
func Apply(ctx context.Context, cfg aws.Config, t *Template, opts Options) (*Deployment, error) {
	if opts.StackName == "" {
		return nil, errors.New("provision: stack name required")
	}
	if cfg.Region == "" {
		return nil, errors.New("provision: region required")
	}
	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return nil, fmt.Errorf("provision: identify account: %w", err)
	}
	e := &env{
		stack: opts.StackName, region: cfg.Region, account: aws.ToString(id.Account), partition: partitionOf(cfg.Region),
		kms: kms.NewFromConfig(cfg), ddb: dynamodb.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg), sns: sns.NewFromConfig(cfg),
		s3: objects.NewClient(cfg),
		cw: localaws.NewCloudWatch(cfg),
	}
	order, err := t.Order()
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	d := &Deployment{Stack: e.stack, Region: e.region, Account: e.account, Outputs: Outputs{},
		OmittedOutputs: map[string]string{}, Resources: map[string]StateRecord{}}
	if len(t.Rules) > 0 {
		d.Notes = append(d.Notes, "template Rules are not evaluated locally (they check deploy-time facts such as the CDK bootstrap version)")
	}

	deployed := map[string]physical{}
	skippedWhy := map[string]string{}
	r := newResolver(t, e, opts.Parameters, deployed, skippedWhy)

	for _, lid := range order {
		res := t.Resources[lid]
		result := Result{LogicalID: lid, Type: res.Type}
		if res.Condition != "" {
			ok, err := r.Condition(res.Condition)
			if err != nil {
				return d, fmt.Errorf("provision %s: condition %s: %w", lid, res.Condition, err)
			}
			if !ok {
				result.Action, result.Reason = Skipped, "condition "+res.Condition+" is false"
				skippedWhy[lid] = result.Reason
				d.Results = append(d.Results, result)
				continue
			}
		}
		h := handlerFor(res.Type)
		if s, isSkip := h.(skip); isSkip {
			result.Action, result.Reason = Skipped, s.reason
			skippedWhy[lid] = s.reason
			d.Results = append(d.Results, result)
			continue
		}
		if dep := firstSkippedDependency(res, skippedWhy); dep != "" {
			result.Action, result.Reason = Skipped, "depends on "+dep+", which is not provisioned locally"
			skippedWhy[lid] = result.Reason
			d.Results = append(d.Results, result)
			continue
		}
		// Properties the handler does not apply are not resolved either: a
		// reference there (say a resource policy naming a role, which is
		// not provisioned locally) must not keep the resource from being
		// created. They are reported as not applied.
		raw := nonNil(res.Properties)
		ignored := unhonoured(raw, h.honours())
		applied := make(map[string]any, len(raw))
		for k, v := range raw {
			if !slices.Contains(ignored, k) {
				applied[k] = v
			}
		}
		props, err := r.Resolve(applied)
		if errors.Is(err, errNotDeployed) {
			result.Action, result.Reason = Skipped, "needs a resource that is not provisioned locally: "+err.Error()
			skippedWhy[lid] = result.Reason
			d.Results = append(d.Results, result)
			continue
		}
		if err != nil {
			return d, fmt.Errorf("provision %s (%s): %w", lid, res.Type, err)
		}
		pm, _ := props.(map[string]any)
		p, action, err := h.apply(ctx, e, lid, pm)
		if err != nil {
			return d, fmt.Errorf("provision %s (%s): %w", lid, res.Type, err)
		}
		deployed[lid] = p
		result.PhysicalID, result.Action = p.ref, action
		if len(ignored) > 0 {
			result.Reason = "properties not applied locally: " + strings.Join(ignored, ", ")
		}
		d.Results = append(d.Results, result)
		d.Resources[lid] = StateRecord{Type: res.Type, PhysicalID: p.ref, Attributes: p.attrs}
	}

	for _, oid := range sortedKeys(t.Outputs) {
		o := t.Outputs[oid]
		if o.Condition != "" {
			if ok, err := r.Condition(o.Condition); err != nil || !ok {
				d.OmittedOutputs[oid] = "condition " + o.Condition + " is false"
				continue
			}
		}
		v, err := r.Resolve(o.Value)
		if err != nil {
			d.OmittedOutputs[oid] = err.Error()
			continue
		}
		s, err := scalarString(v)
		if err != nil {
			d.OmittedOutputs[oid] = err.Error()
			continue
		}
		d.Outputs[oid] = s
	}
	if err := writeJSON(opts.OutputsFile, d.Outputs); err != nil {
		return d, err
	}
	if err := writeJSON(opts.StateFile, d); err != nil {
		return d, err
	}
	return d, nil
}

func newResolver(t *Template, e *env, overrides map[string]string, deployed map[string]physical, skippedWhy map[string]string) *Resolver {
	params := map[string]any{
		"AWS::Region":           e.region,
		"AWS::AccountId":        e.account,
		"AWS::Partition":        e.partition,
		"AWS::URLSuffix":        urlSuffix(e.partition),
		"AWS::StackName":        e.stack,
		"AWS::StackId":          fmt.Sprintf("arn:%s:cloudformation:%s:%s:stack/%s/%x", e.partition, e.region, e.account, e.stack, sha256.Sum256([]byte(e.stack))),
		"AWS::NotificationARNs": []any{},
	}
	r := &Resolver{Params: params, Mappings: t.Mappings}
	for name, p := range t.Parameters {
		if v, ok := overrides[name]; ok {
			params[name] = v
		} else if p.Default != nil && !strings.HasPrefix(p.Type, "AWS::SSM::Parameter::Value") {
			params[name] = p.Default
		}
	}
	r.Ref = func(id string) (any, error) {
		if p, ok := deployed[id]; ok {
			return p.ref, nil
		}
		if why, ok := skippedWhy[id]; ok {
			return nil, fmt.Errorf("Ref %s: %w (%s)", id, errNotDeployed, why)
		}
		if p, ok := t.Parameters[id]; ok {
			return nil, fmt.Errorf("Ref %s: parameter of type %s has no local value; pass it in Options.Parameters", id, p.Type)
		}
		return nil, fmt.Errorf("Ref %s: unknown resource or parameter", id)
	}
	r.Attr = func(id, attr string) (any, error) {
		p, ok := deployed[id]
		if !ok {
			if why, ok := skippedWhy[id]; ok {
				return nil, fmt.Errorf("Fn::GetAtt %s.%s: %w (%s)", id, attr, errNotDeployed, why)
			}
			return nil, fmt.Errorf("Fn::GetAtt %s.%s: unknown resource", id, attr)
		}
		v, ok := p.attrs[attr]
		if !ok {
			return nil, fmt.Errorf("Fn::GetAtt %s.%s: attribute not provided locally", id, attr)
		}
		return v, nil
	}
	cache := map[string]bool{}
	visiting := map[string]bool{}
	r.Condition = func(name string) (bool, error) {
		if v, ok := cache[name]; ok {
			return v, nil
		}
		expr, ok := t.Conditions[name]
		if !ok {
			return false, fmt.Errorf("unknown condition %s", name)
		}
		if visiting[name] {
			return false, fmt.Errorf("condition %s refers to itself", name)
		}
		visiting[name] = true
		defer delete(visiting, name)
		v, err := r.EvalCondition(expr)
		if err != nil {
			return false, fmt.Errorf("condition %s: %w", name, err)
		}
		cache[name] = v
		return v, nil
	}
	return r
}

// firstSkippedDependency returns a resource named in DependsOn that was
// skipped, if any. (References in properties are checked as they resolve, so
// a reference in an Fn::If branch not taken does not count.)
func firstSkippedDependency(res Resource, skippedWhy map[string]string) string {
	refs := res.dependsOn()
	sort.Strings(refs)
	for _, ref := range refs {
		if _, ok := skippedWhy[ref]; ok {
			return ref
		}
	}
	return ""
}

func unhonoured(props map[string]any, honours []string) []string {
	known := make(map[string]bool, len(honours))
	for _, h := range honours {
		known[h] = true
	}
	var out []string
	for k := range props {
		if !known[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func partitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

func urlSuffix(partition string) string {
	if partition == "aws-cn" {
		return "amazonaws.com.cn"
	}
	return "amazonaws.com"
}

func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
