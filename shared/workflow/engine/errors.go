package engine

import (
	"fmt"
	"strings"

	"github.com/knhk/knhk/shared/history"
)

// DSL error types (Serverless Workflow DSL 1.0, "standard error types").
const (
	ErrConfiguration  = "https://serverlessworkflow.io/spec/1.0.0/errors/configuration"
	ErrValidation     = "https://serverlessworkflow.io/spec/1.0.0/errors/validation"
	ErrExpression     = "https://serverlessworkflow.io/spec/1.0.0/errors/expression"
	ErrAuthentication = "https://serverlessworkflow.io/spec/1.0.0/errors/authentication"
	ErrAuthorization  = "https://serverlessworkflow.io/spec/1.0.0/errors/authorization"
	ErrTimeout        = "https://serverlessworkflow.io/spec/1.0.0/errors/timeout"
	ErrCommunication  = "https://serverlessworkflow.io/spec/1.0.0/errors/communication"
	ErrRuntime        = "https://serverlessworkflow.io/spec/1.0.0/errors/runtime"
)

var defaultStatus = map[string]int{
	ErrConfiguration:  400,
	ErrValidation:     400,
	ErrExpression:     400,
	ErrAuthentication: 401,
	ErrAuthorization:  403,
	ErrTimeout:        408,
	ErrCommunication:  500,
	ErrRuntime:        500,
}

// Problem builds a DSL error of the given standard type raised at instance.
func Problem(typ, instance, format string, args ...any) *history.Error {
	title := typ[strings.LastIndex(typ, "/")+1:]
	return &history.Error{
		Type:     typ,
		Status:   defaultStatus[typ],
		Title:    strings.ToUpper(title[:1]) + title[1:] + " Error",
		Detail:   fmt.Sprintf(format, args...),
		Instance: instance,
	}
}

// standardKind returns the last path segment of a serverlessworkflow.io
// error type URI (e.g. "communication"), or "" for other URIs. Older drafts
// of the specification and its conformance kit spell the standard types
// differently (.../dsl/errors/types/communication); filters compare the
// standard types by this kind so every spelling matches.
func standardKind(typ string) string {
	const host = "https://serverlessworkflow.io/"
	if !strings.HasPrefix(typ, host) || !strings.Contains(typ, "/errors/") {
		return ""
	}
	k := typ[strings.LastIndex(typ, "/")+1:]
	if _, ok := defaultStatus["https://serverlessworkflow.io/spec/1.0.0/errors/"+k]; ok {
		return k
	}
	return ""
}

// sameErrorType reports whether two error type URIs name the same type.
func sameErrorType(a, b string) bool {
	if a == b {
		return true
	}
	ka, kb := standardKind(a), standardKind(b)
	return ka != "" && ka == kb
}

// limitProblem is the error of a value over one of KNHK's limits
// (a *limits.Error): a runtime error with status 413 naming the limit.
func limitProblem(instance string, err error) *history.Error {
	return &history.Error{Type: ErrRuntime, Status: 413, Title: "Limit Exceeded", Detail: err.Error(), Instance: instance}
}

// redactEvent removes secret values and sensitive headers from everything
// an event records: payloads and error texts.
func (w *walker) redactEvent(e *history.Event) {
	if w.red.Empty() {
		return
	}
	e.Input, _ = w.red.JSON(e.Input)
	e.Output, _ = w.red.JSON(e.Output)
	e.Data, _ = w.red.JSON(e.Data)
	if e.Error != nil {
		er := *e.Error
		er.Title, er.Detail, er.Instance = w.red.String(er.Title), w.red.String(er.Detail), w.red.String(er.Instance)
		e.Error = &er
	}
}
