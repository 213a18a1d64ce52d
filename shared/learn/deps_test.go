package learn_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreIsPure keeps the loop's core free of the shell: no AWS SDK, no
// OpenTelemetry, no telemetry or handler package.
func TestCoreIsPure(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/knhk/knhk/shared/learn").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 || deps[len(deps)-1] != "github.com/knhk/knhk/shared/learn" {
		t.Fatalf("go list did not list the package: %s", out)
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "go.opentelemetry.io/") || strings.HasPrefix(d, "github.com/aws/") ||
			d == "github.com/knhk/knhk/shared/telemetry" || d == "github.com/knhk/knhk/shared/handler" {
			t.Errorf("the learning core depends on %s", d)
		}
	}
}
