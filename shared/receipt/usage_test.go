package receipt

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

var fullUsage = Usage{BilledMs: 37, ReadUnits: 0.5, WriteUnits: 2, Requests: 9, Arch: "arm64", MemoryMB: 1024,
	InvocationMicros: 100000, SQSRequests: 2, SNSPublishes: 1, KMSRequests: 1, KMSAsymRequests: 1, SecretsRequests: 1,
	S3Puts: 1, S3Gets: 1, HTTPCalls: 3, HTTPBytes: 1460}

// TestUsageMembers: every metered member survives encoding, decoding and
// verification; the canonical form is what the general canonicalizer makes
// of it (sorted members); members that are zero are left out, so a receipt
// with the first four members only is encoded as before they existed
// (TestGoldenHash pins that form).
func TestUsageMembers(t *testing.T) {
	r, err := New(nil, "acme", "c", genesisEvent("acme"), WithUsage(fullUsage))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := r.Canonical()
	d, err := Decode(c)
	if err != nil {
		t.Fatalf("decode %s: %v", c, err)
	}
	if !reflect.DeepEqual(*d.Usage, fullUsage) {
		t.Errorf("usage %+v, want %+v", *d.Usage, fullUsage)
	}
	if f := VerifyChain([]*Receipt{d}); len(f) != 0 {
		t.Errorf("findings %v", f)
	}
	old, _ := New(nil, "acme", "c", genesisEvent("acme"), WithUsage(Usage{BilledMs: 1, Requests: 1}))
	oc, _ := old.Canonical()
	if !strings.Contains(string(oc), `"usage":{"billedMs":1,"readUnits":0,"requests":1,"writeUnits":0}`) {
		t.Errorf("old form changed: %s", oc)
	}
	for name, m := range map[string]string{
		"explicit zero":  strings.Replace(string(c), `"s3Gets":1`, `"s3Gets":0`, 1),
		"negative count": strings.Replace(string(c), `"sqsRequests":2`, `"sqsRequests":-2`, 1),
		"unknown member": strings.Replace(string(c), `"s3Gets":1`, `"s3Deletes":1,"s3Gets":1`, 1),
	} {
		if m == string(c) {
			t.Fatalf("%s: mutation did not apply", name)
		}
		if d, err := Decode([]byte(m)); err == nil {
			if f := VerifyChain([]*Receipt{d}); len(f) == 0 {
				t.Errorf("%s: accepted", name)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func BenchmarkEncodeHashFullUsage(b *testing.B) {
	r := typical(b)
	u := fullUsage
	r.Usage = &u
	b.ReportAllocs()
	for b.Loop() {
		if err := r.seal(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(r.body)), "canonical-bytes")
}
