package cost

import (
	"fmt"
	"math/big"
	"time"

	"github.com/knhk/knhk/shared/history"
)

// Arch is a Lambda function's architecture.
type Arch string

// Architectures.
const (
	Arm64 Arch = "arm64"
	X86   Arch = "x86_64"
)

// Usage is what some work consumed, as metered. Quantities are integers
// where the bill counts whole units, so that sums are exact.
type Usage struct {
	Arch             Arch    `json:"arch,omitempty"`   // of LambdaMBms (default arm64)
	InvocationMicros int64   `json:"invocationMicros"` // millionths of Lambda invocations (a case's share of the invocations that served it)
	LambdaMBms       int64   `json:"lambdaMBms"`       // billed milliseconds x configured memory in MB
	WriteUnits       float64 `json:"writeUnits"`       // DynamoDB write request units
	ReadUnits        float64 `json:"readUnits"`        // DynamoDB read request units (halves for eventually consistent reads)
	StreamReads      int64   `json:"streamReads"`      // DynamoDB Streams read request units not made by a Lambda trigger
	SQSRequests      int64   `json:"sqsRequests"`      // SQS requests, each 64 KB chunk counted
	SNSPublishes     int64   `json:"snsPublishes"`     // SNS publishes, each 64 KB chunk counted
	KMSRequests      int64   `json:"kmsRequests"`      // symmetric key requests
	KMSAsymRequests  int64   `json:"kmsAsymRequests"`  // asymmetric key requests (checkpoint signatures)
	SecretsRequests  int64   `json:"secretsRequests"`  // Secrets Manager API calls
	S3Puts           int64   `json:"s3Puts"`           // S3 PUT/COPY/POST/LIST
	S3Gets           int64   `json:"s3Gets"`           // S3 GET and others
	HTTPCalls        int64   `json:"httpCalls"`        // workflow calls to other services (not billed by AWS)
	HTTPBytes        int64   `json:"httpBytes"`        // their request and response bytes (data transfer is not priced)
	DynamoRequests   int64   `json:"dynamoRequests"`   // DynamoDB requests (billed by their units; kept for capacity)
}

// Counter is one named counter of a Usage, addressable: exactly one of Int
// and Float is set.
type Counter struct {
	Name  string   // the counter's JSON member and stored attribute name
	Int   *int64   // a whole-number counter
	Float *float64 // a fractional counter (DynamoDB request units)
}

// Value returns the counter's value.
func (c Counter) Value() float64 {
	if c.Int != nil {
		return float64(*c.Int)
	}
	return *c.Float
}

// Counters returns u's counters in a fixed order. It is the one list of
// them: Add, Sub and the stored forms of a Usage go through it.
func (u *Usage) Counters() [15]Counter {
	return [...]Counter{
		{Name: "invocationMicros", Int: &u.InvocationMicros},
		{Name: "lambdaMBms", Int: &u.LambdaMBms},
		{Name: "writeUnits", Float: &u.WriteUnits},
		{Name: "readUnits", Float: &u.ReadUnits},
		{Name: "streamReads", Int: &u.StreamReads},
		{Name: "sqsRequests", Int: &u.SQSRequests},
		{Name: "snsPublishes", Int: &u.SNSPublishes},
		{Name: "kmsRequests", Int: &u.KMSRequests},
		{Name: "kmsAsymRequests", Int: &u.KMSAsymRequests},
		{Name: "secretsRequests", Int: &u.SecretsRequests},
		{Name: "s3Puts", Int: &u.S3Puts},
		{Name: "s3Gets", Int: &u.S3Gets},
		{Name: "httpCalls", Int: &u.HTTPCalls},
		{Name: "httpBytes", Int: &u.HTTPBytes},
		{Name: "dynamoRequests", Int: &u.DynamoRequests},
	}
}

// Add adds o to u. Usage of different architectures cannot be summed into
// one figure; Add keeps u's architecture and callers keep them apart.
func (u *Usage) Add(o Usage) {
	if u.Arch == "" {
		u.Arch = o.Arch
	}
	u.combine(&o, 1)
}

// Sub subtracts o from u (an earlier reading of the same counters).
func (u *Usage) Sub(o Usage) { u.combine(&o, -1) }

func (u *Usage) combine(o *Usage, sign int64) {
	to, from := u.Counters(), o.Counters()
	for i, c := range to {
		if c.Int != nil {
			*c.Int += sign * *from[i].Int
		} else {
			*c.Float += float64(sign) * *from[i].Float
		}
	}
}

// SQSChunks is how many requests SQS bills for one message of n bytes: one
// per started 64 KB.
func SQSChunks(n int) int64 {
	if n <= 0 {
		return 1
	}
	return int64((n + 64<<10 - 1) / (64 << 10))
}

// Line is one priced unit of a bill.
type Line struct {
	Unit     Unit     `json:"unit"`
	Quantity *big.Rat `json:"-"`
	Cost     *big.Rat `json:"-"`
}

// Bill is priced usage: the exact total and its lines, in the table's
// order of units.
type Bill struct {
	Total *big.Rat
	Lines []Line
}

// mbmsPerGBs converts MB-milliseconds to GB-seconds.
var mbmsPerGBs = big.NewRat(1024*1000, 1)

// Price prices usage exactly.
func (t *Table) Price(u Usage) Bill {
	gbs := new(big.Rat).Quo(new(big.Rat).SetInt64(u.LambdaMBms), mbmsPerGBs)
	lambda := LambdaGBSecondArm64
	if u.Arch == X86 {
		lambda = LambdaGBSecondX86
	}
	qty := []struct {
		unit Unit
		q    *big.Rat
	}{
		{LambdaRequest, new(big.Rat).SetFrac64(u.InvocationMicros, 1_000_000)},
		{lambda, gbs},
		{DynamoWriteUnit, ratFloat(u.WriteUnits)},
		{DynamoReadUnit, ratFloat(u.ReadUnits)},
		{DynamoStreamRead, ratInt(u.StreamReads)},
		{SQSRequest, ratInt(u.SQSRequests)},
		{SNSPublish, ratInt(u.SNSPublishes)},
		{KMSRequest, ratInt(u.KMSRequests)},
		{KMSAsymmetricRequest, ratInt(u.KMSAsymRequests)},
		{SecretsRequest, ratInt(u.SecretsRequests)},
		{S3Put, ratInt(u.S3Puts)},
		{S3Get, ratInt(u.S3Gets)},
	}
	b := Bill{Total: new(big.Rat)}
	for _, x := range qty {
		if x.q.Sign() == 0 {
			continue
		}
		c := new(big.Rat).Mul(x.q, t.Rate(x.unit))
		b.Lines = append(b.Lines, Line{Unit: x.unit, Quantity: x.q, Cost: c})
		b.Total.Add(b.Total, c)
	}
	return b
}

func ratInt(n int64) *big.Rat { return new(big.Rat).SetInt64(n) }

func ratFloat(f float64) *big.Rat {
	r := new(big.Rat)
	if r.SetFloat64(f) == nil {
		return new(big.Rat)
	}
	return r
}

// Dollars formats an amount with the given number of decimals, halves
// rounded away from zero.
func Dollars(r *big.Rat, decimals int) string { return "$" + r.FloatString(decimals) }

// PerMillion is an amount per case scaled to a million cases.
func PerMillion(perCase *big.Rat) *big.Rat {
	return new(big.Rat).Mul(perCase, big.NewRat(1_000_000, 1))
}

// Transitions counts the state transitions Step Functions would bill for a
// case with this history: one per task attempt the history records (every
// task.completed or task.faulted, container tasks included, so retries count
// again as Step Functions counts them) plus one for the final state.
func Transitions(types []history.Type) int64 {
	var n int64
	for _, t := range types {
		switch t {
		case history.TaskCompleted, history.TaskFaulted:
			n++
		case history.CaseCompleted, history.CaseFaulted, history.CaseCancelled:
			n++
		}
	}
	return n
}

// StepFunctionsCase is a case as a Step Functions execution would run.
type StepFunctionsCase struct {
	Transitions int64
	Duration    time.Duration // start to end
	MemoryMB    int64         // Express memory used (0: 64, the smallest billed chunk)
}

// StepFunctionsStandard prices a case on Standard Workflows.
func (t *Table) StepFunctionsStandard(c StepFunctionsCase) *big.Rat {
	return new(big.Rat).Mul(ratInt(c.Transitions), t.Rate(SFNStandardTransition))
}

// StepFunctionsExpress prices a case on Express Workflows: one request plus
// the duration rounded up to 100 ms times the memory in 64 MB chunks.
func (t *Table) StepFunctionsExpress(c StepFunctionsCase) *big.Rat {
	mem := max(c.MemoryMB, 1)
	chunks := (mem + 63) / 64
	tenths := max((c.Duration+100*time.Millisecond-1)/(100*time.Millisecond), 1)
	// GB-s = tenths/10 s x chunks*64/1024 GB
	gbs := new(big.Rat).SetFrac64(int64(tenths)*chunks*64, 10*1024)
	cost := new(big.Rat).Mul(gbs, t.Rate(SFNExpressGBSecond))
	return cost.Add(cost, t.Rate(SFNExpressRequest))
}

// Comparison is one workflow's cost per case on KNHK and on Step Functions.
type Comparison struct {
	KNHK, Standard, Express *big.Rat
}

// String renders the comparison per million cases.
func (c Comparison) String() string {
	return fmt.Sprintf("KNHK %s, Step Functions Standard %s, Express %s per million cases",
		Dollars(PerMillion(c.KNHK), 2), Dollars(PerMillion(c.Standard), 2), Dollars(PerMillion(c.Express), 2))
}
