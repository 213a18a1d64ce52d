package otlpsink

import (
	"sort"
	"time"
)

// Trace is the spans of one trace id.
type Trace struct {
	ID    string
	Spans []Span // by start time
	// Linked is set for a trace that is not the case's own but whose spans
	// link into it (a hop that arrived with a trace of its own).
	Linked bool
}

// CaseTraces returns the traces holding a span of caseID (knhk.case_id),
// then the traces whose spans link into those.
func CaseTraces(spans []Span, caseID string) []Trace {
	byTrace := map[string][]Span{}
	own := map[string]bool{}
	for _, s := range spans {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
		if id, _ := s.Attributes["knhk.case_id"].(string); id == caseID && caseID != "" {
			own[s.TraceID] = true
		}
	}
	linked := map[string]bool{}
	for _, s := range spans {
		if own[s.TraceID] {
			continue
		}
		for _, l := range s.Links {
			if own[l.TraceID] {
				linked[s.TraceID] = true
			}
		}
	}
	var out []Trace
	for _, set := range []struct {
		ids    map[string]bool
		linked bool
	}{{own, false}, {linked, true}} {
		var ids []string
		for id := range set.ids {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return first(byTrace[ids[i]]).Before(first(byTrace[ids[j]])) })
		for _, id := range ids {
			ss := byTrace[id]
			sort.SliceStable(ss, func(i, j int) bool { return ss[i].Start.Before(ss[j].Start) })
			out = append(out, Trace{ID: id, Spans: ss, Linked: set.linked})
		}
	}
	return out
}

// Node is a span with its children, by start time.
type Node struct {
	Span     Span
	Children []*Node
}

// Tree arranges a trace's spans by parent. Spans whose parent is not in
// the trace (the root, and orphans) are the returned roots.
func (t Trace) Tree() []*Node {
	nodes := make(map[string]*Node, len(t.Spans))
	for _, s := range t.Spans {
		nodes[s.SpanID] = &Node{Span: s}
	}
	var roots []*Node
	for _, s := range t.Spans {
		n := nodes[s.SpanID]
		if p, ok := nodes[s.ParentSpanID]; ok && s.ParentSpanID != "" {
			p.Children = append(p.Children, n)
		} else {
			roots = append(roots, n)
		}
	}
	return roots
}

// first is the earliest start of ss.
func first(ss []Span) time.Time {
	var t time.Time
	for i, s := range ss {
		if i == 0 || s.Start.Before(t) {
			t = s.Start
		}
	}
	return t
}
