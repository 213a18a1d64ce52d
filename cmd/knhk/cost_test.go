package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCapacityHandComputation: the sample mix is docs/cost.md's worked
// capacity example, and the command prints its hand-computed figures.
func TestCapacityHandComputation(t *testing.T) {
	out, err := execute(t, "", "capacity", "--rate", "1000", "--mix", filepath.Join("..", "..", "events", "capacity", "five-task-mix.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Lambda concurrency 120.0 (mapping maximum concurrency 120)",
		"DynamoDB 7000 write and 1000 read units/s, 2000 SQS requests/s, 7 stream shards",
		"cost $0.000006920 per case, $17936.66 a month",
		"binding first: on-demand write request units per second per table",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if _, err := execute(t, "", "capacity", "--rate", "-1", "--mix", filepath.Join("..", "..", "events", "capacity", "five-task-mix.json")); err == nil {
		t.Error("a negative rate was accepted")
	}
}
