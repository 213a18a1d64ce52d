package breaker

import (
	"fmt"
	"net/http"
	"sync"
)

// Set holds one breaker per key (usually a host name), created on first use
// with the Set's Config. It is safe for concurrent use.
type Set struct {
	cfg Config

	mu       sync.Mutex
	breakers map[string]*Breaker
}

// NewSet returns an empty Set whose breakers use cfg.
func NewSet(cfg Config) *Set {
	return &Set{cfg: cfg.withDefaults(), breakers: make(map[string]*Breaker)}
}

// Get returns the breaker of key, creating it closed if needed.
func (s *Set) Get(key string) *Breaker {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.breakers[key]
	if !ok {
		b = New(key, s.cfg)
		s.breakers[key] = b
	}
	return b
}

// State returns the state of key's breaker; Closed for a key never used.
func (s *Set) State(key string) State {
	s.mu.Lock()
	b, ok := s.breakers[key]
	s.mu.Unlock()
	if !ok {
		return Closed
	}
	return b.State()
}

// Do runs fn through key's breaker; see Breaker.Do.
func (s *Set) Do(key string, fn func() error) error {
	return s.Get(key).Do(fn)
}

// Transport wraps next (http.DefaultTransport if nil) so that every request
// goes through the breaker of its URL's host (host[:port]). Transport errors
// and responses with status 429 or 5xx count as failures; the response is
// still returned to the caller unchanged. A rejected request fails with an
// *OpenError without reaching next.
func (s *Set) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{set: s, next: next}
}

type transport struct {
	set  *Set
	next http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		return nil, fmt.Errorf("breaker transport: request without URL")
	}
	b := t.set.Get(req.URL.Host)
	ticket, err := b.Allow()
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // a RoundTripper must close the body, even on errors
		}
		if cb := t.set.cfg.OnReject; cb != nil {
			cb(req.URL.Host)
		}
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			ticket.Done(false)
		}
	}()
	resp, err := t.next.RoundTrip(req)
	done = true
	switch {
	case err != nil:
		ticket.Done(!t.set.cfg.IsFailure(err))
	default:
		ticket.Done(!FailedStatus(resp.StatusCode))
	}
	return resp, err
}

// FailedStatus reports whether an HTTP status counts as a failure of the host:
// 429 Too Many Requests and every 5xx.
func FailedStatus(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}
