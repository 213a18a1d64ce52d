package engine

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knhk/knhk/shared/workflow/dsl"
)

func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

// sampleService answers every call of the sample workflows: it echoes the
// request and approves it, the answer a healthy dependency gives.
func sampleService(w http.ResponseWriter, r *http.Request) {
	var body any
	if data, _ := io.ReadAll(r.Body); len(data) > 0 {
		_ = json.Unmarshal(data, &body)
	}
	w.Header().Set("Content-Type", "application/json")
	status := "accepted"
	if strings.HasPrefix(r.Host, "acquirer.") {
		status = "APPROVED"
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"authCode":     "A1B2C3",
		"entryId":      "entry-1",
		"messageId":    "msg-1",
		"assignmentId": "asg-1",
		"id":           "svc-" + strings.ReplaceAll(strings.Trim(r.URL.Path, "/"), "/", "-"),
		"host":         strings.Split(r.Host, ":")[0],
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

// hostMapped sends every request to addr, whatever host it names.
func hostMapped(addr string) *http.Client {
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}}
}

// sampleOutputs are the outputs the samples produce with their sample
// inputs against sampleService.
var sampleOutputs = map[string]string{
	"cross-border-payment":       `{"messageId":"msg-1","status":"released"}`,
	"grid-operations":            `{"readingsChecked":4,"substationId":"SUB-NORTH-014"}`,
	"insurance-claim":            `{"amount":1000,"claimId":"clm_55102","payoutId":"payout-1","status":"paid"}`,
	"order-routing":              `{"assignmentId":"asg-1","carrier":"air-express","centre":"FRA-1","orderId":"ord_88213"}`,
	"payment-processing":         `{"ledgerEntryId":"entry-1","paymentId":"pay_7f3c2a91","status":"authorised"}`,
	"supply-chain-replenishment": `{"skusReviewed":3,"warehouseId":"WH-LYON-02"}`,
}

func TestSamples(t *testing.T) {
	root := repoRoot(t)
	files, _ := filepath.Glob(filepath.Join(root, "events", "workflows", "*.yaml"))
	if len(files) == 0 {
		t.Skip("no sample workflows under events/workflows")
	}
	srv := httptest.NewServer(http.HandlerFunc(sampleService))
	defer srv.Close()
	client := hostMapped(srv.Listener.Addr().String())
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wf, err := dsl.Load(data)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			var input any
			if raw, err := os.ReadFile(filepath.Join(root, "events", "inputs", name+".json")); err == nil {
				if err := json.Unmarshal(raw, &input); err != nil {
					t.Fatalf("input: %v", err)
				}
			}
			secrets := map[string]any{}
			for _, s := range wf.Use.Secrets {
				secrets[s] = map[string]any{"token": "t-" + s, "username": "u", "password": "p"}
			}
			res, err := Run(context.Background(), wf, input, RunOptions{
				CaseID: name, HTTPClient: client, Events: sampleEvents(wf, input),
				Options: Options{Secrets: secrets},
			})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			t.Logf("%s: %s output %s error %+v (%d events)", name, res.Status, js(res.Output), res.Error, len(res.History))
			if res.Status != StatusCompleted {
				t.Fatalf("status %s, error %+v", res.Status, res.Error)
			}
			if got := js(res.Output); got != sampleOutputs[name] {
				t.Fatalf("output\n got %s\nwant %s", got, sampleOutputs[name])
			}
		})
	}
}

// sampleEvents builds, for every listen task of wf, an event each filter
// accepts: an approval, correlated by subject with the input's claimId.
func sampleEvents(wf *dsl.Workflow, input any) []map[string]any {
	in, _ := input.(map[string]any)
	var out []map[string]any
	var walk func(tl dsl.TaskList)
	walk = func(tl dsl.TaskList) {
		for _, nt := range tl {
			t := nt.Task
			switch {
			case t.Listen != nil:
				var filters []dsl.EventFilter
				if t.Listen.To.One != nil {
					filters = append(filters, *t.Listen.To.One)
				}
				filters = append(filters, t.Listen.To.All...)
				filters = append(filters, t.Listen.To.Any...)
				for _, f := range filters {
					ev := map[string]any{"specversion": "1.0", "id": nt.Name, "source": "sample", "subject": in["claimId"],
						"data": map[string]any{"approved": true, "decision": "approved", "approvedAmount": 1000, "adjuster": "adjuster-1"}}
					for k, v := range f.With {
						ev[k] = v
					}
					out = append(out, ev)
				}
			case t.Do != nil:
				walk(t.Do.Tasks)
			case t.Try != nil:
				walk(t.Try.Try)
			case t.Fork != nil:
				walk(t.Fork.Branches)
			case t.For != nil:
				walk(t.For.Do)
			}
		}
	}
	walk(wf.Do)
	return out
}
