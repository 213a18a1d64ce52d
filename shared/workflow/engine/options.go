package engine

import (
	"context"

	"github.com/knhk/knhk/shared/workflow/dsl"
)

// DefaultStepBudget bounds the task executions one stimulus may cause.
const DefaultStepBudget = 10000

// RuntimeVersion is reported to expressions as $runtime.version.
const RuntimeVersion = "1.0.0"

// Registry resolves the workflows that `run: workflow` tasks start.
type Registry interface {
	Workflow(ctx context.Context, namespace, name, version string) (*dsl.Workflow, error)
}

// Options configure a decision.
type Options struct {
	// StepBudget bounds new task executions per stimulus (0: DefaultStepBudget).
	StepBudget int
	// Secrets are the values of the secrets the workflow declares under
	// use.secrets, by name; undeclared names are hidden from expressions.
	Secrets map[string]any
	// Registry resolves sub-workflows; nil makes `run: workflow` a
	// configuration error.
	Registry Registry
	// SensitiveHeaders are header names redacted from recorded events in
	// addition to redact.DefaultHeaders. Every value of Secrets is redacted
	// too (docs/receipts.md, "Secrets").
	SensitiveHeaders []string
}
