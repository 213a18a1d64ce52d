package stack

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	flat := filepath.Join(dir, "flat.json")
	cdk := filepath.Join(dir, "cdk.json")
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(flat, []byte(`{"ReceiptsTableName":"r1","StateTableName":"s1","WorkQueueUrl":"q1"}`), 0o600)
	os.WriteFile(cdk, []byte(`{"KnhkStack":{"ReceiptsTableName":"r2","StateTableName":"s2","CheckpointKeyId":"k2"}}`), 0o600)
	os.WriteFile(bad, []byte(`{"ReceiptsTableName":7}`), 0o600)

	r, err := Resolve(flat)
	if err != nil || r.ReceiptsTable != "r1" || r.StateTable != "s1" || r.WorkQueueURL != "q1" {
		t.Fatalf("flat outputs: %+v %v", r, err)
	}
	r, err = Resolve(cdk)
	if err != nil || r.ReceiptsTable != "r2" || r.CheckpointKeyID != "k2" {
		t.Fatalf("cdk outputs file: %+v %v", r, err)
	}
	t.Setenv("KNHK_STATE_TABLE", "from-env")
	if r, _ := Resolve(cdk); r.StateTable != "from-env" {
		t.Fatalf("environment must override the file: %+v", r)
	}
	if _, err := Resolve(bad); err == nil {
		t.Fatal("a malformed outputs file was accepted")
	}
	if r, err := Resolve(filepath.Join(dir, "missing.json")); err != nil || r.ReceiptsTable != "" {
		t.Fatalf("a missing file must resolve from the environment only: %+v %v", r, err)
	}
}
