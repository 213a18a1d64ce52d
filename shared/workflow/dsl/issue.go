package dsl

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// Limits applied to every document.
const (
	// MaxDocumentBytes is the largest document accepted, checked before parsing.
	MaxDocumentBytes = 1 << 20
	// maxDepth is the deepest nesting of YAML/JSON values accepted.
	maxDepth = 64
	// MaxEntries is the most keys of one mapping or items of one sequence.
	MaxEntries = 4096
	// MaxTaskDepth is the deepest nesting of tasks (a task inside a do, for,
	// fork, try or catch inside another task...).
	MaxTaskDepth = 16
)

// Issue is one problem found in a workflow document.
type Issue struct {
	Pointer string // JSON pointer of the offending node, "" for the root
	Line    int    // 1-based; 0 when unknown
	Column  int    // 1-based; 0 when unknown
	Message string
}

// String renders the issue as "pointer line:col: message".
func (i *Issue) String() string {
	p := i.Pointer
	if p == "" {
		p = "/"
	}
	return fmt.Sprintf("%s %d:%d: %s", p, i.Line, i.Column, i.Message)
}

// Error lists every issue found in a document; it is what Parse and Load
// return for a document they reject.
type Error struct {
	Issues []*Issue
}

// Error renders one "pointer line:col: message" line per issue.
func (e *Error) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.String()
	}
	return strings.Join(lines, "\n")
}

// sortIssues orders issues by position, then pointer, then message, and
// drops exact duplicates.
func sortIssues(issues []*Issue) []*Issue {
	sort.SliceStable(issues, func(a, b int) bool {
		x, y := issues[a], issues[b]
		if x.Line != y.Line {
			return x.Line < y.Line
		}
		if x.Column != y.Column {
			return x.Column < y.Column
		}
		if x.Pointer != y.Pointer {
			return x.Pointer < y.Pointer
		}
		return x.Message < y.Message
	})
	out := issues[:0]
	for i, is := range issues {
		if i > 0 && *is == *issues[i-1] {
			continue
		}
		out = append(out, is)
	}
	return out
}

// Hash returns the hex SHA-256 of the raw document bytes: the descriptor hash
// bound by a case's genesis receipt.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Load parses and validates a document. The returned error, if any, is an
// *Error listing every issue.
func Load(data []byte) (*Workflow, error) {
	w, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if issues := Validate(w); len(issues) > 0 {
		return nil, &Error{Issues: issues}
	}
	return w, nil
}
