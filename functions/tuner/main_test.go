package main

import "testing"

func TestReadSettings(t *testing.T) {
	env := map[string]string{"KNHK_STATE_TABLE": "s", "KNHK_RECEIPTS_TABLE": "r", "KNHK_WORK_QUEUE_URL": "http://q",
		"KNHK_WORK_QUEUE_ARN": "arn:q", "KNHK_EXECUTOR_FUNCTION": "x", "KNHK_EXECUTOR_MAX_CONCURRENCY": "20",
		"KNHK_TUNER_GUARD": `{"enabled":true,"allow":["maxConcurrency"]}`}
	s, err := readSettings(func(k string) string { return env[k] })
	if err != nil || s.limit != 20 || !s.guard.Enabled {
		t.Fatalf("settings %+v, %v", s, err)
	}
	for k, v := range map[string]string{"KNHK_STATE_TABLE": "", "KNHK_EXECUTOR_MAX_CONCURRENCY": "1", "KNHK_TUNER_GUARD": `{"allow":["speed"]}`} {
		bad := map[string]string{}
		for kk, vv := range env {
			bad[kk] = vv
		}
		bad[k] = v
		if _, err := readSettings(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%s=%q accepted", k, v)
		}
	}
}
