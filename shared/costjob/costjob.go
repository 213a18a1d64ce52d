// Package costjob is the scheduled cost job: under its lease it prices the
// month's cases (chargeback), exports the chargeback by workflow, tenant and
// department as CSV and JSON, alerts budget thresholds once per period and
// logs each workflow's Step Functions comparison and, where a legacy cost is
// configured, its migration payback and ROI. Running it again for the same
// month rewrites the same exports and sends no alert twice.
package costjob

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"time"

	"github.com/knhk/knhk/shared/chargeback"
	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/store"
)

// LeaseName is the job's lease in the state table.
const LeaseName = "cost"

// FunctionName is the job's function short name.
const FunctionName = "cost"

// EnvConfig carries the job's Config as JSON.
const EnvConfig = "KNHK_COST_CONFIG"

// Leases is the scheduled jobs' mutual exclusion (store.Leases).
type Leases interface {
	Acquire(ctx context.Context, job, owner string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, job, owner string) error
}

// Overheads reads the period's usage that belongs to no case
// (store.Overheads).
type Overheads interface {
	Period(ctx context.Context, period string) ([]store.Overhead, error)
}

// Exporter stores an export under a key (the chargeback bucket).
type Exporter interface {
	Put(ctx context.Context, key, contentType string, body []byte) error
}

// Config is the job's configuration (KNHK_COST_CONFIG, JSON). Amounts are
// decimal dollar strings.
type Config struct {
	Budgets       map[string]string `json:"budgets"`       // tenant -> monthly budget
	LegacyPerCase map[string]string `json:"legacyPerCase"` // namespace/name -> cost of a case on the legacy system
	MigrationCost map[string]string `json:"migrationCost"` // namespace/name -> one-off cost of its migration
	ROIMonths     int64             `json:"roiMonths"`     // months the ROI is computed over (default 12)
}

// ParseConfig reads the job's configuration; an empty string is the empty
// configuration.
func ParseConfig(s string) (Config, error) {
	var c Config
	if s == "" {
		return c, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields() // a misspelt budget must not pass unnoticed
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("cost config: %w", err)
	}
	for _, m := range []map[string]string{c.Budgets, c.LegacyPerCase, c.MigrationCost} {
		for k, v := range m {
			if r, ok := new(big.Rat).SetString(v); !ok || r.Sign() < 0 {
				return c, fmt.Errorf("cost config: %s: %q is not a non-negative decimal amount", k, v)
			}
		}
	}
	if c.ROIMonths <= 0 {
		c.ROIMonths = 12
	}
	return c, nil
}

func amount(s string) *big.Rat {
	r, _ := new(big.Rat).SetString(s)
	return r
}

// Deps are the job's collaborators.
type Deps struct {
	Leases      Leases
	Chains      chargeback.Chains
	Descriptors chargeback.Descriptors
	Overheads   Overheads
	Polling     Polling // the event source mappings' SQS polling (nil: not priced)
	Claims      chargeback.Claims
	Alerts      chargeback.Alerter
	Export      Exporter
	Prices      *cost.Table
	Config      Config
	Owner       string // this run's lease owner (the invocation's request id)
	LeaseTTL    time.Duration
	Now         func() time.Time
	Log         *slog.Logger
}

// Result is what one run did.
type Result struct {
	Skipped bool // another run held the lease
	Period  string
	Cases   int
	Exports []string
	Alerts  []chargeback.Alert
	Polling []cost.Polling // the period's polling, priced as shared and idle cost
}

// Run runs the job once for the current month.
func Run(ctx context.Context, d Deps) (Result, error) {
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ttl := d.LeaseTTL
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	res := Result{Period: chargeback.Period(now())}
	ok, err := d.Leases.Acquire(ctx, LeaseName, d.Owner, ttl)
	if err != nil || !ok {
		res.Skipped = err == nil
		return res, err
	}
	defer func() {
		if err := d.Leases.Release(context.WithoutCancel(ctx), LeaseName, d.Owner); err != nil {
			log.Warn("cost job: lease not released", "error", err.Error())
		}
	}()
	cases, skipped, err := chargeback.Collect(ctx, d.Chains, d.Descriptors, res.Period)
	if err != nil {
		return res, err
	}
	res.Cases = len(cases)
	var shared, idle []cost.Usage
	if d.Overheads != nil {
		over, err := d.Overheads.Period(ctx, res.Period)
		if err != nil {
			return res, err
		}
		shared, idle = store.Split(over)
	}
	if d.Polling != nil {
		start, _ := time.Parse("2006-01", res.Period)
		if res.Polling, err = d.Polling.Polling(ctx, start, now()); err != nil {
			return res, err
		}
		for _, p := range res.Polling {
			s, i := p.Usage()
			shared, idle = append(shared, s), append(idle, i)
			log.Info("sqs polling", "queue", p.Queue, "emptyReceives", p.EmptyReceives, "messagesReceived", p.MessagesReceived,
				"messagesDeleted", p.MessagesDeleted, "shared", cost.Dollars(d.Prices.Price(s).Total, 6), "idle", cost.Dollars(d.Prices.Price(i).Total, 6))
		}
	}
	for _, by := range []chargeback.Key{chargeback.ByWorkflow, chargeback.ByTenant, chargeback.ByDepartment} {
		r, err := chargeback.Build(d.Prices, res.Period, by, cases, shared, idle)
		if err != nil {
			return res, err
		}
		keys, err := export(ctx, d.Export, r)
		res.Exports = append(res.Exports, keys...)
		if err != nil {
			return res, err
		}
		switch by {
		case chargeback.ByTenant:
			budgets := map[string]*big.Rat{}
			for t, v := range d.Config.Budgets {
				budgets[t] = amount(v)
			}
			if res.Alerts, err = chargeback.Alerts(ctx, r, budgets, d.Claims, d.Alerts); err != nil {
				return res, err
			}
		case chargeback.ByWorkflow:
			logWorkflows(log, r, d.Config)
		}
	}
	log.Info("cost job done", "period", res.Period, "cases", res.Cases, "unpriced", skipped, "alerts", len(res.Alerts))
	return res, nil
}

// ExportKey is the key of a period's export grouped by, as CSV (ext "csv")
// or JSON ("json"): chargeback/<period>/by-<key>.<ext>.
func ExportKey(period string, by chargeback.Key, ext string) string {
	return fmt.Sprintf("chargeback/%s/by-%s.%s", period, by, ext)
}

// export writes r as CSV and JSON under chargeback/<period>/by-<key>.
func export(ctx context.Context, e Exporter, r chargeback.Report) ([]string, error) {
	var csvBody bytes.Buffer
	if err := r.WriteCSV(&csvBody); err != nil {
		return nil, err
	}
	jsonBody, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode chargeback: %w", err)
	}
	var keys []string
	for _, x := range []struct {
		key, ctype string
		body       []byte
	}{{ExportKey(r.Period, r.By, "csv"), "text/csv", csvBody.Bytes()}, {ExportKey(r.Period, r.By, "json"), "application/json", jsonBody}} {
		if err := e.Put(ctx, x.key, x.ctype, x.body); err != nil {
			return keys, fmt.Errorf("export %s: %w", x.key, err)
		}
		keys = append(keys, x.key)
	}
	return keys, nil
}

// logWorkflows logs each workflow's cost per million cases next to Step
// Functions and, where configured, its migration figures.
func logWorkflows(log *slog.Logger, r chargeback.Report, c Config) {
	for _, l := range r.Lines {
		per := l.PerCase(l.Total())
		cmp := cost.Comparison{KNHK: per, Standard: l.PerCase(l.Standard), Express: l.PerCase(l.Express)}
		attrs := []any{"workflow", l.Key, "cases", l.Cases, "comparison", cmp.String()}
		if legacy, ok := c.LegacyPerCase[l.Key]; ok {
			m := cost.Migration{LegacyPerCase: amount(legacy), KNHKPerCase: per, CasesPerMonth: l.Cases, OneOffCost: amount(c.MigrationCost[l.Key])}
			attrs = append(attrs, "monthlySavings", cost.Dollars(m.Savings(), 2))
			if p, ok := m.PaybackMonths(); ok {
				attrs = append(attrs, "paybackMonths", p.FloatString(2))
			}
			if roi, err := m.ROI(c.ROIMonths); err == nil {
				attrs = append(attrs, "roi", roi.FloatString(2))
			}
		}
		log.Info("workflow cost", attrs...)
	}
}
