// Package hostmap routes HTTP connections for chosen host suffixes to fixed
// addresses, as curl's --resolve does: local runs send the sample workflows'
// `*.knhk.local` calls to stand-in services without touching DNS.
package hostmap

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Map sends a host ending in a suffix (or equal to it) to an address.
type Map map[string]string

// Parse reads "suffix=host:port[,suffix=host:port...]"; an empty string is an
// empty map.
func Parse(s string) (Map, error) {
	m := Map{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		suffix, addr, ok := strings.Cut(part, "=")
		suffix = strings.TrimPrefix(strings.TrimSpace(suffix), ".")
		if !ok || suffix == "" {
			return nil, fmt.Errorf("host map entry %q: want suffix=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("host map entry %q: %w", part, err)
		}
		m[strings.ToLower(suffix)] = addr
	}
	return m, nil
}

// Lookup returns the address a host is mapped to.
func (m Map) Lookup(host string) (string, bool) {
	host = strings.ToLower(host)
	for suffix, addr := range m {
		if host == suffix || strings.HasSuffix(host, "."+suffix) {
			return addr, true
		}
	}
	return "", false
}

// Transport returns a copy of base that dials mapped hosts at their
// addresses and every other host as usual.
func (m Map) Transport(base *http.Transport) *http.Transport {
	t := base.Clone()
	if len(m) == 0 {
		return t
	}
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	t.DialContext = func(ctx context.Context, network, target string) (net.Conn, error) {
		if host, _, err := net.SplitHostPort(target); err == nil {
			if addr, ok := m.Lookup(host); ok {
				target = addr
			}
		}
		return d.DialContext(ctx, network, target)
	}
	return t
}
