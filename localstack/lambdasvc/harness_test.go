package lambdasvc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/shared/localaws"
)

// rieVersion is the emulator the Makefile installs.
const rieVersion = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"

var (
	buildOnce sync.Once
	hostDir   string
	rieBin    string
	buildErr  error
	rieErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if hostDir != "" {
		_ = os.RemoveAll(hostDir)
	}
	os.Exit(code)
}

// tools builds the test function into a host build folder and finds (or
// builds) the emulator; it skips the test when the emulator is missing and
// cannot be built.
func tools(t testing.TB) (string, string) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lambdasvc-build-")
		if err != nil {
			buildErr = err
			return
		}
		hostDir = dir
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "fn"), "./testdata/fn").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build test function: %v: %s", err, out)
			return
		}
		if rieBin, rieErr = FindRIE(); rieErr != nil {
			cmd := exec.Command("go", "install", rieVersion)
			cmd.Env = append(os.Environ(), "GOBIN="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				rieErr = fmt.Errorf("%v; building it failed: %v: %s", rieErr, err, out)
				return
			}
			rieBin, rieErr = filepath.Join(dir, "aws-lambda-rie"), nil
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if rieErr != nil {
		t.Skipf("Lambda runtime interface emulator unavailable: %v", rieErr)
	}
	return hostDir, rieBin
}

// harness is a deployed test stack and a running service.
type harness struct {
	t       *testing.T
	cfg     aws.Config
	stack   *Stack
	svc     *Service
	observe string
	logDir  string
	sqs     *sqs.Client
	stop    func()
}

// startHarness deploys testdata/stack.template.json on a fresh local
// endpoint, lets mutate adjust the stack and options, and runs the service.
func startHarness(t *testing.T, mutate func(*Stack, *Config)) *harness {
	t.Helper()
	host, rie := tools(t)
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "stack-state.json")
	if _, err := provision.DeployFile(ctx, cfg, "testdata/stack.template.json", provision.Options{StackName: "SvcTest", StateFile: state}); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	st, err := LoadStack("testdata/stack.template.json", state, StackOptions{HostDir: host})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, cfg: cfg, stack: st, observe: filepath.Join(dir, "observe.jsonl"), logDir: filepath.Join(dir, "logs"), sqs: sqs.NewFromConfig(cfg)}
	c := Config{Stack: st, AWS: cfg, RIE: rie, LogDir: h.logDir, MaxWait: 1, RetryDelay: 100 * time.Millisecond,
		StreamPollInterval: 100 * time.Millisecond, MetricsInterval: 300 * time.Millisecond, IteratorAgeInterval: 500 * time.Millisecond,
		Env: map[string]string{"OBSERVE_FILE": h.observe}, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	if mutate != nil {
		mutate(st, &c)
	}
	svc, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Errorf("service did not stop")
			}
		})
	}
	t.Cleanup(h.stop)
	h.waitRunning()
	return h
}

func (h *harness) waitRunning() {
	h.t.Helper()
	h.eventually(30*time.Second, "instances started", func() bool {
		st := h.svc.Status()
		return len(st) > 0 && len(st[0].Instances) > 0
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func (h *harness) eventually(limit time.Duration, what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// observation is one invocation as the test function records it.
type observation struct {
	PID      int               `json:"pid"`
	Function string            `json:"function"`
	Start    int64             `json:"start"`
	End      int64             `json:"end"`
	Event    json.RawMessage   `json:"event"`
	Env      map[string]string `json:"env"`
}

func (h *harness) observations() []observation {
	f, err := os.Open(h.observe)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []observation
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var o observation
		if json.Unmarshal(sc.Bytes(), &o) == nil {
			out = append(out, o)
		}
	}
	return out
}

// physicalID returns a deployed resource's physical id (a queue URL, a table
// name) from the state file.
func (h *harness) physicalID(logicalID string) string {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(h.observe), "stack-state.json"))
	if err != nil {
		h.t.Fatal(err)
	}
	var d provision.Deployment
	if err := json.Unmarshal(b, &d); err != nil {
		h.t.Fatal(err)
	}
	return d.Resources[logicalID].PhysicalID
}

func (h *harness) send(url string, bodies ...string) {
	h.t.Helper()
	for i := 0; i < len(bodies); i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j, b := range bodies[i:min(i+10, len(bodies))] {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String(b),
				MessageAttributes: map[string]sqstypes.MessageAttributeValue{"traceparent": {DataType: aws.String("String"), StringValue: aws.String("00-abc-def-01")}}})
		}
		if _, err := h.sqs.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); err != nil {
			h.t.Fatal(err)
		}
	}
}

// drain receives every visible message of a queue (and deletes it).
func (h *harness) drain(url string) []sqstypes.Message {
	h.t.Helper()
	var out []sqstypes.Message
	for {
		r, err := h.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			h.t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			return out
		}
		for _, m := range r.Messages {
			out = append(out, m)
			_, _ = h.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
		}
	}
}

// onlyQueues keeps the queue mapping and drops the other triggers.
func onlyQueues(st *Stack, _ *Config) { st.Streams, st.Schedules = nil, nil }
