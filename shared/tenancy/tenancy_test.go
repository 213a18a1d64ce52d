package tenancy

import (
	"errors"
	"testing"
)

func TestPrincipal(t *testing.T) {
	for in, want := range map[string]string{
		"AROAEXAMPLEROLEID:knhk-dev-executor": "AROAEXAMPLEROLEID",
		"AROAEXAMPLEROLEID:other-session":     "AROAEXAMPLEROLEID",
		"AIDAEXAMPLEUSERID":                   "AIDAEXAMPLEUSERID",
		"123456789012":                        "123456789012",
		" producer-a ":                        "producer-a",
		"":                                    "",
	} {
		if got := Principal(in); got != want {
			t.Errorf("Principal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecide(t *testing.T) {
	const self = "AROAEXECUTOR"
	p := Policy{Self: self, Open: []string{"default"}}
	cases := []struct {
		name    string
		policy  Policy
		sender  string
		granted []string
		act     Act
		tenant  string
		allowed bool
	}{
		{"executor continues any tenant", p, self + ":knhk-executor", nil, Continue, "acme", true},
		{"executor signals any tenant", p, self + ":knhk-executor", nil, Signal, "acme", true},
		{"another session of the executor role is the executor", p, self + ":x", nil, Continue, "acme", true},
		{"open tenant needs no grant", p, "AIDAMALLORY", nil, Start, "default", true},
		{"open tenant without SenderId", p, "", nil, Start, "default", true},
		{"granted tenant", p, "AIDAPRODUCER", []string{"acme"}, Start, "acme", true},
		{"granted every tenant", p, "AIDAOPS", []string{AnyTenant}, Signal, "acme", true},
		{"grant of another tenant", p, "AIDAMALLORY", []string{"mallory"}, Start, "acme", false},
		{"grant of another tenant cannot signal", p, "AIDAMALLORY", []string{"mallory"}, Signal, "acme", false},
		{"grant of another tenant cannot continue", p, "AIDAMALLORY", []string{"mallory"}, Continue, "acme", false},
		{"no grant at all", p, "AIDAMALLORY", nil, Continue, "acme", false},
		{"no SenderId, closed tenant", p, "", []string{"acme"}, Start, "acme", false},
		{"unknown self trusts nobody", Policy{}, "", nil, Continue, "acme", false},
		{"unknown self: executor-looking sender is a stranger", Policy{}, self + ":knhk-executor", nil, Continue, "acme", false},
		{"every tenant open", Policy{Open: []string{AnyTenant}}, "AIDAMALLORY", nil, Start, "acme", true},
		{"no open tenant", Policy{Self: self}, "AIDAMALLORY", nil, Start, "default", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.policy.Decide(c.sender, c.granted, c.act, c.tenant)
			if (err == nil) != c.allowed {
				t.Fatalf("Decide = %v, want allowed=%t", err, c.allowed)
			}
			if err != nil {
				var de *DeniedError
				if !errors.Is(err, ErrDenied) || !errors.As(err, &de) || de.Tenant != c.tenant || de.Act != c.act {
					t.Fatalf("error %v does not name the tenant and act", err)
				}
			}
		})
	}
}

func TestNamespace(t *testing.T) {
	cases := []struct {
		tenant, owner string
		shared, ok    bool
	}{
		{"acme", "acme", false, true},
		{"acme", "globex", false, false},
		{"acme", "globex", true, true},
		{"default", "", false, true},
		{"acme", "", false, false},
		{"acme", "", true, true},
	}
	for _, c := range cases {
		if got := Namespace(c.tenant, c.owner, c.shared, "default"); got != c.ok {
			t.Errorf("Namespace(%q, owner %q, shared %t) = %t, want %t", c.tenant, c.owner, c.shared, got, c.ok)
		}
	}
}

func TestParseOpen(t *testing.T) {
	if got := ParseOpen(" default, acme ,,"); len(got) != 2 || got[0] != "default" || got[1] != "acme" {
		t.Fatalf("ParseOpen = %q", got)
	}
	if got := ParseOpen(""); got != nil {
		t.Fatalf("ParseOpen(\"\") = %q", got)
	}
}
