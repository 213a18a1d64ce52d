package chargeback

import (
	"context"
	"fmt"
	"time"

	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/registry"
)

// Chains walks every case's chain (store.Receipts).
type Chains interface {
	EachChain(ctx context.Context, fn func(caseID string, rs []*receipt.Receipt, items []int) error) (bad int, err error)
}

// Descriptors loads the workflow version a case pinned (registry.Registry).
type Descriptors interface {
	Load(ctx context.Context, ns, name, version, hash string) (*registry.Descriptor, error)
}

// Period is the calendar month (UTC) of t, as YYYY-MM.
func Period(t time.Time) string { return t.UTC().Format("2006-01") }

// Collect reads the cases that started in period (YYYY-MM) whose chains
// verify, with their departments from their workflow documents. Chains that
// do not verify are counted in skipped, not priced (the verifier reports
// them).
func Collect(ctx context.Context, chains Chains, descs Descriptors, period string) (cases []Case, skipped int, err error) {
	if _, err := time.Parse("2006-01", period); err != nil {
		return nil, 0, fmt.Errorf("chargeback: period %q: want YYYY-MM", period)
	}
	depts := map[string]string{}
	bad, err := chains.EachChain(ctx, func(_ string, rs []*receipt.Receipt, items []int) error {
		if len(receipt.VerifyChain(rs)) > 0 {
			skipped++
			return nil
		}
		c, err := FromChain(rs, items)
		if err != nil {
			skipped++
			return nil
		}
		if Period(c.Started) != period {
			return nil
		}
		d, ok := depts[c.DescriptorHash]
		if !ok {
			desc, err := descs.Load(ctx, c.Namespace, c.Workflow, c.Version, c.DescriptorHash)
			if err != nil {
				return fmt.Errorf("chargeback: case %s: %w", c.ID, err)
			}
			d = Department(desc.Workflow)
			depts[c.DescriptorHash] = d
		}
		c.Department = d
		cases = append(cases, c)
		return nil
	})
	return cases, skipped + bad, err
}
