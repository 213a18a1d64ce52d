package telemetry

import "strings"

// ParseTraceparent extracts the trace id and parent span id from a W3C
// traceparent header ("00-<32 hex>-<16 hex>-<2 hex>"). It accepts later
// versions as the specification asks (their extra fields are ignored) and
// rejects version ff, upper-case hex, and all-zero ids.
func ParseTraceparent(s string) (traceID, spanID string, ok bool) {
	const size = 55 // 2 + 1 + 32 + 1 + 16 + 1 + 2
	if len(s) < size {
		return "", "", false
	}
	version := s[0:2]
	if !isHex(version) || version == "ff" {
		return "", "", false
	}
	if version == "00" && len(s) != size {
		return "", "", false
	}
	if len(s) > size && s[size] != '-' {
		return "", "", false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return "", "", false
	}
	traceID, spanID, flags := s[3:35], s[36:52], s[53:55]
	if !isHex(traceID) || !isHex(spanID) || !isHex(flags) {
		return "", "", false
	}
	if strings.Count(traceID, "0") == len(traceID) || strings.Count(spanID, "0") == len(spanID) {
		return "", "", false
	}
	return traceID, spanID, true
}

// isHex reports whether s is non-empty lower-case hexadecimal.
func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
