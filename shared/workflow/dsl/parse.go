package dsl

import (
	"fmt"
	"unicode/utf8"
)

// Parse reads a workflow document written in YAML or JSON into the typed
// model, checking its structure against the DSL: types, required and unknown
// properties, task kinds, durations. It does not check the semantic rules
// (references, flow targets, expressions, supported features): see Validate
// and Load. A rejected document yields an *Error listing every issue found.
func Parse(data []byte) (w *Workflow, err error) {
	if len(data) > MaxDocumentBytes {
		return nil, &Error{Issues: []*Issue{{Line: 1, Column: 1, Message: fmt.Sprintf("document is %d bytes; the limit is %d bytes", len(data), MaxDocumentBytes)}}}
	}
	switch sh := scanShape(data); {
	case sh.depth > maxDepth:
		return nil, &Error{Issues: []*Issue{{Line: sh.depthLine, Column: 1, Message: fmt.Sprintf("nesting deeper than %d levels", maxDepth)}}}
	case sh.width > MaxEntries:
		return nil, &Error{Issues: []*Issue{{Line: sh.widthLine, Column: 1, Message: fmt.Sprintf("more than %d entries in one mapping or sequence", MaxEntries)}}}
	}
	if !utf8.Valid(data) {
		return nil, &Error{Issues: []*Issue{{Line: 1, Column: 1, Message: "document is not valid UTF-8"}}}
	}
	defer func() {
		// The YAML library must not take the caller down on hostile input.
		if r := recover(); r != nil {
			w, err = nil, &Error{Issues: []*Issue{{Line: 1, Column: 1, Message: fmt.Sprintf("malformed YAML/JSON: parser failure: %v", r)}}}
		}
	}()
	root, issues := parseTree(data)
	if len(issues) > 0 {
		return nil, &Error{Issues: sortIssues(issues)}
	}
	d := &decoder{}
	w = d.workflow(root)
	if len(d.issues) > 0 {
		return nil, &Error{Issues: sortIssues(d.issues)}
	}
	w.root = root
	w.exprs = d.exprs
	return w, nil
}
