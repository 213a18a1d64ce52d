package chargeback

import (
	"context"
	"fmt"
	"math/big"
	"slices"

	"github.com/knhk/knhk/shared/cost"
)

// Claims records each threshold alerted in a period (store.BudgetAlerts).
type Claims interface {
	Claim(ctx context.Context, tenant, period string, percent int) (first bool, err error)
	Unclaim(ctx context.Context, tenant, period string, percent int) error
}

// Alerter sends an alert (the alerts topic).
type Alerter interface {
	Alert(ctx context.Context, subject, body string) error
}

// Alert is one budget threshold a tenant crossed.
type Alert struct {
	Tenant  string
	Percent int
	Spent   *big.Rat
	Limit   *big.Rat
}

// Alerts sends, for a report by tenant, each threshold of each tenant's
// budget that its spending reached and that no run sent before in the
// period: the claim is taken first, and given back when the alert cannot
// be sent, so each threshold is sent once. It returns the alerts sent.
func Alerts(ctx context.Context, r Report, budgets map[string]*big.Rat, claims Claims, out Alerter) ([]Alert, error) {
	if r.By != ByTenant {
		return nil, fmt.Errorf("chargeback: budgets need a report by tenant, not by %s", r.By)
	}
	tenants := make([]string, 0, len(budgets))
	for t := range budgets {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	spent := map[string]*big.Rat{}
	for _, l := range r.Lines {
		spent[l.Key] = l.Total()
	}
	var sent []Alert
	for _, t := range tenants {
		s := spent[t]
		if s == nil {
			s = new(big.Rat)
		}
		for _, p := range cost.Crossed(budgets[t], s, nil) {
			first, err := claims.Claim(ctx, t, r.Period, p)
			if err != nil {
				return sent, err
			}
			if !first {
				continue
			}
			subject := fmt.Sprintf("KNHK budget: tenant %s at %d%% of its %s budget for %s", t, p, cost.Dollars(budgets[t], 6), r.Period)
			body := fmt.Sprintf("Tenant %s has spent %s of its %s budget for %s (%d%% threshold).", t, cost.Dollars(s, 6), cost.Dollars(budgets[t], 6), r.Period, p)
			if err := out.Alert(ctx, subject, body); err != nil {
				return sent, fmt.Errorf("budget alert %s %d%%: %w", t, p, errorsJoin(err, claims.Unclaim(ctx, t, r.Period, p)))
			}
			sent = append(sent, Alert{Tenant: t, Percent: p, Spent: s, Limit: budgets[t]})
		}
	}
	return sent, nil
}

func errorsJoin(a, b error) error {
	if b == nil {
		return a
	}
	return fmt.Errorf("%w (and %w)", a, b)
}
