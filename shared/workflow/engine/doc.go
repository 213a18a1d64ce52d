// Package engine is KNHK's deterministic workflow engine.
//
// The core (Compile, Program.Decide, State, Replay) is a pure function of a
// descriptor, a case's history and one stimulus: it walks the workflow from
// the top, reuses what the history recorded for every task occurrence and
// executes what it did not, appending one event per task and asking for
// effects (HTTP/OpenAPI calls, emits, timers) it never performs itself. No
// clock is read and nothing is random inside the core: times come from
// stimuli and retry jitter is derived from the case id, the task and the
// attempt. Fork branches advance together within a decision, and their
// effects are requested together so the shell can perform them in
// parallel.
//
// The shell (Run, package httpcall) performs the effects and feeds the
// results back until the case ends.
package engine
