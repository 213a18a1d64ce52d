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
	"strings"
	"time"

	"github.com/knhk/knhk/shared/hostmap"
)

// Domain is the host suffix of every service the samples call.
const Domain = ".knhk.local"

// Handler answers every sample call as a healthy dependency would: it
// approves, scores low risk, finds no sanctions hit, and echoes the request.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body any
		if data, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20)); len(data) > 0 {
			_ = json.Unmarshal(data, &body)
		}
		host := strings.Split(r.Host, ":")[0]
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
