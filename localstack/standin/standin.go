// Package standin serves local stand-ins for the services the sample
// workflows call (fraud scoring, acquirer, ledger, screening, carriers,
// suppliers, ...), all on one loopback listener, and routes the samples'
// `*.knhk.local` hosts to it. `make run`, the end-to-end suite and the tests
// use it; nothing in a deployed stack does.
package standin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/knhk/knhk/shared/hostmap"
)

// Domain is the host suffix of every service the samples call.
const Domain = ".knhk.local"

// Handler answers every sample call as a healthy dependency would (see
// Services), deduplicating on the Idempotency-Key header.
func Handler() http.Handler { return New() }

// Hosts with special behaviour: a `slow.` host answers after SlowDelay, a
// `failing.` host answers 503 Service Unavailable.
const (
	SlowPrefix    = "slow."
	FailingPrefix = "failing."
	SlowDelay     = time.Second
	// TunablePrefix is a dependency whose delay and failure share a
	// scenario sets while it runs (Services.SetTunable).
	TunablePrefix = "tunable."
)

// Services are the stand-ins with the bookkeeping of a service that honours
// the Idempotency-Key header (IETF draft-ietf-httpapi-idempotency-key-header):
// the first request with a key performs the effect and its response is
// stored; a repeat of the key gets the stored response (marked with
// Idempotent-Replayed: true) and performs nothing. A repeat that arrives
// while the first is still being handled waits for it. Requests without the
// header each perform an effect.
type Services struct {
	mu      sync.Mutex
	keys    map[string]*stored
	stats   Stats
	tunable Tunable
	calls   int64 // requests to the tunable host
}

// Tunable is how the tunable host behaves: every call waits Delay; a share
// FailEvery of them (every ⌈1/share⌉-th call, in a fixed pattern, so a
// scenario is reproducible) answers 503 without performing its effect, so
// that a retry with the same Idempotency-Key may succeed.
type Tunable struct {
	Delay time.Duration
	Fail  float64 // share of calls that fail, in [0, 1]
}

// SetTunable sets the tunable host's behaviour for the calls that follow.
func (s *Services) SetTunable(t Tunable) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tunable = t
}

// Stats count what the stand-ins were asked and did.
type Stats struct {
	Requests int // every request
	Effects  int // requests that performed an effect: first of a key, or unkeyed
	Replays  int // repeats of a key answered from the stored response
	Unkeyed  int // requests without an Idempotency-Key
}

type stored struct {
	done        chan struct{}
	status      int
	contentType string
	body        []byte
}

// New returns stand-in services with no stored keys.
func New() *Services { return &Services{keys: map[string]*stored{}} }

// Stats returns the counts so far.
func (s *Services) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// ServeHTTP answers one request, replaying the stored response of a
// repeated Idempotency-Key.
func (s *Services) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.Host, TunablePrefix) && s.tunableFails(r) {
		http.Error(w, "stand-in: the tunable dependency fails this call", http.StatusServiceUnavailable)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	s.stats.Requests++
	if key == "" {
		s.stats.Unkeyed++
		s.stats.Effects++
		s.mu.Unlock()
		rec := httptest.NewRecorder()
		answer(rec, r)
		replay(w, &stored{status: rec.Code, contentType: rec.Header().Get("Content-Type"), body: rec.Body.Bytes()}, false)
		return
	}
	if prev, ok := s.keys[key]; ok {
		s.stats.Replays++
		s.mu.Unlock()
		select {
		case <-prev.done:
			replay(w, prev, true)
		case <-r.Context().Done():
		}
		return
	}
	cur := &stored{done: make(chan struct{})}
	s.keys[key] = cur
	s.stats.Effects++
	s.mu.Unlock()
	rec := httptest.NewRecorder()
	answer(rec, r)
	cur.status, cur.contentType, cur.body = rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()
	close(cur.done)
	replay(w, cur, false)
}

// tunableFails waits the tunable host's delay and reports whether this call
// is one of the share that fails: call n fails when ⌊n·share⌋ moved on.
func (s *Services) tunableFails(r *http.Request) bool {
	s.mu.Lock()
	t := s.tunable
	s.calls++
	n := s.calls
	s.mu.Unlock()
	if t.Delay > 0 {
		select {
		case <-time.After(t.Delay):
		case <-r.Context().Done():
			return true // the caller gave up; nothing is answered
		}
	}
	f := min(max(t.Fail, 0), 1)
	if int64(float64(n)*f) == int64(float64(n-1)*f) {
		return false // answered by the ordinary path, which counts it
	}
	s.mu.Lock()
	s.stats.Requests++
	s.mu.Unlock()
	return true
}

func replay(w http.ResponseWriter, st *stored, replayed bool) {
	if st.contentType != "" {
		w.Header().Set("Content-Type", st.contentType)
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(st.status)
	_, _ = w.Write(st.body)
}

// answer approves, scores low risk, finds no sanctions hit, and echoes the
// request.
func answer(w http.ResponseWriter, r *http.Request) {
	var body any
	if data, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20)); len(data) > 0 {
		_ = json.Unmarshal(data, &body)
	}
	host := strings.Split(r.Host, ":")[0]
	switch {
	case strings.HasPrefix(host, SlowPrefix):
		// The effect completes even when the caller gave up waiting, as a
		// real service's would; a repeat of its key gets the answer.
		time.Sleep(SlowDelay)
	case strings.HasPrefix(host, FailingPrefix):
		http.Error(w, "stand-in: failing on purpose", http.StatusServiceUnavailable)
		return
	}
	status := "accepted"
	if strings.HasPrefix(host, "acquirer.") {
		status = "APPROVED"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"authCode":     "A1B2C3",
		"entryId":      "entry-1",
		"messageId":    "msg-1",
		"assignmentId": "asg-1",
		"id":           "svc-" + strings.ReplaceAll(strings.Trim(r.URL.Path, "/"), "/", "-"),
		"host":         host,
		"status":       status,
		"approved":     true,
		"score":        10,
		"risk":         "low",
		"match":        false,
		"hit":          false,
		"covered":      true,
		"riskLevel":    "low",
		"payoutId":     "payout-1",
		"hits":         []any{},
		"request":      body,
	})
}

// Outputs are the outputs the sample workflows produce with their sample
// inputs (events/inputs) against Handler, and the adjuster event of
// Event for the insurance claim.
var Outputs = map[string]string{
	"cross-border-payment":       `{"messageId":"msg-1","status":"released"}`,
	"grid-operations":            `{"readingsChecked":4,"substationId":"SUB-NORTH-014"}`,
	"insurance-claim":            `{"amount":1000,"claimId":"clm_55102","payoutId":"payout-1","status":"paid"}`,
	"order-routing":              `{"assignmentId":"asg-1","carrier":"air-express","centre":"FRA-1","orderId":"ord_88213"}`,
	"payment-processing":         `{"ledgerEntryId":"entry-1","paymentId":"pay_7f3c2a91","status":"authorised"}`,
	"supply-chain-replenishment": `{"skusReviewed":3,"warehouseId":"WH-LYON-02"}`,
}

// AdjusterDecision is the CloudEvent that resumes an insurance claim waiting
// for its adjuster (its listen task correlates on the subject).
func AdjusterDecision(claimID, id string) map[string]any {
	return map[string]any{
		"specversion": "1.0", "id": id, "source": "https://adjusters.knhk.local",
		"type": "com.knhk.claim.decided.v1", "subject": claimID, "time": "2026-11-27T10:20:00Z",
		"datacontenttype": "application/json",
		"data":            map[string]any{"approved": true, "decision": "approved", "approvedAmount": 1000, "adjuster": "adjuster-1"},
	}
}

// Client is an HTTP client whose `*.knhk.local` requests reach addr.
func Client(addr string) *http.Client {
	m := hostmap.Map{strings.TrimPrefix(Domain, "."): addr}
	return &http.Client{Timeout: 30 * time.Second, Transport: m.Transport(http.DefaultTransport.(*http.Transport))}
}
