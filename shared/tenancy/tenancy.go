// Package tenancy decides who may act for which tenant. A work message's
// tenant is a claim; the sender's identity is not: SQS records it as the
// SenderId system attribute of every message (an IAM user's unique id, or
// an assumed role's "AROA...:session"), and a sender cannot choose it. The
// decision combines that identity with the tenants granted to it, the
// tenants open to every admitted sender, and the executor's own identity,
// whose continuations are trusted for the tenant of the case they name.
package tenancy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// AnyTenant, as a granted or open tenant, stands for every tenant.
const AnyTenant = "*"

// SenderAttribute is the SQS system attribute naming a message's sender.
const SenderAttribute = "SenderId"

// Principal is the identity grants are keyed by: a SenderId without its
// role session name. A session name is chosen by whoever assumes the role,
// so it identifies nobody; the role id (AROA...) does. User ids (AIDA...),
// account ids and local access keys have no session part.
func Principal(senderID string) string {
	p, _, _ := strings.Cut(strings.TrimSpace(senderID), ":")
	return p
}

// Act is what a message asks to do.
type Act string

// Acts.
const (
	Start    Act = "start"    // open a case of the tenant
	Continue Act = "continue" // resume a case of the tenant
	Signal   Act = "signal"   // deliver a CloudEvent to the tenant's listen tasks
)

// ErrDenied means the sender may not act for the tenant.
var ErrDenied = errors.New("not authorized for the tenant")

// DeniedError says who was refused what.
type DeniedError struct {
	Principal string // "" when the message carried no SenderId
	Tenant    string
	Act       Act
	Reason    string
}

func (e *DeniedError) Error() string {
	who := e.Principal
	if who == "" {
		who = "an unidentified sender"
	}
	return fmt.Sprintf("%s: %s may not %s for tenant %q (%s)", ErrDenied, who, e.Act, e.Tenant, e.Reason)
}

func (e *DeniedError) Unwrap() error { return ErrDenied }

// Policy is the tenant model of one deployment.
type Policy struct {
	// Self is the executor's own principal (Principal of its caller
	// identity); "" when unknown, and then no message is taken for the
	// executor's own.
	Self string
	// Open lists tenants every admitted sender may act for without a grant
	// (AnyTenant: all of them).
	Open []string
}

// Trusted reports whether a message came from the executor itself.
func (p Policy) Trusted(senderID string) bool {
	return p.Self != "" && Principal(senderID) == p.Self
}

// Decide says whether the sender of a message, granted the tenants in
// granted, may perform act for tenant. Messages of the executor itself are
// allowed for every tenant: it names the tenant recorded in the case it
// continues (the executor checks that against the chain) or, for an event
// a case emits, the emitting case's tenant.
func (p Policy) Decide(senderID string, granted []string, act Act, tenant string) error {
	if p.Trusted(senderID) {
		return nil
	}
	if covers(p.Open, tenant) {
		return nil
	}
	who := Principal(senderID)
	if who == "" {
		return &DeniedError{Tenant: tenant, Act: act, Reason: "the message has no SenderId"}
	}
	if covers(granted, tenant) {
		return nil
	}
	return &DeniedError{Principal: who, Tenant: tenant, Act: act, Reason: "no grant"}
}

func covers(tenants []string, tenant string) bool {
	return slices.Contains(tenants, AnyTenant) || slices.Contains(tenants, tenant)
}

// ParseOpen reads a comma-separated list of open tenants ("" is none).
func ParseOpen(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// Namespace says whether tenant may start workflows of a namespace owned by
// owner (shared: open to every tenant). A namespace nobody claimed belongs
// to the default tenant.
func Namespace(tenant, owner string, shared bool, defaultTenant string) bool {
	if shared {
		return true
	}
	if owner == "" {
		owner = defaultTenant
	}
	return owner == tenant
}
