package cost

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
)

// Share is one workflow of a load mix with its measured usage per case.
type Share struct {
	Workflow string  `json:"workflow"`
	Weight   float64 `json:"weight"` // relative share of the cases
	PerCase  Usage   `json:"perCase"`
	MemoryMB int64   `json:"memoryMB"` // the executor's configured memory (to turn MB-ms into busy time)
}

// Quota is an AWS limit a load must stay under.
type Quota struct {
	Name   string  `json:"name"`
	Limit  float64 `json:"limit"`
	Source string  `json:"source"`
}

// DefaultQuotas are the default quotas that bound a KNHK stack, with the
// pages that document them.
var DefaultQuotas = map[string]Quota{
	"lambda.concurrency":       {Name: "Lambda concurrent executions per account and region", Limit: 1000, Source: "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"},
	"sqs.mappingConcurrency":   {Name: "maximum concurrency of one SQS event source mapping", Limit: 1000, Source: "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html"},
	"dynamodb.tableWriteUnits": {Name: "on-demand write request units per second per table", Limit: 40000, Source: "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html"},
	"dynamodb.tableReadUnits":  {Name: "on-demand read request units per second per table", Limit: 40000, Source: "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html"},
}

// Need is how close a plan comes to one quota.
type Need struct {
	Quota Quota   `json:"quota"`
	Need  float64 `json:"need"`
	Ratio float64 `json:"ratio"` // need / limit: above 1 the quota must be raised
}

// Plan is what a load needs.
type Plan struct {
	Rate               float64  `json:"rate"` // cases per second
	LambdaConcurrency  float64  `json:"lambdaConcurrency"`
	MappingConcurrency int      `json:"mappingConcurrency"` // the work queue mapping's MaximumConcurrency to set
	WriteUnits         float64  `json:"writeUnitsPerSecond"`
	ReadUnits          float64  `json:"readUnitsPerSecond"`
	SQSRequests        float64  `json:"sqsRequestsPerSecond"`
	StreamShards       int      `json:"streamShards"` // about the receipts table's partitions
	PerCase            *big.Rat `json:"-"`
	Monthly            *big.Rat `json:"-"`
	Needs              []Need   `json:"needs"` // most binding first
}

// SecondsPerMonth is the month a plan's monthly figures use (30 days).
const SecondsPerMonth = 30 * 24 * 3600

// Partition throughput limits of DynamoDB, used to estimate partitions and so
// stream shards.
const (
	partitionWriteUnits = 1000
	partitionReadUnits  = 3000
)

// Capacity plans a steady load of rate cases per second with the given mix.
// Concurrency follows Little's law: arrivals per second times busy seconds
// per case.
func (t *Table) Capacity(rate float64, mix []Share, quotas map[string]Quota) (Plan, error) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return Plan{}, fmt.Errorf("cost: rate %v: want a positive number of cases per second", rate)
	}
	var weights float64
	var errs []error
	for _, s := range mix {
		if !(s.Weight > 0) || s.MemoryMB <= 0 {
			errs = append(errs, fmt.Errorf("cost: mix entry %q: weight and memoryMB must be positive", s.Workflow))
		}
		weights += s.Weight
	}
	if len(mix) == 0 {
		errs = append(errs, errors.New("cost: empty mix"))
	}
	if err := errors.Join(errs...); err != nil {
		return Plan{}, err
	}
	p := Plan{Rate: rate, PerCase: new(big.Rat)}
	for _, s := range mix {
		f := s.Weight / weights
		busy := float64(s.PerCase.LambdaMBms) / float64(s.MemoryMB) / 1000 // seconds per case
		p.LambdaConcurrency += rate * f * busy
		p.WriteUnits += rate * f * s.PerCase.WriteUnits
		p.ReadUnits += rate * f * s.PerCase.ReadUnits
		p.SQSRequests += rate * f * float64(s.PerCase.SQSRequests)
		w := new(big.Rat)
		w.SetFloat64(f)
		p.PerCase.Add(p.PerCase, new(big.Rat).Mul(w, t.Price(s.PerCase).Total))
	}
	p.MappingConcurrency = min(max(int(math.Ceil(p.LambdaConcurrency)), 2), 1000)
	p.StreamShards = max(1, int(math.Ceil(p.WriteUnits/partitionWriteUnits)), int(math.Ceil(p.ReadUnits/partitionReadUnits)))
	r := new(big.Rat)
	r.SetFloat64(rate)
	p.Monthly = new(big.Rat).Mul(p.PerCase, new(big.Rat).Mul(r, big.NewRat(SecondsPerMonth, 1)))
	need := map[string]float64{
		"lambda.concurrency":       p.LambdaConcurrency,
		"sqs.mappingConcurrency":   math.Ceil(p.LambdaConcurrency),
		"dynamodb.tableWriteUnits": p.WriteUnits,
		"dynamodb.tableReadUnits":  p.ReadUnits,
	}
	for k, q := range quotas {
		if n, ok := need[k]; ok && q.Limit > 0 {
			p.Needs = append(p.Needs, Need{Quota: q, Need: n, Ratio: n / q.Limit})
		}
	}
	slices.SortFunc(p.Needs, func(a, b Need) int {
		if a.Ratio != b.Ratio {
			if a.Ratio > b.Ratio {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Quota.Name, b.Quota.Name)
	})
	return p, nil
}
