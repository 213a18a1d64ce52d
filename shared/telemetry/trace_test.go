package telemetry

import (
	"strings"
	"testing"
)

func TestParseTraceparent(t *testing.T) {
	const trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tests := []struct {
		in string
		ok bool
	}{
		{"00-" + trace + "-" + span + "-01", true},
		{"00-" + trace + "-" + span + "-00", true},
		{"01-" + trace + "-" + span + "-01-future", true},
		{"01-" + trace + "-" + span + "-01", true},
		{"00-" + trace + "-" + span + "-01-extra", false}, // version 00 has no extra fields
		{"01-" + trace + "-" + span + "-01x", false},
		{"ff-" + trace + "-" + span + "-01", false},
		{"00-" + strings.ToUpper(trace) + "-" + span + "-01", false},
		{"00-" + strings.Repeat("0", 32) + "-" + span + "-01", false},
		{"00-" + trace + "-" + strings.Repeat("0", 16) + "-01", false},
		{"00_" + trace + "-" + span + "-01", false},
		{"00-" + trace + "-" + span + "-0g", false},
		{"0-" + trace + "-" + span + "-01", false},
		{"", false},
	}
	for _, tc := range tests {
		tr, sp, ok := ParseTraceparent(tc.in)
		if ok != tc.ok {
			t.Errorf("ParseTraceparent(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if ok && (tr != trace || sp != span) {
			t.Errorf("ParseTraceparent(%q) = %s, %s", tc.in, tr, sp)
		}
		if !ok && (tr != "" || sp != "") {
			t.Errorf("ParseTraceparent(%q) returned ids on failure", tc.in)
		}
	}
}

func FuzzParseTraceparent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		tr, sp, ok := ParseTraceparent(s)
		if !ok {
			return
		}
		if len(tr) != 32 || len(sp) != 16 || !isHex(tr) || !isHex(sp) {
			t.Fatalf("accepted %q with ids %q %q", s, tr, sp)
		}
		if !strings.Contains(s, tr+"-"+sp) || s[0:2] == "ff" {
			t.Fatalf("ids %q %q not taken from %q", tr, sp, s)
		}
		if s[0:2] == "00" && len(s) != 55 {
			t.Fatalf("version 00 with length %d accepted", len(s))
		}
	})
}
