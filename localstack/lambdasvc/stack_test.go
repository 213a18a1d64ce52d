package lambdasvc

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/knhk/knhk/localstack/provision"
)

// testState is a deployment record as the provisioner writes it for the
// test template.
func testState() *provision.Deployment {
	return &provision.Deployment{Stack: "SvcTest", Region: "us-east-1", Account: "123456789012", Resources: map[string]provision.StateRecord{
		"WorkQueue":       {Type: "AWS::SQS::Queue", PhysicalID: "http://local/123456789012/work", Attributes: map[string]any{"Arn": "arn:aws:sqs:us-east-1:123456789012:work"}},
		"DeadLetterQueue": {Type: "AWS::SQS::Queue", PhysicalID: "http://local/123456789012/dlq", Attributes: map[string]any{"Arn": "arn:aws:sqs:us-east-1:123456789012:dlq"}},
		"FailureQueue":    {Type: "AWS::SQS::Queue", PhysicalID: "http://local/123456789012/fail", Attributes: map[string]any{"Arn": "arn:aws:sqs:us-east-1:123456789012:fail"}},
		"Table":           {Type: "AWS::DynamoDB::Table", PhysicalID: "tbl", Attributes: map[string]any{"Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/tbl", "StreamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/tbl/stream/x"}},
	}}
}

// fakeELF writes a minimal ELF executable header for machine m.
func fakeELF(t *testing.T, path string, m elf.Machine) {
	t.Helper()
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	le := binary.LittleEndian
	for _, v := range []any{uint16(elf.ET_EXEC), uint16(m), uint32(1), uint64(0), uint64(0), uint64(0), uint32(0),
		uint16(64), uint16(56), uint16(0), uint16(64), uint16(0), uint16(0)} {
		_ = binary.Write(&b, le, v)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
}

func otherMachine() elf.Machine {
	if runtime.GOARCH == "arm64" {
		return elf.EM_X86_64
	}
	return elf.EM_AARCH64
}

func hostMachine() elf.Machine {
	if runtime.GOARCH == "arm64" {
		return elf.EM_AARCH64
	}
	return elf.EM_X86_64
}

func TestParseStack(t *testing.T) {
	tpl, err := os.ReadFile("testdata/stack.template.json")
	if err != nil {
		t.Fatal(err)
	}
	assets, host := t.TempDir(), t.TempDir()
	// The asset holds an arm64 bootstrap (not runnable here): the host
	// build named by knhk:function is used instead.
	fakeELF(t, filepath.Join(assets, "asset.0123456789abcdef", "bootstrap"), otherMachine())
	fakeELF(t, filepath.Join(host, "fn"), hostMachine())
	s, err := ParseStack(tpl, testState(), StackOptions{AssetDir: assets, HostDir: host})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Notes) != 0 {
		t.Errorf("notes: %v", s.Notes)
	}
	f := s.Functions["SvcTest-Fn"]
	if f == nil {
		t.Fatalf("functions %v", s.Functions)
	}
	if f.Binary != filepath.Join(host, "fn") || f.Source != "fn" || f.MemorySize != 256 || f.Timeout != 5 ||
		f.ARN != "arn:aws:lambda:us-east-1:123456789012:function:SvcTest-Fn" {
		t.Errorf("function %+v", f)
	}
	if f.Env["TABLE_NAME"] != "tbl" || f.Env["QUEUE_URL"] != "http://local/123456789012/work" {
		t.Errorf("environment %v", f.Env)
	}
	wantQ := QueueMapping{LogicalID: "QueueMapping", Function: "SvcTest-Fn", QueueARN: "arn:aws:sqs:us-east-1:123456789012:work", BatchSize: 5, MaxConcurrency: 2, ReportFailures: true}
	if len(s.Queues) != 1 || s.Queues[0] != wantQ {
		t.Errorf("queues %+v, want %+v", s.Queues, wantQ)
	}
	wantS := StreamMapping{LogicalID: "StreamMapping", Function: "SvcTest-Fn", StreamARN: "arn:aws:dynamodb:us-east-1:123456789012:table/tbl/stream/x",
		StartingPosition: "TRIM_HORIZON", BatchSize: 4, Bisect: true, MaxRetryAttempts: 1, MaxRecordAge: 3600,
		OnFailureARN: "arn:aws:sqs:us-east-1:123456789012:fail", Parallelization: 1}
	if len(s.Streams) != 1 || s.Streams[0] != wantS {
		t.Errorf("streams %+v, want %+v", s.Streams, wantS)
	}
	if len(s.Schedules) != 1 || s.Schedules[0].Expression != "rate(1 minute)" || !slices.Equal(s.Schedules[0].Targets, []string{"SvcTest-Fn"}) ||
		s.Schedules[0].RuleARN != "arn:aws:events:us-east-1:123456789012:rule/SvcTest-Tick" {
		t.Errorf("schedules %+v", s.Schedules)
	}

	// A runnable asset bootstrap is preferred to the host build.
	fakeELF(t, filepath.Join(assets, "asset.0123456789abcdef", "bootstrap"), hostMachine())
	s, err = ParseStack(tpl, testState(), StackOptions{AssetDir: assets, HostDir: host})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Functions["SvcTest-Fn"].Binary; got != filepath.Join(assets, "asset.0123456789abcdef", "bootstrap") {
		t.Errorf("binary %s, want the asset's bootstrap", got)
	}
}

func TestParseStackNotesUnhonouredProperties(t *testing.T) {
	var tpl map[string]any
	b, err := os.ReadFile("testdata/stack.template.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &tpl); err != nil {
		t.Fatal(err)
	}
	res := tpl["Resources"].(map[string]any)
	res["QueueMapping"].(map[string]any)["Properties"].(map[string]any)["FilterCriteria"] = map[string]any{"Filters": []any{}}
	res["StreamMapping"].(map[string]any)["Properties"].(map[string]any)["ParallelizationFactor"] = 4
	b, _ = json.Marshal(tpl)
	host := t.TempDir()
	fakeELF(t, filepath.Join(host, "fn"), hostMachine())
	s, err := ParseStack(b, testState(), StackOptions{AssetDir: t.TempDir(), HostDir: host})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(s.Notes, "\n")
	for _, want := range []string{"QueueMapping: properties not applied locally: FilterCriteria", "StreamMapping: properties not applied locally: ParallelizationFactor"} {
		if !strings.Contains(joined, want) {
			t.Errorf("notes lack %q:\n%s", want, joined)
		}
	}
	if len(s.Queues) != 1 || len(s.Streams) != 1 {
		t.Errorf("mappings with unhonoured properties should still run: %+v", s)
	}
}

func TestParseStackWithoutBinaryLeavesFunctionOut(t *testing.T) {
	tpl, err := os.ReadFile("testdata/stack.template.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseStack(tpl, testState(), StackOptions{AssetDir: t.TempDir(), HostDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Functions) != 0 || len(s.Queues) != 0 || len(s.Streams) != 0 || len(s.Schedules) != 0 {
		t.Errorf("stack runs something without a binary: %+v", s)
	}
	joined := strings.Join(s.Notes, "\n")
	for _, want := range []string{"function Fn not run", "QueueMapping not run", "StreamMapping not run", "Tick not run"} {
		if !strings.Contains(joined, want) {
			t.Errorf("notes lack %q:\n%s", want, joined)
		}
	}
}

func TestParseStackNeedsDeployedResources(t *testing.T) {
	tpl, err := os.ReadFile("testdata/stack.template.json")
	if err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	fakeELF(t, filepath.Join(host, "fn"), hostMachine())
	st := testState()
	delete(st.Resources, "Table")
	s, err := ParseStack(tpl, st, StackOptions{AssetDir: t.TempDir(), HostDir: host})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Functions) != 0 || !strings.Contains(strings.Join(s.Notes, "\n"), "Ref Table") {
		t.Errorf("a function whose environment refers to an undeployed table was kept: %+v", s)
	}
	if _, err := ParseStack(tpl, &provision.Deployment{}, StackOptions{}); err == nil {
		t.Error("empty state accepted")
	}
	if _, err := ParseStack([]byte("{"), testState(), StackOptions{}); err == nil {
		t.Error("malformed template accepted")
	}
}
