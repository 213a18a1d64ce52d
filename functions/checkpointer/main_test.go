package main

import "testing"

func TestReadSettings(t *testing.T) {
	full := map[string]string{"KNHK_RECEIPTS_TABLE": "r", "KNHK_STATE_TABLE": "s", "KNHK_CHECKPOINTS_TABLE": "c",
		"KNHK_ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:a", "KNHK_CHECKPOINT_KEY_ID": "k"}
	if s, err := readSettings(func(k string) string { return full[k] }); err != nil || s.checkpoints != "c" || s.key != "k" {
		t.Fatalf("all set: %+v %v", s, err)
	}
	for k := range full {
		if _, err := readSettings(func(n string) string {
			if n == k {
				return ""
			}
			return full[n]
		}); err == nil {
			t.Errorf("without %s: accepted", k)
		}
	}
}
