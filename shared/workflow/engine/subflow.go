package engine

import (
	"context"
	"fmt"
	"sort"

	"github.com/knhk/knhk/shared/workflow/dsl"
)

func sortStrings(s []string) { sort.Strings(s) }

// subprogram resolves and compiles (once) the workflow a run task starts.
func (p *Program) subprogram(ctx context.Context, reg Registry, ref *dsl.SubflowRef) (*Program, error) {
	id := ref.Namespace + "/" + ref.Name + "/" + ref.Version
	p.mu.Lock()
	sub := p.subs[id]
	p.mu.Unlock()
	if sub != nil {
		return sub, nil
	}
	wf, err := reg.Workflow(ctx, ref.Namespace, ref.Name, ref.Version)
	if err != nil {
		return nil, fmt.Errorf("resolve workflow %s: %w", id, err)
	}
	if sub, err = Compile(wf); err != nil {
		return nil, fmt.Errorf("compile workflow %s: %w", id, err)
	}
	p.mu.Lock()
	if p.subs == nil {
		p.subs = map[string]*Program{}
	}
	if prev := p.subs[id]; prev != nil {
		sub = prev
	} else {
		p.subs[id] = sub
	}
	p.mu.Unlock()
	return sub, nil
}
