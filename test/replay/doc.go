// Package replay holds the engine's replay corpus: recorded cases (the
// workflow document, every stimulus in order and what the engine decided on
// each) that every test run replays with the current engine, which must
// decide exactly the same events and effects again. It is how an engine
// change proves that cases started under the previous release continue
// unchanged after a deploy (docs/ARCHITECTURE.md, "Changing the engine").
//
// A new scenario is recorded with the command below, which never overwrites
// a recorded case:
//
//	go test ./test/replay -run TestReplayCorpus -update
package replay
