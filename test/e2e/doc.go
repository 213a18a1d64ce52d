// Package e2e is KNHK's end-to-end suite. It drives a whole stack only the
// way a user does: it sends messages to the work queue and reads the tables,
// the verifier's findings, the alerts topic (through a queue subscribed to it)
// and the metrics. By default it brings up its own stack on a private local
// endpoint; with KNHK_E2E_EXTERNAL=1 it runs against a deployed stack
// (LocalStack or AWS). See docs/e2e.md.
package e2e
