package sla

import (
	"strings"

	"github.com/knhk/knhk/shared/history"
)

// timeoutType is the DSL's standard timeout error type.
const timeoutType = "https://serverlessworkflow.io/spec/1.0.0/errors/timeout"

// OutcomeOf classifies a case by its terminal receipt's type and error. It
// follows HTTP's split of blame, which the DSL's error statuses carry:
//   - case.completed is Completed;
//   - a fault of the DSL's timeout type, or status 408 or 504, is TimedOut;
//   - a fault with status 500 or above (the runtime and communication errors
//     of the platform or of a dependency that failed, or a status the
//     workflow gave a raised error to say exactly that) is PlatformFaulted;
//   - any other fault (status below 500: validation, expression,
//     authorization, a business error raised by the workflow or returned by
//     a called service) is the workflow's own answer, WorkflowFaulted;
//   - a fault without status is PlatformFaulted: nothing says it was meant.
//
// ok is false for a cancelled case or a type that does not end one: a
// cancellation is neither served nor failed and is not counted.
func OutcomeOf(t history.Type, e *history.Error) (o Outcome, ok bool) {
	switch t {
	case history.CaseCompleted:
		return Completed, true
	case history.CaseFaulted:
	default:
		return 0, false
	}
	switch {
	case e == nil || e.Status == 0 && !strings.EqualFold(e.Type, timeoutType):
		return PlatformFaulted, true
	case strings.EqualFold(e.Type, timeoutType) || e.Status == 408 || e.Status == 504:
		return TimedOut, true
	case e.Status >= 500:
		return PlatformFaulted, true
	default:
		return WorkflowFaulted, true
	}
}
