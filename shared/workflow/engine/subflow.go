package engine

import (
	"context"
	"fmt"
	"sort"

	"github.com/knhk/knhk/shared/workflow/dsl"
)

func sortStrings(s []string) { sort.Strings(s) }

// subprogram resolves the workflow a run task starts and compiles it once
// per resolved document: a reference such as "latest" may resolve to
// different documents for different cases.
func (p *Program) subprogram(ctx context.Context, reg Registry, ref *dsl.SubflowRef) (*Program, error) {
	id := ref.Namespace + "/" + ref.Name + "/" + ref.Version
	wf, err := reg.Workflow(ctx, ref.Namespace, ref.Name, ref.Version)
	if err != nil {
		return nil, fmt.Errorf("resolve workflow %s: %w", id, err)
	}
	p.mu.Lock()
	sub := p.subs[wf]
	p.mu.Unlock()
	if sub != nil {
		return sub, nil
	}
	if sub, err = Compile(wf); err != nil {
		return nil, fmt.Errorf("compile workflow %s: %w", id, err)
	}
	p.mu.Lock()
	if p.subs == nil {
		p.subs = map[*dsl.Workflow]*Program{}
	}
	if prev := p.subs[wf]; prev != nil {
		sub = prev
	} else {
		p.subs[wf] = sub
	}
	p.mu.Unlock()
	return sub, nil
}

// Pinned serves the sub-workflows a case pinned at its genesis, by
// namespace/name/version as the run tasks name them: no I/O, and nothing a
// case did not pin.
type Pinned map[string]*dsl.Workflow

// PinKey is the key of a sub-workflow reference in Pinned.
func PinKey(ns, name, version string) string { return ns + "/" + name + "/" + version }

// Workflow returns a pinned sub-workflow.
func (p Pinned) Workflow(_ context.Context, ns, name, version string) (*dsl.Workflow, error) {
	if wf, ok := p[PinKey(ns, name, version)]; ok {
		return wf, nil
	}
	return nil, fmt.Errorf("%s/%s:%s was not pinned when the case started", ns, name, version)
}
