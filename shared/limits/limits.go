// Package limits is the one home of KNHK's size and nesting limits: every
// door (queue message decoding, the CLI's submit, engine values, the receipt
// encoder and decoder) checks against these constants, so that whatever one
// layer accepts, the next can hold and read back.
package limits

import (
	"errors"
	"fmt"
)

const (
	// MaxDepth is the deepest nesting of arrays and objects a recorded JSON
	// value (a case input, a task's input or output, an event's data, a
	// recorded request or response) may have. A scalar has depth 0, `[]`
	// and `{}` depth 1.
	MaxDepth = 64

	// EnvelopeDepth is the nesting the documents around recorded values add
	// at most: a receipt object holds payloads one level down, a proof bundle
	// holds receipts a few levels further. Parsers of such documents accept
	// MaxDepth+EnvelopeDepth, so anything the encoder writes decodes.
	EnvelopeDepth = 8

	// MaxDocumentDepth is the nesting a parser of receipts and bundles
	// accepts: at least MaxDepth+EnvelopeDepth, and as deep as any receipt
	// readable before values were limited (512), so no stored chain turns
	// unreadable.
	MaxDocumentDepth = 512

	// MaxMessageBytes is the largest work-queue message body sent inline: the
	// queue's MaximumMessageSize. 256 KiB keeps a batch of ten messages well
	// inside Lambda's 6 MB synchronous invocation payload, and holds on every
	// SQS endpoint (LocalStack and regions before the 1 MiB raise).
	MaxMessageBytes = 256 << 10

	// MaxReferencedBytes is the largest message body that travels by
	// reference (an S3 claim check); the executor refuses larger objects
	// before reading them.
	MaxReferencedBytes = 1 << 20

	// MaxValueBytes is the largest canonical JSON value recorded in one
	// receipt payload. Payloads over the receipt's inline limit are detached
	// to one state-table item each, which DynamoDB caps at 400 KB.
	MaxValueBytes = 384 << 10
)

// The decoder must read whatever the encoder writes.
var _ [MaxDocumentDepth - MaxDepth - EnvelopeDepth]struct{}

// Reason says which limit a value broke.
type Reason string

// Reasons.
const (
	TooDeep  Reason = "too-deep"
	TooLarge Reason = "too-large"
)

// ErrLimit is wrapped by every *Error.
var ErrLimit = errors.New("limit exceeded")

// Error reports a value over a limit. It is permanent: re-sending the same
// value cannot help.
type Error struct {
	What   string // the value, e.g. "input", "output of /do/0/fetch"
	Reason Reason
	Got    int // the depth or size found (for depth: at least Limit+1)
	Limit  int
}

func (e *Error) Error() string {
	if e.Reason == TooDeep {
		return fmt.Sprintf("%s is nested %d levels deep, over the limit of %d", e.What, e.Got, e.Limit)
	}
	return fmt.Sprintf("%s is %d bytes, over the limit of %d bytes", e.What, e.Got, e.Limit)
}

// Unwrap makes errors.Is(err, ErrLimit) hold.
func (e *Error) Unwrap() error { return ErrLimit }

// Depth returns the deepest nesting of arrays and objects in a JSON text,
// scanning bytes only (strings are skipped with their escapes). It does not
// validate the text.
func Depth(raw []byte) int {
	depth, deepest := 0, 0
	inStr := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '[', '{':
			depth++
			if depth > deepest {
				deepest = depth
			}
		case ']', '}':
			depth--
		}
	}
	return deepest
}

// CheckJSON checks a JSON value's size and nesting against MaxValueBytes and
// MaxDepth; what names the value in the error.
func CheckJSON(what string, raw []byte) error {
	return Check(what, raw, MaxValueBytes, MaxDepth)
}

// Check checks a JSON text against a size and a depth limit.
func Check(what string, raw []byte, maxBytes, maxDepth int) error {
	if len(raw) > maxBytes {
		return &Error{What: what, Reason: TooLarge, Got: len(raw), Limit: maxBytes}
	}
	if d := Depth(raw); d > maxDepth {
		return &Error{What: what, Reason: TooDeep, Got: d, Limit: maxDepth}
	}
	return nil
}
