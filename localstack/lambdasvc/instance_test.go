package lambdasvc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func busyInstance(h *harness) (int, bool) {
	for _, fs := range h.svc.Status() {
		for _, in := range fs.Instances {
			if in.Busy {
				return in.PID, true
			}
		}
	}
	return 0, false
}

// runningCopies counts the processes executing the binary at path.
func runningCopies(path string) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && sameFile(exe, path) {
			n++
		}
	}
	return n
}

func TestKilledInstanceRestartsAndBatchIsRedelivered(t *testing.T) {
	h := startHarness(t, func(st *Stack, c *Config) {
		onlyQueues(st, c)
		st.Queues[0].MaxConcurrency = 1
	})
	work := h.physicalID("WorkQueue")
	h.send(work, "hang-once")
	var pid int
	h.eventually(20*time.Second, "invocation in flight", func() bool {
		var ok bool
		pid, ok = busyInstance(h)
		return ok
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.eventually(30*time.Second, "redelivery handled", func() bool { return len(sqsBatches(h.observations())) == 1 })
	ev := sqsBatches(h.observations())[0]
	if got := ev.Records[0].Attributes["ApproximateReceiveCount"]; got != "2" {
		t.Errorf("redelivered message has receive count %s, want 2", got)
	}
	st := h.svc.Status()[0]
	if st.Restarts < 1 {
		t.Errorf("restarts = %d, want at least 1", st.Restarts)
	}
	for _, in := range st.Instances {
		if in.PID == pid {
			t.Errorf("killed instance %d still listed", pid)
		}
	}
	// The hung runtime of the killed instance was ended too: only the new
	// instance's runtime runs the function binary.
	bin := h.stack.Functions["SvcTest-Fn"].Binary
	if n := runningCopies(bin); n != 1 {
		t.Errorf("%d copies of the function run, want 1", n)
	}
	h.stop()
	if n := runningCopies(bin); n != 0 {
		t.Errorf("%d copies of the function run after stop, want 0", n)
	}
}

func TestShutdownFinishesInFlightInvocation(t *testing.T) {
	h := startHarness(t, onlyQueues)
	work := h.physicalID("WorkQueue")
	h.send(work, "sleep:1500")
	h.eventually(20*time.Second, "invocation in flight", func() bool { _, ok := busyInstance(h); return ok })
	var pids []int
	for _, in := range h.svc.Status()[0].Instances {
		pids = append(pids, in.PID)
	}
	h.stop()
	if n := len(sqsBatches(h.observations())); n != 1 {
		t.Fatalf("%d invocations completed, want the in-flight one", n)
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("instance %d still runs after shutdown", pid)
		}
	}
	// The in-flight batch succeeded, so it was deleted: nothing reappears.
	time.Sleep(2500 * time.Millisecond)
	out, err := h.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(work),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	if a := out.Attributes; a["ApproximateNumberOfMessages"] != "0" || a["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Errorf("queue after shutdown: %v", fmt.Sprint(a))
	}
}

// runningPIDs lists the processes executing the binary at path.
func runningPIDs(path string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && sameFile(exe, path) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestRuntimeDeadWhileIdleIsReplacedBeforeTheNextBatch kills the runtime of
// an idle instance (its emulator stays up): the health check replaces the
// instance before it is handed the next batch, which is then served on its
// first delivery instead of failing or timing out first.
func TestRuntimeDeadWhileIdleIsReplacedBeforeTheNextBatch(t *testing.T) {
	h := startHarness(t, func(st *Stack, c *Config) {
		onlyQueues(st, c)
		st.Queues[0].MaxConcurrency = 1
	})
	work := h.physicalID("WorkQueue")
	bin := h.stack.Functions["SvcTest-Fn"].Binary
	h.send(work, "ok-1")
	h.eventually(20*time.Second, "first batch handled", func() bool { return len(sqsBatches(h.observations())) == 1 })
	h.eventually(20*time.Second, "instance idle", func() bool { _, busy := busyInstance(h); return !busy })
	pids := runningPIDs(bin)
	if len(pids) != 1 {
		t.Fatalf("%d runtimes run the function, want 1", len(pids))
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.eventually(10*time.Second, "runtime gone", func() bool { return len(runningPIDs(bin)) == 0 })
	before := h.svc.Status()[0].Restarts
	h.send(work, "ok-2")
	h.eventually(30*time.Second, "second batch handled", func() bool { return len(sqsBatches(h.observations())) == 2 })
	ev := sqsBatches(h.observations())[1]
	if got := ev.Records[0].Attributes["ApproximateReceiveCount"]; got != "1" {
		t.Errorf("the batch after the runtime died was received %s times, want 1 (served by a healthy instance)", got)
	}
	if st := h.svc.Status()[0]; st.Restarts != before+1 {
		t.Errorf("restarts %d -> %d, want one replacement", before, st.Restarts)
	}
}
