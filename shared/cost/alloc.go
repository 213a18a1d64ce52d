package cost

import (
	"fmt"
	"math/big"
	"slices"
)

// Allocation is what one owner (a workflow, a tenant, a department) is
// charged: its own direct cost and its share of the shared cost.
type Allocation struct {
	Key    string
	Direct *big.Rat
	Shared *big.Rat
}

// Total is direct plus shared.
func (a Allocation) Total() *big.Rat { return new(big.Rat).Add(a.Direct, a.Shared) }

// Split charges shared cost to owners in proportion to their direct costs,
// as OpenCost's weighted sharing does; idle (shared cost that kept the
// platform ready while no case ran) is not charged to anyone and is returned
// apart so that a report shows it. When no owner has a direct cost, shared
// cost is split evenly. The shares sum exactly to shared.
func Split(direct map[string]*big.Rat, shared, idle *big.Rat) (allocs []Allocation, unallocatedIdle *big.Rat) {
	keys := make([]string, 0, len(direct))
	total := new(big.Rat)
	for k, v := range direct {
		keys = append(keys, k)
		total.Add(total, v)
	}
	slices.Sort(keys)
	for _, k := range keys {
		share := new(big.Rat)
		switch {
		case total.Sign() > 0:
			share.Mul(shared, new(big.Rat).Quo(direct[k], total))
		case len(keys) > 0:
			share.Quo(shared, big.NewRat(int64(len(keys)), 1))
		}
		allocs = append(allocs, Allocation{Key: k, Direct: new(big.Rat).Set(direct[k]), Shared: share})
	}
	if idle == nil {
		idle = new(big.Rat)
	}
	return allocs, new(big.Rat).Set(idle)
}

// Thresholds are the budget percentages that alert.
var Thresholds = []int{50, 80, 100}

// Crossed returns the thresholds that spent has reached against limit and
// that are not in alerted (those already sent this period), in order. The
// caller records each one it sends, once per period.
func Crossed(limit, spent *big.Rat, alerted []int) []int {
	if limit == nil || limit.Sign() <= 0 {
		return nil
	}
	var out []int
	for _, th := range Thresholds {
		bar := new(big.Rat).Mul(limit, big.NewRat(int64(th), 100))
		if spent.Cmp(bar) >= 0 && !slices.Contains(alerted, th) {
			out = append(out, th)
		}
	}
	return out
}

// Migration compares running a workflow on KNHK with what it cost before.
type Migration struct {
	LegacyPerCase *big.Rat // configured cost of one case on the legacy system
	KNHKPerCase   *big.Rat // measured
	CasesPerMonth int64
	OneOffCost    *big.Rat // the migration's cost
}

// Savings is the monthly saving (negative when KNHK costs more).
func (m Migration) Savings() *big.Rat {
	d := new(big.Rat).Sub(m.LegacyPerCase, m.KNHKPerCase)
	return d.Mul(d, ratInt(m.CasesPerMonth))
}

// PaybackMonths is how many months of savings repay the migration; ok is
// false when there is no saving to repay it with.
func (m Migration) PaybackMonths() (months *big.Rat, ok bool) {
	s := m.Savings()
	if s.Sign() <= 0 {
		return nil, false
	}
	return new(big.Rat).Quo(m.OneOffCost, s), true
}

// ROI is the return over the given months: (savings - migration cost) /
// migration cost.
func (m Migration) ROI(months int64) (*big.Rat, error) {
	if m.OneOffCost == nil || m.OneOffCost.Sign() <= 0 {
		return nil, fmt.Errorf("cost: ROI needs a positive migration cost")
	}
	gain := new(big.Rat).Mul(m.Savings(), ratInt(months))
	gain.Sub(gain, m.OneOffCost)
	return gain.Quo(gain, m.OneOffCost), nil
}

// Overhead classes usage that belongs to no single case.
type Overhead string

// The overhead classes: Shared is work done for cases but no single one (an
// invocation's time after its last receipt, the verifier's batches), split
// among owners; Idle is what keeps the platform ready whether or not cases
// run (the scheduled jobs), shown apart.
const (
	Shared Overhead = "shared"
	Idle   Overhead = "idle"
)

// PriceAll is the summed price of usages that may differ in architecture.
func (t *Table) PriceAll(us []Usage) *big.Rat {
	total := new(big.Rat)
	for _, u := range us {
		total.Add(total, t.Price(u).Total)
	}
	return total
}
