package localrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/knhk/knhk/localstack/standin"
	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/queue"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/workflow/dsl"
)

// Case is one case of a load.
type Case struct {
	Namespace, Workflow, Tenant, Key string
	Input                            json.RawMessage
	ID                               string
}

// Sample is a sample workflow with its sample input.
type Sample struct {
	Namespace, Name string
	Body            []byte
	Input           json.RawMessage
}

// LoadSamples reads events/workflows/*.yaml and their events/inputs/*.json.
func LoadSamples(eventsDir string) ([]Sample, error) {
	files, err := filepath.Glob(filepath.Join(eventsDir, "workflows", "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no sample workflows under %s/workflows", eventsDir)
	}
	var out []Sample
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		wf, err := dsl.Load(body)
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", f, err)
		}
		in, err := os.ReadFile(filepath.Join(eventsDir, "inputs", wf.Document.Name+".json"))
		if err != nil {
			return nil, fmt.Errorf("sample %s: input: %w", f, err)
		}
		out = append(out, Sample{Namespace: wf.Document.Namespace, Name: wf.Document.Name, Body: body, Input: in})
	}
	return out, nil
}

// Mix is n cases cycling through the samples, keyed by run. Insurance claims
// get their own claim ids so that each adjuster decision resumes one case.
func Mix(samples []Sample, n int, tenant, run string) ([]Case, error) {
	cases := make([]Case, 0, n)
	for i := range n {
		s := samples[i%len(samples)]
		in := s.Input
		if s.Name == "insurance-claim" {
			var m map[string]any
			if err := json.Unmarshal(in, &m); err != nil {
				return nil, err
			}
			m["claimId"] = fmt.Sprintf("clm-%s-%d", run, i)
			in, _ = json.Marshal(m)
		}
		key := fmt.Sprintf("%s-%04d", run, i)
		cases = append(cases, Case{Namespace: s.Namespace, Workflow: s.Name, Tenant: tenant, Key: key, Input: in,
			ID: message.CaseID(tenant, s.Namespace, s.Name, key)})
	}
	return cases, nil
}

// Sender puts messages on the work queue.
type Sender interface {
	Send(ctx context.Context, msgs ...queue.Message) error
}

// Submit sends the cases' start messages.
func Submit(ctx context.Context, q Sender, cases []Case) error {
	msgs := make([]queue.Message, 0, len(cases))
	for _, c := range cases {
		msgs = append(msgs, queue.Message{CaseID: c.ID, Body: message.Start{Kind: message.KindStart, Tenant: c.Tenant,
			Workflow: message.WorkflowRef{Namespace: c.Namespace, Name: c.Workflow}, Input: c.Input, IdempotencyKey: c.Key}})
	}
	return q.Send(ctx, msgs...)
}

// Chains reads case chains.
type Chains interface {
	Tail(ctx context.Context, caseID string) (*receipt.Receipt, error)
	Chain(ctx context.Context, caseID string) ([]*receipt.Receipt, []receipt.Finding, error)
}

// Waiting lists the cases of a tenant whose listen tasks wait.
type Waiting interface {
	Subscribers(ctx context.Context, tenant string) ([]string, error)
}

// Outcome is how a case ended.
type Outcome struct {
	Case     Case
	Status   history.Type // the terminal event; empty if the case did not end
	Receipts int
	Findings []receipt.Finding
	Latency  time.Duration // genesis to terminal receipt
}

// pollBudget bounds the chain reads Await makes per tick, so that watching
// a load does not itself load the endpoint (a local emulator serves a few
// hundred requests a second in all).
const pollBudget = 20

// Await polls until every case ended or ctx is done, answering insurance
// claims' adjuster requests with a decision event, and reports progress.
// Each 250 ms tick it reads case tails in submission order while they show
// ended cases (at most pollBudget), and sends the first unfinished case to
// the back: a load in progress costs about one read per tick, and one per
// case as cases end.
func Await(ctx context.Context, cases []Case, chains Chains, waiting Waiting, q Sender, progress func(done, total int)) error {
	open := make([]string, 0, len(cases))
	byID := map[string]Case{}
	for _, c := range cases {
		open = append(open, c.ID)
		byID[c.ID] = c
	}
	answered := map[string]bool{}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for len(open) > 0 {
		for reads := 0; reads < pollBudget && len(open) > 0; reads++ {
			r, err := chains.Tail(ctx, open[0])
			if err != nil {
				return err
			}
			if r == nil || !terminal(r.Type) {
				open = append(open[1:], open[0])
				break
			}
			open = open[1:]
		}
		if err := answerClaims(ctx, cases, byID, answered, waiting, q); err != nil {
			return err
		}
		if progress != nil {
			progress(len(cases)-len(open), len(cases))
		}
		if len(open) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d cases still running: %w", len(open), len(cases), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

func answerClaims(ctx context.Context, cases []Case, byID map[string]Case, answered map[string]bool, waiting Waiting, q Sender) error {
	tenants := map[string]bool{} // those with claims still to answer
	for _, c := range cases {
		if c.Workflow == "insurance-claim" && !answered[c.ID] {
			tenants[c.Tenant] = true
		}
	}
	for tenant := range tenants {
		ids, err := waiting.Subscribers(ctx, tenant)
		if err != nil {
			return err
		}
		var msgs []queue.Message
		for _, id := range ids {
			c, ok := byID[id]
			if !ok || answered[id] || c.Workflow != "insurance-claim" {
				continue
			}
			var in struct {
				ClaimID string `json:"claimId"`
			}
			_ = json.Unmarshal(c.Input, &in)
			ev := standin.AdjusterDecision(in.ClaimID, "decision-"+c.Key)
			ev["knhktenant"] = tenant
			msgs = append(msgs, queue.Message{Body: ev})
			answered[id] = true
		}
		if len(msgs) > 0 {
			if err := q.Send(ctx, msgs...); err != nil {
				return err
			}
		}
	}
	return nil
}

func terminal(t history.Type) bool {
	return t == history.CaseCompleted || t == history.CaseFaulted || t == history.CaseCancelled
}

// Collect reads and verifies every case's chain.
func Collect(ctx context.Context, cases []Case, chains Chains) ([]Outcome, error) {
	out := make([]Outcome, 0, len(cases))
	for _, c := range cases {
		rs, bad, err := chains.Chain(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		o := Outcome{Case: c, Receipts: len(rs) + len(bad), Findings: append(bad, receipt.VerifyChain(rs)...)}
		if n := len(rs); n > 0 && terminal(rs[n-1].Type) {
			o.Status = rs[n-1].Type
			o.Latency = At(rs[n-1]).Sub(At(rs[0]))
		}
		out = append(out, o)
	}
	return out, nil
}

// At is when a receipt's step happened: its end, or its start when it has
// no end.
func At(r *receipt.Receipt) time.Time {
	if !r.Ended.IsZero() {
		return r.Ended
	}
	return r.Started
}

// Row is one line of the summary: a workflow and its cases by status.
type Row struct {
	Workflow                            string
	Completed, Faulted, Cancelled, Open int
	Receipts                            int
}

// Summary is the main job's result.
type Summary struct {
	Rows          []Row
	Cases         int
	Receipts      int
	Verified      int // chains with no finding
	Findings      []receipt.Finding
	P50, P99, Max time.Duration
}

// OK reports whether every case completed and every chain verified.
func (s Summary) OK() bool {
	completed := 0
	for _, r := range s.Rows {
		completed += r.Completed
	}
	return completed == s.Cases && s.Verified == s.Cases && len(s.Findings) == 0
}

// Summarize folds outcomes into the summary, with latency quantiles from a
// DDSketch (1% relative accuracy).
func Summarize(outs []Outcome, extra []receipt.Finding) (Summary, error) {
	sk, err := ddsketch.NewDefaultDDSketch(0.01)
	if err != nil {
		return Summary{}, err
	}
	rows := map[string]*Row{}
	s := Summary{Cases: len(outs), Findings: extra}
	for _, o := range outs {
		r := rows[o.Case.Workflow]
		if r == nil {
			r = &Row{Workflow: o.Case.Workflow}
			rows[o.Case.Workflow] = r
		}
		switch o.Status {
		case history.CaseCompleted:
			r.Completed++
		case history.CaseFaulted:
			r.Faulted++
		case history.CaseCancelled:
			r.Cancelled++
		default:
			r.Open++
		}
		r.Receipts += o.Receipts
		s.Receipts += o.Receipts
		if len(o.Findings) == 0 {
			s.Verified++
		}
		s.Findings = append(s.Findings, o.Findings...)
		if o.Status != "" {
			_ = sk.Add(float64(o.Latency.Microseconds()))
			s.Max = max(s.Max, o.Latency)
		}
	}
	for _, r := range rows {
		s.Rows = append(s.Rows, *r)
	}
	slices.SortFunc(s.Rows, func(a, b Row) int { return strings.Compare(a.Workflow, b.Workflow) })
	if !sk.IsEmpty() {
		qs, err := sk.GetValuesAtQuantiles([]float64{0.5, 0.99})
		if err != nil {
			return s, err
		}
		// The sketch's values are within 1% of the true ones; never above the max.
		s.P50 = min(time.Duration(qs[0])*time.Microsecond, s.Max)
		s.P99 = min(time.Duration(qs[1])*time.Microsecond, s.Max)
	}
	return s, nil
}

// SecretsClient creates and reads secrets.
type SecretsClient interface {
	CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
}

// SeedSecrets stores a demo value for every secret the samples declare
// (use.secrets) under prefix, leaving existing secrets alone, and returns the
// names it created. Only for local endpoints: on AWS, operators store the
// real credentials.
func SeedSecrets(ctx context.Context, sm SecretsClient, prefix string, samples []Sample) ([]string, error) {
	var created []string
	seen := map[string]bool{}
	for _, s := range samples {
		wf, err := dsl.Load(s.Body)
		if err != nil {
			return nil, err
		}
		for _, name := range wf.Use.Secrets {
			if seen[name] {
				continue
			}
			seen[name] = true
			id := prefix + name
			val, _ := json.Marshal(map[string]string{"token": "demo-" + name, "username": "demo", "password": "demo-" + name})
			_, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: &id, SecretString: ptr(string(val)),
				Description: ptr("demo credential for the local sample workflows")})
			var exists *smtypes.ResourceExistsException
			switch {
			case errors.As(err, &exists):
			case err != nil:
				return created, fmt.Errorf("seed secret %s: %w", id, err)
			default:
				created = append(created, id)
			}
		}
	}
	return created, nil
}

func ptr(s string) *string { return &s }
