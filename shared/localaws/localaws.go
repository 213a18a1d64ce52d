// Package localaws starts and addresses the embedded local AWS endpoint
// (moto server) for tests and local tools, and builds AWS SDK configurations
// that point at it.
package localaws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region is the region used against the local endpoint.
const Region = "us-east-1"

// Endpoint is a running local AWS endpoint.
type Endpoint struct {
	URL string
	cmd *exec.Cmd
	log string
}

// AccessKey is the access key id of Config's credentials: the local
// principal of tools and tests.
const AccessKey = "test"

// Config returns an SDK configuration bound to the endpoint with static local
// credentials.
func (e *Endpoint) Config(ctx context.Context) (aws.Config, error) {
	return e.ConfigAs(ctx, AccessKey)
}

// ConfigAs returns a configuration signing with another access key id. The
// endpoint reports a key it did not issue as its own principal (SQS
// SenderId, STS GetCallerIdentity UserId), so each key is a distinct sender.
func (e *Endpoint) ConfigAs(ctx context.Context, accessKey string) (aws.Config, error) {
	return config.LoadDefaultConfig(ctx,
		config.WithRegion(Region),
		config.WithBaseEndpoint(e.URL),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(accessKey, "test", "")),
		config.WithRetryMaxAttempts(5),
	)
}

// Reset empties the endpoint's state.
func (e *Endpoint) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL+"/moto-api/reset", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reset local endpoint: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("reset local endpoint: status %d", resp.StatusCode)
	}
	return nil
}

// Stop ends the endpoint process if this package started it.
func (e *Endpoint) Stop() error {
	if e.cmd == nil || e.cmd.Process == nil {
		return nil
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- e.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = e.cmd.Process.Kill()
		<-done
	}
	e.cmd = nil
	return nil
}

// RepoRoot finds the repository root: the nearest folder above the working
// directory that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod) not found above the working directory")
		}
		dir = parent
	}
}

// launcher finds the project's endpoint launcher and the virtualenv's
// Python.
func launcher() (python, script string, err error) {
	root, err := RepoRoot()
	if err != nil {
		return "", "", err
	}
	python = filepath.Join(root, ".venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		return "", "", errors.New("the endpoint's virtualenv is missing: run `make deps`")
	}
	return python, filepath.Join(root, "localstack", "endpoint.py"), nil
}

// Start launches the endpoint (localstack/endpoint.py: moto with atomic
// conditional writes) on a free loopback port and waits until it
// answers. The caller must Stop it.
func Start(ctx context.Context) (*Endpoint, error) {
	python, script, err := launcher()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.CreateTemp("", "knhk-moto-*.log")
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(python, script, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto server: %w", err)
	}
	e := &Endpoint{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, log: logf.Name()}
	if err := e.waitReady(ctx, 30*time.Second); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

// StartT starts an endpoint for a test, or reuses the one named by
// KNHK_TEST_ENDPOINT, and stops it when the test ends.
func StartT(t testing.TB) *Endpoint {
	t.Helper()
	if u := os.Getenv("KNHK_TEST_ENDPOINT"); u != "" {
		return &Endpoint{URL: u}
	}
	e, err := Start(context.Background())
	if err != nil {
		t.Fatalf("local endpoint: %v", err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	return e
}

func (e *Endpoint) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := http.Get(e.URL + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	out, _ := os.ReadFile(e.log)
	return fmt.Errorf("local endpoint %s not ready after %s: %s", e.URL, limit, out)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
