package engine

import (
	"errors"
	"fmt"
)

// HistoryFormat is the version of the history this engine records and
// replays. A case's genesis event records it (history.Genesis.Format; zero
// in chains recorded before it was recorded, which read as format 1). Raise
// it when the meaning of recorded events changes; an engine refuses a
// history of a newer format rather than guessing (docs/ARCHITECTURE.md,
// "Changing the engine").
const HistoryFormat = 1

// ErrNondeterministic means a recorded history does not match what the
// engine decides on its workflow: replaying it would continue a different
// case than the one recorded. The executor quarantines such a case.
var ErrNondeterministic = errors.New("nondeterministic history")

// NondeterminismError says where a recorded history and the engine part.
type NondeterminismError struct {
	Key    string // the occurrence key of the recorded event
	Detail string
}

func (e *NondeterminismError) Error() string {
	return fmt.Sprintf("%v: at %s: %s", ErrNondeterministic, e.Key, e.Detail)
}

// Unwrap lets errors.Is match ErrNondeterministic.
func (e *NondeterminismError) Unwrap() error { return ErrNondeterministic }

// checkFormat refuses a history recorded in a format this engine does not
// know.
func checkFormat(format int) error {
	if format > HistoryFormat {
		return &NondeterminismError{Key: "/", Detail: fmt.Sprintf("the history is in format %d, this engine replays formats up to %d", format, HistoryFormat)}
	}
	return nil
}
