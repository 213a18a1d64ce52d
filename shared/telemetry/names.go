// Package telemetry gives KNHK's Lambdas their metrics and logs: CloudWatch
// embedded metric format (EMF) documents written to standard output, and
// structured JSON logs (log/slog) carrying the case, the receipt sequence
// number, the Lambda request id and the trace id.
package telemetry

// Namespace is the CloudWatch namespace of KNHK's metrics.
const Namespace = "KNHK"

// Standard metric names. Alarms and dashboards refer to these; the unit given
// is the one every emitter uses.
const (
	CasesStarted      = "CasesStarted"      // Count: cases whose genesis receipt was appended
	CasesCompleted    = "CasesCompleted"    // Count: cases that ended with an output
	CasesFaulted      = "CasesFaulted"      // Count: cases that ended with an error
	CasesCancelled    = "CasesCancelled"    // Count: cases that were cancelled
	TasksExecuted     = "TasksExecuted"     // Count: tasks run to completion or fault
	TasksFaulted      = "TasksFaulted"      // Count: tasks that raised or failed
	TaskDuration      = "TaskDuration"      // Milliseconds: wall time of one task
	CaseDuration      = "CaseDuration"      // Milliseconds: genesis to the final receipt
	AppendConflicts   = "AppendConflicts"   // Count: receipt appends lost to a concurrent writer
	ReceiptsAppended  = "ReceiptsAppended"  // Count: receipts written
	ReceiptsVerified  = "ReceiptsVerified"  // Count: receipts checked by the verifier
	IntegrityFindings = "IntegrityFindings" // Count: tamper findings of the verifier (alarm at > 0)
	CheckpointsSigned = "CheckpointsSigned" // Count: signed chain-head checkpoints stored
	SLICasesRecorded  = "SLICasesRecorded"  // Count: ended cases folded into service-level buckets by the verifier
	SLIWriteErrors    = "SLIWriteErrors"    // Count: verifier batches whose service-level buckets were not written

	SLAAvailability    = "SLAAvailability"    // None: good / valid cases over the objective's window (dimension Workflow)
	SLALatencyP50      = "SLALatencyP50"      // Milliseconds: median case latency over the window, from merged sketches
	SLALatencyP99      = "SLALatencyP99"      // Milliseconds: 99th percentile case latency
	SLALatencyP999     = "SLALatencyP999"     // Milliseconds: 99.9th percentile case latency
	SLALatencyBreach   = "SLALatencyBreach"   // None: 1 when p50 or p99 exceeds the objective, else 0
	SLABudgetRemaining = "SLABudgetRemaining" // None: fraction of the error budget left (negative when overspent)
	SLABurnRate        = "SLABurnRate"        // None: budget burn rate over one window (dimensions Workflow, Window)
	SLARuns            = "SLARuns"            // Count: SLA job runs that computed reports (a run that lost the lease counts nothing)
	CanarySuccess      = "CanarySuccess"      // None: 1 per canary case that completed with a verified chain within the freshness bound, 0 per one that did not
	CanaryLatency      = "CanaryLatency"      // Milliseconds: a healthy canary case's submission to its terminal receipt

	CheckpointHeadsSigned  = "CheckpointHeadsSigned"  // Count: chain heads appended to the checkpoint log
	CheckpointHeadsRefused = "CheckpointHeadsRefused" // Count: heads not signed: the chain no longer extends the signed or verified one (alarm at > 0)
	CheckpointLogInvalid   = "CheckpointLogInvalid"   // Count: checkpointer runs that found the stored log broken and signed nothing

	CasesArchived   = "CasesArchived"   // Count: ended cases whose archive object was written, read back and verified, and whose receipts now expire
	ArchiveBytes    = "ArchiveBytes"    // Bytes: size of the archive objects written
	ArchivesRefused = "ArchivesRefused" // Count: cases not archived: the chain or the object read back did not verify (alarm at > 0)

	BreakerOpened     = "BreakerOpened"     // Count: circuit breakers that opened
	BreakerRejected   = "BreakerRejected"   // Count: calls rejected by an open breaker
	DLQBound          = "DLQBound"          // Count: messages reported failed on their last receive
	PermanentErrors   = "PermanentErrors"   // Count: messages dropped as not retryable
	BatchItemFailures = "BatchItemFailures" // Count: items reported back to Lambda for retry
	DeadlineDeferred  = "DeadlineDeferred"  // Count: items not started for lack of remaining time
	HandlerPanics     = "HandlerPanics"     // Count: recovered panics in message handlers
	// ContinuationsInvalid counts continuations dropped because the position
	// they claim (expectedSeq) stayed ahead of strongly consistent reads of
	// the chain.
	ContinuationsInvalid = "ContinuationsInvalid"
	// QuarantineRefused counts messages refused because their case is
	// quarantined (until `knhk case release`).
	QuarantineRefused = "QuarantineRefused"
	// StartConflicts counts start messages that reused an idempotency key
	// with an input other than the one the case was started with.
	StartConflicts  = "StartConflicts"
	Unauthorized    = "Unauthorized"    // Count: messages refused because their sender may not act for the tenant
	EventsDelivered = "EventsDelivered" // Count: event messages sent to the cases an external event matched
	EventsUnmatched = "EventsUnmatched" // Count: external events that matched no waiting case
)

// Standard dimension names.
const (
	DimFunction = "Function" // the function's short name ("executor", "verifier"), which the alarms watch
	DimWorkflow = "Workflow" // the workflow name
	DimTenant   = "Tenant"   // the tenant; use only where tenants are few
	DimWindow   = "Window"   // a burn-rate window, e.g. "1h", "5m"
)
