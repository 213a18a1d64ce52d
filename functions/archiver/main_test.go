package main

import (
	"testing"
	"time"
)

func TestReadSettings(t *testing.T) {
	full := map[string]string{"KNHK_RECEIPTS_TABLE": "r", "KNHK_STATE_TABLE": "s", "KNHK_CHECKPOINTS_TABLE": "c",
		"KNHK_ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:a", "KNHK_CHECKPOINT_KEY_ID": "k", "KNHK_ARCHIVE_BUCKET": "b",
		"KNHK_PAYLOAD_BUCKET": "p"}
	get := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	s, err := readSettings(get(full))
	if err != nil || s.bucket != "b" || s.payloads != "p" || s.retention != 30*24*time.Hour {
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
	full["KNHK_RECEIPT_RETENTION_DAYS"] = "7"
	if s, err := readSettings(get(full)); err != nil || s.retention != 7*24*time.Hour {
		t.Fatalf("retention 7: %+v %v", s, err)
	}
	full["KNHK_RECEIPT_RETENTION_DAYS"] = "0"
	if _, err := readSettings(get(full)); err == nil {
		t.Fatal("retention 0 accepted")
	}
}
