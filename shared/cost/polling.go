package cost

// Polling is what an event source mapping's pollers did on one queue over
// a period, as SQS's CloudWatch metrics count it (namespace AWS/SQS,
// dimension QueueName, statistic Sum).
type Polling struct {
	Queue            string `json:"queue"`
	EmptyReceives    int64  `json:"emptyReceives"`    // NumberOfEmptyReceives: receives that returned nothing
	MessagesReceived int64  `json:"messagesReceived"` // NumberOfMessagesReceived
	MessagesDeleted  int64  `json:"messagesDeleted"`  // NumberOfMessagesDeleted
}

// Usage is the polling as SQS bills it, one request per receive and per
// delete, split as the cost report shows it: the empty receives are idle
// (the mapping kept polling an empty queue, whatever the traffic), the
// receives and deletes that carried messages are shared (work for cases
// that no receipt can carry: Lambda, not the function, makes them).
// CloudWatch counts the messages, not the calls that carried them, and
// Lambda takes and deletes up to ten per call: one request per message is
// an upper bound of the shared part, exact when batches are of one.
func (p Polling) Usage() (shared, idle Usage) {
	return Usage{SQSRequests: max(p.MessagesReceived, 0) + max(p.MessagesDeleted, 0)}, Usage{SQSRequests: max(p.EmptyReceives, 0)}
}
