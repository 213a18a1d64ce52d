package telemetry_test

import (
	"os/exec"
	"strings"
	"testing"
)

// corePackages are the functional core: they must build without
// OpenTelemetry (tracing lives in the shell around them).
var corePackages = []string{
	"github.com/knhk/knhk/shared/workflow/engine/...",
	"github.com/knhk/knhk/shared/workflow/dsl/...",
	"github.com/knhk/knhk/shared/workflow/expr/...",
	"github.com/knhk/knhk/shared/receipt/...",
	"github.com/knhk/knhk/shared/history/...",
	"github.com/knhk/knhk/shared/message/...",
}

func TestCoreHasNoOpenTelemetry(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, corePackages...)
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < len(corePackages) {
		t.Fatalf("go list named %d packages: %s", len(deps), out)
	}
	sawCore := false
	for _, d := range deps {
		if strings.HasPrefix(d, "go.opentelemetry.io/") || d == "github.com/knhk/knhk/shared/telemetry" ||
			d == "github.com/knhk/knhk/shared/handler" {
			t.Errorf("the core depends on %s", d)
		}
		sawCore = sawCore || d == "github.com/knhk/knhk/shared/workflow/engine"
	}
	if !sawCore {
		t.Fatal("the engine is not among the listed packages")
	}
}
