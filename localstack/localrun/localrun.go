// Package localrun brings the whole KNHK stack up on a local AWS endpoint:
// it provisions the synthesized template, serves the sample workflows'
// stand-in services on loopback, and runs the stack's Lambda functions under
// the local Lambda service. `knhk run` and the end-to-end suite use it.
package localrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/knhk/knhk/localstack/lambdasvc"
	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/localstack/standin"
)

// Config says where the stack's files are.
type Config struct {
	AWS          aws.Config // bound to the local endpoint (BaseEndpoint set)
	TemplatePath string     // infra/cdk.out/KnhkStack.template.json
	StatePath    string     // provision state file (.local/stack-state.json)
	OutputsPath  string     // stack outputs file (.local/outputs.json)
	LogDir       string     // functions' logs (.local/logs)
	HostDir      string     // host builds of the functions (build/host)
	RIE          string     // emulator binary (default: lambdasvc.FindRIE)
	// Concurrency caps the instances of each function (default 4).
	Concurrency int
	Logger      *slog.Logger
}

// Env is a running local stack.
type Env struct {
	Outputs  provision.Outputs
	Services string            // stand-in services' address
	Standin  *standin.Services // the stand-ins, with their request and effect counts
	Lambda   *lambdasvc.Service

	cancel context.CancelFunc
	done   chan error
	srv    *http.Server
}

// Up provisions the stack (idempotent), starts the stand-in services and the
// local Lambda service, and returns once functions are being served.
func Up(ctx context.Context, cfg Config) (*Env, error) {
	if cfg.AWS.BaseEndpoint == nil || *cfg.AWS.BaseEndpoint == "" {
		return nil, errors.New("localrun: the AWS configuration names no local endpoint")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d, err := provision.DeployFile(ctx, cfg.AWS, cfg.TemplatePath, provision.Options{OutputsFile: cfg.OutputsPath, StateFile: cfg.StatePath})
	if err != nil {
		return nil, fmt.Errorf("localrun: deploy: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("localrun: stand-in services: %w", err)
	}
	e := &Env{Outputs: d.Outputs, Services: l.Addr().String(), Standin: standin.New(), done: make(chan error, 1)}
	e.srv = &http.Server{Handler: e.Standin, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = e.srv.Serve(l) }()
	svc, err := lambdasvc.New(lambdasvc.Config{
		TemplatePath: cfg.TemplatePath, StatePath: cfg.StatePath, LogDir: cfg.LogDir, AWS: cfg.AWS, RIE: cfg.RIE,
		StackOptions:       lambdasvc.StackOptions{AssetDir: filepath.Dir(cfg.TemplatePath), HostDir: cfg.HostDir},
		DefaultConcurrency: cfg.Concurrency, MaxConcurrency: cfg.Concurrency,
		Env:    map[string]string{"KNHK_HTTP_HOST_MAP": strings.TrimPrefix(standin.Domain, ".") + "=" + e.Services},
		Logger: cfg.Logger,
	})
	if err != nil {
		_ = e.srv.Close()
		return nil, fmt.Errorf("localrun: %w", err)
	}
	if len(svc.Stack().Functions) == 0 {
		_ = e.srv.Close()
		return nil, errors.New("localrun: no function of the template can run here (run `make build`)")
	}
	e.Lambda = svc
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	go func() { e.done <- svc.Run(runCtx) }()
	return e, nil
}

// Close stops the Lambda service (in-flight invocations finish) and the
// stand-in services.
func (e *Env) Close() error {
	e.cancel()
	err := <-e.done
	_ = e.srv.Close()
	return err
}
