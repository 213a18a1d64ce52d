package main

import (
	"log/slog"
	"testing"
)

func TestReadSettings(t *testing.T) {
	full := map[string]string{"KNHK_RECEIPTS_TABLE": "r", "KNHK_STATE_TABLE": "s", "KNHK_ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:a", "LOG_LEVEL": "debug"}
	without := func(k string) map[string]string {
		m := map[string]string{}
		for a, b := range full {
			if a != k {
				m[a] = b
			}
		}
		return m
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		ok   bool
	}{
		{"all set", full, true},
		{"no topic disables alerts", without("KNHK_ALERTS_TOPIC_ARN"), true},
		{"no level is info", without("LOG_LEVEL"), true},
		{"no receipts table", without("KNHK_RECEIPTS_TABLE"), false},
		{"no state table", without("KNHK_STATE_TABLE"), false},
		{"bad level", map[string]string{"KNHK_RECEIPTS_TABLE": "r", "KNHK_STATE_TABLE": "s", "LOG_LEVEL": "loud"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := readSettings(func(k string) string { return tc.env[k] })
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (s.receipts != "r" || s.state != "s" || s.topic != tc.env["KNHK_ALERTS_TOPIC_ARN"]) {
				t.Fatalf("settings %+v", s)
			}
			if tc.name == "all set" && s.level != slog.LevelDebug {
				t.Fatalf("level %v", s.level)
			}
		})
	}
}
