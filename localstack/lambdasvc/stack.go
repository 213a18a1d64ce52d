package lambdasvc

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/knhk/knhk/localstack/provision"
)

// FunctionMetadataKey is the template Metadata key naming a function's
// source folder (functions/<name>); its base name selects the host build.
const FunctionMetadataKey = "knhk:function"

// Function is a Lambda function of the stack as the service runs it.
type Function struct {
	LogicalID string
	// Name is the function name (FunctionName, else derived like
	// CloudFormation does from the stack name and logical id).
	Name string
	// ARN is the function's ARN in the stack's region and account.
	ARN string
	// Source is the function's source name (functions/<Source>), when known.
	Source string
	// Binary is the bootstrap executable that runs locally.
	Binary string
	// MemorySize is in MB; Timeout in seconds.
	MemorySize int
	Timeout    int
	// Env is the function's resolved environment.
	Env map[string]string
}

// QueueMapping is an AWS::Lambda::EventSourceMapping on an SQS queue.
type QueueMapping struct {
	LogicalID      string
	Function       string
	QueueARN       string
	BatchSize      int
	WindowSeconds  int
	MaxConcurrency int
	ReportFailures bool
}

// StreamMapping is an AWS::Lambda::EventSourceMapping on a DynamoDB stream.
type StreamMapping struct {
	LogicalID        string
	Function         string
	StreamARN        string
	StartingPosition string
	BatchSize        int
	WindowSeconds    int
	Bisect           bool
	MaxRetryAttempts int // -1: until the record expires
	MaxRecordAge     int // seconds; -1: no limit
	OnFailureARN     string
	Parallelization  int
	ReportFailures   bool
}

// Schedule is an AWS::Events::Rule with a ScheduleExpression.
type Schedule struct {
	LogicalID  string
	RuleName   string
	RuleARN    string
	Expression string
	// Targets are function names; Inputs holds a target's constant Input.
	Targets []string
	Inputs  map[string]string
}

// Stack is what the service runs: functions and their triggers.
type Stack struct {
	Name, Region, Account string
	Functions             map[string]*Function // by name
	Queues                []QueueMapping
	Streams               []StreamMapping
	Schedules             []Schedule
	// Notes lists template parts that are not run locally, with the reason.
	Notes []string
}

type cfnResource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
	Metadata   map[string]any `json:"Metadata"`
	Condition  string         `json:"Condition"`
}

type cfnTemplate struct {
	Parameters map[string]struct {
		Type    string `json:"Type"`
		Default any    `json:"Default"`
	} `json:"Parameters"`
	Conditions map[string]any         `json:"Conditions"`
	Mappings   map[string]any         `json:"Mappings"`
	Resources  map[string]cfnResource `json:"Resources"`
}

// StackOptions say where binaries are found when reading a template.
type StackOptions struct {
	// AssetDir is the folder asset paths are relative to (the cloud
	// assembly, e.g. infra/cdk.out).
	AssetDir string
	// HostDir holds host-architecture builds, build/host/<source> (a file,
	// or a folder holding bootstrap).
	HostDir string
	// Binaries overrides the binary per function source name or logical id.
	Binaries map[string]string
	// Parameters overrides template parameter defaults.
	Parameters map[string]string
}

// LoadStack reads a synthesized template and the provision state file.
func LoadStack(templatePath, statePath string, opts StackOptions) (*Stack, error) {
	tb, err := os.ReadFile(templatePath)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	sb, err := os.ReadFile(statePath)
	if err != nil {
		return nil, fmt.Errorf("read stack state: %w", err)
	}
	var st provision.Deployment
	if err := json.Unmarshal(sb, &st); err != nil {
		return nil, fmt.Errorf("parse stack state %s: %w", statePath, err)
	}
	if opts.AssetDir == "" {
		opts.AssetDir = filepath.Dir(templatePath)
	}
	return ParseStack(tb, &st, opts)
}

// ParseStack reads the functions, event source mappings and schedules of a
// template, resolving references through the deployed state.
func ParseStack(template []byte, st *provision.Deployment, opts StackOptions) (*Stack, error) {
	var t cfnTemplate
	if err := json.Unmarshal(template, &t); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	if st == nil || st.Stack == "" || st.Region == "" {
		return nil, errors.New("stack state: missing stack name or region")
	}
	s := &Stack{Name: st.Stack, Region: st.Region, Account: st.Account, Functions: map[string]*Function{}}
	r := newResolver(&t, st, s, opts.Parameters)
	ids := make([]string, 0, len(t.Resources))
	for id := range t.Resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	byLogical := map[string]*Function{}
	// Function names first: mappings and rules refer to them.
	for _, id := range ids {
		res := t.Resources[id]
		if res.Type != "AWS::Lambda::Function" || !r.active(id) {
			continue
		}
		name, _ := res.Properties["FunctionName"].(string)
		if name == "" {
			name = derivedName(s.Name, id, 64)
		}
		f := &Function{LogicalID: id, Name: name, ARN: fmt.Sprintf("arn:%s:lambda:%s:%s:function:%s", partition(s.Region), s.Region, s.Account, name)}
		byLogical[id] = f
	}
	r.functions = byLogical
	for _, id := range ids {
		f, ok := byLogical[id]
		if !ok {
			continue
		}
		if err := r.fillFunction(f, t.Resources[id], opts); err != nil {
			s.Notes = append(s.Notes, fmt.Sprintf("function %s not run: %v", id, err))
			continue
		}
		s.Functions[f.Name] = f
	}
	for _, id := range ids {
		res := t.Resources[id]
		if !r.active(id) {
			continue
		}
		var err error
		switch res.Type {
		case "AWS::Lambda::EventSourceMapping":
			err = r.mapping(s, id, res)
		case "AWS::Events::Rule":
			err = r.rule(s, id, res)
		}
		if err != nil {
			s.Notes = append(s.Notes, fmt.Sprintf("%s %s not run: %v", res.Type, id, err))
		}
	}
	return s, nil
}

type resolver struct {
	*provision.Resolver
	t         *cfnTemplate
	conds     map[string]bool
	functions map[string]*Function
}

func newResolver(t *cfnTemplate, st *provision.Deployment, s *Stack, overrides map[string]string) *resolver {
	params := map[string]any{
		"AWS::Region": s.Region, "AWS::AccountId": s.Account, "AWS::Partition": partition(s.Region),
		"AWS::URLSuffix": "amazonaws.com", "AWS::StackName": s.Name, "AWS::NoValue": nil,
	}
	delete(params, "AWS::NoValue")
	for name, p := range t.Parameters {
		if v, ok := overrides[name]; ok {
			params[name] = v
		} else if p.Default != nil {
			params[name] = p.Default
		}
	}
	r := &resolver{t: t, conds: map[string]bool{}}
	r.Resolver = &provision.Resolver{Params: params, Mappings: t.Mappings}
	r.Ref = func(id string) (any, error) {
		if f, ok := r.functions[id]; ok {
			return f.Name, nil
		}
		if rec, ok := st.Resources[id]; ok {
			return rec.PhysicalID, nil
		}
		return nil, fmt.Errorf("Ref %s: not in the stack state (deploy the stack first)", id)
	}
	r.Attr = func(id, attr string) (any, error) {
		if f, ok := r.functions[id]; ok && attr == "Arn" {
			return f.ARN, nil
		}
		if rec, ok := st.Resources[id]; ok {
			if v, ok := rec.Attributes[attr]; ok {
				return v, nil
			}
		}
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: not in the stack state", id, attr)
	}
	r.Condition = func(name string) (bool, error) {
		if v, ok := r.conds[name]; ok {
			return v, nil
		}
		expr, ok := t.Conditions[name]
		if !ok {
			return false, fmt.Errorf("unknown condition %s", name)
		}
		r.conds[name] = false // breaks cycles
		v, err := r.EvalCondition(expr)
		if err != nil {
			return false, err
		}
		r.conds[name] = v
		return v, nil
	}
	return r
}

func (r *resolver) active(id string) bool {
	c := r.t.Resources[id].Condition
	if c == "" {
		return true
	}
	ok, err := r.Condition(c)
	return err == nil && ok
}

// props resolves the named properties of a resource (all when none are
// named). Naming them matters: a function's Role refers to IAM resources
// that a local endpoint does not provision, and the service never uses it.
func (r *resolver) props(res cfnResource, names ...string) (map[string]any, error) {
	in := res.Properties
	if len(names) > 0 {
		in = map[string]any{}
		for _, n := range names {
			if v, ok := res.Properties[n]; ok {
				in[n] = v
			}
		}
	}
	v, err := r.Resolve(in)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

func (r *resolver) fillFunction(f *Function, res cfnResource, opts StackOptions) error {
	p, err := r.props(res, "MemorySize", "Timeout", "Environment")
	if err != nil {
		return err
	}
	f.MemorySize = intProp(p, "MemorySize", 128)
	f.Timeout = intProp(p, "Timeout", 3)
	f.Env = map[string]string{}
	if env, ok := p["Environment"].(map[string]any); ok {
		if vars, ok := env["Variables"].(map[string]any); ok {
			for k, v := range vars {
				f.Env[k] = scalar(v)
			}
		}
	}
	if src, ok := res.Metadata[FunctionMetadataKey].(string); ok && src != "" {
		f.Source = filepath.Base(filepath.Clean(src))
	}
	assetPath, _ := res.Metadata["aws:asset:path"].(string)
	if f.Source == "" && assetPath != "" && !strings.HasPrefix(filepath.Base(assetPath), "asset.") {
		f.Source = filepath.Base(filepath.Clean(assetPath))
	}
	bin, err := chooseBinary(f, assetPath, opts)
	if err != nil {
		return err
	}
	f.Binary = bin
	return nil
}

// chooseBinary picks the bootstrap to run: an override, else the asset's
// bootstrap when it runs on this machine, else the host build.
func chooseBinary(f *Function, assetPath string, opts StackOptions) (string, error) {
	for _, k := range []string{f.Source, f.LogicalID} {
		if b, ok := opts.Binaries[k]; ok && k != "" {
			return filepath.Abs(b)
		}
	}
	var why []string
	if assetPath != "" {
		p := assetPath
		if !filepath.IsAbs(p) {
			p = filepath.Join(opts.AssetDir, p)
		}
		boot := filepath.Join(p, "bootstrap")
		if err := runnable(boot); err == nil {
			return filepath.Abs(boot)
		} else {
			why = append(why, err.Error())
		}
	}
	if f.Source != "" && opts.HostDir != "" {
		p := filepath.Join(opts.HostDir, f.Source)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			p = filepath.Join(p, "bootstrap")
		}
		if err := runnable(p); err == nil {
			return filepath.Abs(p)
		} else {
			why = append(why, err.Error())
		}
	} else {
		why = append(why, "no host build: the function has no "+FunctionMetadataKey+" metadata and its asset path does not name it")
	}
	return "", errors.New(strings.Join(why, "; "))
}

// runnable checks that path is an executable ELF file for this machine.
func runnable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", path, err)
	}
	if fi.Mode()&0o111 == 0 {
		return fmt.Errorf("bootstrap %s is not executable", path)
	}
	ef, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", path, err)
	}
	defer ef.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if ef.Machine != want {
		return fmt.Errorf("bootstrap %s is built for %s, this machine is %s", path, ef.Machine, runtime.GOARCH)
	}
	return nil
}

func (r *resolver) functionName(p map[string]any, key string) (string, error) {
	v := scalar(p[key])
	if v == "" {
		return "", fmt.Errorf("no %s", key)
	}
	// A name, a function ARN or a Fn::GetAtt Arn.
	if strings.HasPrefix(v, "arn:") {
		parts := strings.Split(v, ":")
		if len(parts) >= 7 {
			v = parts[6]
		}
	}
	for _, f := range r.functions {
		if f.Name == v {
			return v, nil
		}
	}
	return "", fmt.Errorf("function %s is not in the template", v)
}

func (r *resolver) mapping(s *Stack, id string, res cfnResource) error {
	p, err := r.props(res)
	if err != nil {
		return err
	}
	fn, err := r.functionName(p, "FunctionName")
	if err != nil {
		return err
	}
	if _, ok := s.Functions[fn]; !ok {
		return fmt.Errorf("function %s is not runnable locally", fn)
	}
	if e, ok := p["Enabled"]; ok && !truthy(e) {
		return errors.New("disabled (Enabled is false)")
	}
	arn := scalar(p["EventSourceArn"])
	reportFailures := false
	if types, ok := p["FunctionResponseTypes"].([]any); ok {
		for _, t := range types {
			if scalar(t) == "ReportBatchItemFailures" {
				reportFailures = true
			}
		}
	}
	honoured := map[string]bool{"FunctionName": true, "EventSourceArn": true, "Enabled": true, "BatchSize": true,
		"MaximumBatchingWindowInSeconds": true, "FunctionResponseTypes": true}
	switch service(arn) {
	case "sqs":
		honoured["ScalingConfig"] = true
	case "dynamodb":
		for _, k := range []string{"StartingPosition", "BisectBatchOnFunctionError", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "DestinationConfig"} {
			honoured[k] = true
		}
		if intProp(p, "ParallelizationFactor", 1) == 1 {
			honoured["ParallelizationFactor"] = true
		}
	}
	if ignored := unhonoured(p, honoured); len(ignored) > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%s: properties not applied locally: %s", id, strings.Join(ignored, ", ")))
	}
	switch service(arn) {
	case "sqs":
		m := QueueMapping{LogicalID: id, Function: fn, QueueARN: arn, BatchSize: intProp(p, "BatchSize", 10),
			WindowSeconds: intProp(p, "MaximumBatchingWindowInSeconds", 0), ReportFailures: reportFailures}
		if sc, ok := p["ScalingConfig"].(map[string]any); ok {
			m.MaxConcurrency = intProp(sc, "MaximumConcurrency", 0)
		}
		s.Queues = append(s.Queues, m)
	case "dynamodb":
		m := StreamMapping{LogicalID: id, Function: fn, StreamARN: arn, StartingPosition: scalar(p["StartingPosition"]),
			BatchSize: intProp(p, "BatchSize", 100), WindowSeconds: intProp(p, "MaximumBatchingWindowInSeconds", 0),
			Bisect: truthy(p["BisectBatchOnFunctionError"]), MaxRetryAttempts: intProp(p, "MaximumRetryAttempts", -1),
			MaxRecordAge: intProp(p, "MaximumRecordAgeInSeconds", -1), Parallelization: intProp(p, "ParallelizationFactor", 1),
			ReportFailures: reportFailures}
		if m.StartingPosition == "" {
			m.StartingPosition = "TRIM_HORIZON"
		}
		if dc, ok := p["DestinationConfig"].(map[string]any); ok {
			if of, ok := dc["OnFailure"].(map[string]any); ok {
				m.OnFailureARN = scalar(of["Destination"])
			}
		}
		s.Streams = append(s.Streams, m)
	default:
		return fmt.Errorf("event source %q is not an SQS queue or a DynamoDB stream", arn)
	}
	return nil
}

func (r *resolver) rule(s *Stack, id string, res cfnResource) error {
	p, err := r.props(res)
	if err != nil {
		return err
	}
	expr := scalar(p["ScheduleExpression"])
	if expr == "" {
		return errors.New("not a schedule (event pattern rules are not run locally)")
	}
	if st := scalar(p["State"]); st != "" && st != "ENABLED" {
		return fmt.Errorf("state %s", st)
	}
	name := scalar(p["Name"])
	if name == "" {
		name = derivedName(s.Name, id, 64)
	}
	sch := Schedule{LogicalID: id, RuleName: name, Expression: expr, Inputs: map[string]string{},
		RuleARN: fmt.Sprintf("arn:%s:events:%s:%s:rule/%s", partition(s.Region), s.Region, s.Account, name)}
	targets, _ := p["Targets"].([]any)
	for _, t := range targets {
		tm, _ := t.(map[string]any)
		if ignored := unhonoured(tm, map[string]bool{"Arn": true, "Id": true, "Input": true}); len(ignored) > 0 {
			s.Notes = append(s.Notes, fmt.Sprintf("%s target: properties not applied locally: %s", id, strings.Join(ignored, ", ")))
		}
		fn, err := r.functionName(tm, "Arn")
		if err != nil {
			s.Notes = append(s.Notes, fmt.Sprintf("rule %s target skipped: %v", id, err))
			continue
		}
		if _, ok := s.Functions[fn]; !ok {
			continue
		}
		sch.Targets = append(sch.Targets, fn)
		if in := scalar(tm["Input"]); in != "" {
			sch.Inputs[fn] = in
		}
	}
	if len(sch.Targets) == 0 {
		return errors.New("no runnable function targets")
	}
	if _, err := ParseSchedule(expr); err != nil {
		return err
	}
	s.Schedules = append(s.Schedules, sch)
	return nil
}

// service returns the service part of an ARN.
func service(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" {
		return ""
	}
	return parts[2]
}

func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// derivedName builds a stable physical name from the stack and logical id.
func derivedName(stack, id string, max int) string {
	n := stack + "-" + id
	if len(n) > max {
		n = n[:max]
	}
	return n
}

func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func truthy(v any) bool {
	b, _ := strconv.ParseBool(scalar(v))
	return b
}

func intProp(p map[string]any, key string, def int) int {
	v, ok := p[key]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(scalar(v))
	if err != nil {
		return def
	}
	return n
}

// unhonoured lists the properties of p the service does not apply, sorted.
func unhonoured(p map[string]any, honoured map[string]bool) []string {
	var out []string
	for k := range p {
		if !honoured[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
