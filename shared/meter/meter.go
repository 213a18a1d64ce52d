// Package meter measures what work for a case consumes: an AWS SDK
// middleware and an HTTP transport add each request's usage to the Meter
// carried by the request's context, and the executor records what a Meter
// took since the previous receipt in the next receipt's usage. Work with no
// Meter in its context is counted by the process's shared meter, reported
// as shared cost.
package meter

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"

	"github.com/knhk/knhk/shared/cost"
	"github.com/knhk/knhk/shared/receipt"
)

// Meter accumulates usage. It is safe for concurrent use; the zero value is
// ready.
type Meter struct {
	mu sync.Mutex
	u  cost.Usage
}

// Add adds u.
func (m *Meter) Add(u cost.Usage) {
	m.mu.Lock()
	m.u.Add(u)
	m.mu.Unlock()
}

// Take returns what was added since the last Take and starts again from
// zero.
func (m *Meter) Take() cost.Usage {
	m.mu.Lock()
	u := m.u
	m.u = cost.Usage{}
	m.mu.Unlock()
	return u
}

// Peek returns what was added since the last Take.
func (m *Meter) Peek() cost.Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.u
}

type ctxKey struct{}

// With returns ctx carrying m: requests made with it are charged to m.
func With(ctx context.Context, m *Meter) context.Context {
	return context.WithValue(ctx, ctxKey{}, m)
}

// From returns the Meter ctx carries, or nil.
func From(ctx context.Context) *Meter {
	m, _ := ctx.Value(ctxKey{}).(*Meter)
	return m
}

// off is the Meter of work not metered at all.
var off = &Meter{}

// Off returns ctx with its requests metered by nobody: the writes of a
// case's receipts, which are priced from the chain itself (see ChainWrites).
func Off(ctx context.Context) context.Context { return With(ctx, off) }

// Shared meters the work that belongs to no single case (idle polling,
// scheduled jobs' own runs, a case's work after its last receipt).
var Shared = &Meter{}

// charge adds u to ctx's meter, or to Shared.
func charge(ctx context.Context, u cost.Usage) {
	if m := From(ctx); m == off {
		return
	} else if m != nil {
		m.Add(u)
		return
	}
	Shared.Add(u)
}

// Function is the running Lambda function's billing configuration: its
// architecture (that of this binary) and its configured memory (the
// AWS_LAMBDA_FUNCTION_MEMORY_SIZE variable Lambda sets; 0 outside Lambda).
func Function() (arch cost.Arch, memoryMB int64) {
	arch = cost.X86
	if runtime.GOARCH == "arm64" {
		arch = cost.Arm64
	}
	memoryMB, _ = strconv.ParseInt(os.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), 10, 64)
	return arch, max(memoryMB, 0)
}

// Requests is the number of AWS API requests usage u stands for.
func Requests(u cost.Usage) int64 {
	return u.DynamoRequests + nonDynamo(u)
}

func nonDynamo(u cost.Usage) int64 {
	return u.SQSRequests + u.SNSPublishes + u.KMSRequests + u.KMSAsymRequests + u.SecretsRequests + u.S3Puts + u.S3Gets
}

// Receipt is u in a receipt's form; memoryMB is the function's memory,
// which turns billed MB-ms back into milliseconds.
func Receipt(u cost.Usage, memoryMB int64) receipt.Usage {
	r := receipt.Usage{
		ReadUnits: u.ReadUnits, WriteUnits: u.WriteUnits, Requests: Requests(u),
		Arch: string(u.Arch), MemoryMB: memoryMB, InvocationMicros: u.InvocationMicros,
		SQSRequests: u.SQSRequests, SNSPublishes: u.SNSPublishes, KMSRequests: u.KMSRequests,
		KMSAsymRequests: u.KMSAsymRequests, SecretsRequests: u.SecretsRequests, S3Puts: u.S3Puts, S3Gets: u.S3Gets,
		HTTPCalls: u.HTTPCalls, HTTPBytes: u.HTTPBytes,
	}
	if memoryMB > 0 {
		r.BilledMs = u.LambdaMBms / memoryMB
	}
	if u.LambdaMBms == 0 {
		r.Arch = ""
	}
	return r
}

// Usage is a receipt's usage in the cost model's form (receipts made
// before the optional members existed give their billed milliseconds no
// memory, so no Lambda duration cost).
func Usage(r receipt.Usage) cost.Usage {
	u := cost.Usage{
		Arch: cost.Arch(r.Arch), InvocationMicros: r.InvocationMicros, LambdaMBms: r.BilledMs * r.MemoryMB,
		WriteUnits: r.WriteUnits, ReadUnits: r.ReadUnits, SQSRequests: r.SQSRequests, SNSPublishes: r.SNSPublishes,
		KMSRequests: r.KMSRequests, KMSAsymRequests: r.KMSAsymRequests, SecretsRequests: r.SecretsRequests,
		S3Puts: r.S3Puts, S3Gets: r.S3Gets, HTTPCalls: r.HTTPCalls, HTTPBytes: r.HTTPBytes,
	}
	u.DynamoRequests = max(r.Requests-nonDynamo(u), 0)
	return u
}

// ReceiptWrite is the usage of writing one receipt whose stored item is
// item: one DynamoDB request and a write unit per started 1 KB. A receipt's
// own usage cannot include its own write (the write follows the receipt),
// so a case's usage is the sum of its receipts' usage plus one ReceiptWrite
// per receipt.
func ReceiptWrite(itemSize int) cost.Usage {
	return cost.Usage{DynamoRequests: 1, WriteUnits: float64(blocks(itemSize, 1<<10))}
}
