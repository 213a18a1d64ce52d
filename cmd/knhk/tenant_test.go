package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/shared/localaws"
)

// TestTenantCommands grants, lists and revokes on a local stack, refuses
// malformed principals and tenants, and claims namespaces on push.
func TestTenantCommands(t *testing.T) {
	ep := localaws.StartT(t)
	outs := provision.DeployForTest(t, ep)
	outFile := filepath.Join(t.TempDir(), "outputs.json")
	b, _ := json.Marshal(outs)
	if err := os.WriteFile(outFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": ep.URL, "AWS_REGION": localaws.Region,
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"} {
		t.Setenv(k, v)
	}
	for _, bad := range [][]string{
		{"--principal", "AROAEXAMPLE:session", "--tenant", "acme"},
		{"--principal", "", "--tenant", "acme"},
		{"--principal", "AROAEXAMPLE", "--tenant", "a b"},
	} {
		if _, _, code := run(t, append([]string{"tenant", "grant", "--outputs", outFile}, bad...)...); code != 2 {
			t.Errorf("grant %v exited %d, want 2", bad, code)
		}
	}
	if out, errOut, code := run(t, "tenant", "grant", "--principal", "AROAEXAMPLE", "--tenant", "acme", "--outputs", outFile); code != 0 || out != "grant AROAEXAMPLE acme\n" {
		t.Fatalf("grant: %d %q %q", code, out, errOut)
	}
	if out, _, code := run(t, "tenant", "list", "--outputs", outFile); code != 0 || !strings.Contains(out, "AROAEXAMPLE  acme") {
		t.Fatalf("list: %d %q", code, out)
	}
	if _, _, code := run(t, "tenant", "revoke", "--principal", "AROAEXAMPLE", "--tenant", "acme", "--outputs", outFile); code != 0 {
		t.Fatalf("revoke exited %d", code)
	}
	if out, _, code := run(t, "tenant", "list", "--outputs", outFile); code == 0 || strings.Contains(out, "AROAEXAMPLE") {
		t.Fatalf("list after revoke: %d %q", code, out)
	}
	// The first push claims the namespace for its tenant; another tenant's
	// push into it is refused.
	doc := filepath.Join("..", "..", "events", "workflows", "order-routing.yaml")
	if _, errOut, code := run(t, "workflow", "push", doc, "--tenant", "acme", "--outputs", outFile); code != 0 {
		t.Fatalf("push as acme: %d %q", code, errOut)
	}
	if _, _, code := run(t, "workflow", "push", doc, "--tenant", "globex", "--outputs", outFile); code != 2 {
		t.Fatalf("push as globex into acme's namespace exited %d, want 2", code)
	}
}
