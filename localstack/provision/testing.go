package provision

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/knhk/knhk/shared/localaws"
)

// TemplateEnv overrides where DeployForTest finds the synthesized template.
const TemplateEnv = "KNHK_TEMPLATE"

// DefaultTemplate is the synthesized template's path relative to the repo root.
const DefaultTemplate = "infra/cdk.out/KnhkStack.template.json"

// TemplatePath locates the synthesized template: $KNHK_TEMPLATE, else
// DefaultTemplate under the repository root found by walking up from the
// working directory to the directory holding go.mod.
func TemplatePath() (string, error) {
	if p := os.Getenv(TemplateEnv); p != "" {
		return p, nil
	}
	root, err := localaws.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, DefaultTemplate), nil
}

// DeployForTest deploys the synthesized stack onto a test endpoint and
// returns its outputs. It fails the test when the template is missing (run
// `make synth`) or the deploy fails.
func DeployForTest(t testing.TB, ep *localaws.Endpoint) Outputs {
	t.Helper()
	path, err := TemplatePath()
	if err != nil {
		t.Fatalf("locate stack template: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stack template %s not found: run `make synth` (or set %s): %v", path, TemplateEnv, err)
	}
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatalf("endpoint config: %v", err)
	}
	outs, err := Deploy(ctx, cfg, path, Options{})
	if err != nil {
		t.Fatalf("deploy %s: %v", path, err)
	}
	return outs
}
