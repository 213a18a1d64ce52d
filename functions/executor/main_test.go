package main

import (
	"testing"
	"time"
)

func TestReadSettings(t *testing.T) {
	base := map[string]string{"KNHK_RECEIPTS_TABLE": "r", "KNHK_STATE_TABLE": "s", "KNHK_WORK_QUEUE_URL": "http://q"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	cases := []struct {
		name string
		env  map[string]string
		ok   bool
		chk  func(settings) bool
	}{
		{"defaults", base, true, func(s settings) bool {
			return s.cfg.MaxReceiveCount == 5 && s.cfg.Margin == 5*time.Second && s.cfg.FanOut && s.secretsPrefix == "knhk/" && len(s.hosts) == 0 &&
				s.latestTTL == 2*time.Second
		}},
		{"tuned", with("KNHK_MAX_RECEIVE_COUNT", "3", "KNHK_DEADLINE_MARGIN", "2500ms", "KNHK_WORKERS", "4", "KNHK_FAN_OUT", "false",
			"KNHK_LATEST_TTL", "0", "KNHK_SECRETS_PREFIX", "prod/knhk/", "KNHK_HTTP_HOST_MAP", "knhk.local=127.0.0.1:9000"), true, func(s settings) bool {
			addr, ok := s.hosts.Lookup("fraud.knhk.local")
			return s.cfg.MaxReceiveCount == 3 && s.cfg.Margin == 2500*time.Millisecond && s.cfg.Workers == 4 && !s.cfg.FanOut && s.latestTTL == 0 &&
				s.secretsPrefix == "prod/knhk/" && ok && addr == "127.0.0.1:9000"
		}},
		{"no receipts table", with("KNHK_RECEIPTS_TABLE", ""), false, nil},
		{"no queue", with("KNHK_WORK_QUEUE_URL", ""), false, nil},
		{"bad receive count", with("KNHK_MAX_RECEIVE_COUNT", "0"), false, nil},
		{"bad margin", with("KNHK_DEADLINE_MARGIN", "soon"), false, nil},
		{"bad workers", with("KNHK_WORKERS", "-1"), false, nil},
		{"bad latest ttl", with("KNHK_LATEST_TTL", "-1s"), false, nil},
		{"bad fan-out", with("KNHK_FAN_OUT", "sometimes"), false, nil},
		{"bad host map", with("KNHK_HTTP_HOST_MAP", "knhk.local"), false, nil},
		{"bad breaker", with("HTTP_FAILURE_THRESHOLD", "many"), false, nil},
		{"bad level", with("LOG_LEVEL", "loud"), false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := readSettings(func(k string) string { return tc.env[k] })
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.chk != nil && !tc.chk(s) {
				t.Fatalf("settings %+v", s)
			}
		})
	}
}
