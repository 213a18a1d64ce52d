package httpcall

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestOpenAPIRequiredRequestBodyIsAFaultWithoutARequest pins OpenAPI's
// requestBody.required (3.x) and a required `in: body` parameter (2.0): an
// operation that requires a body and is given none faults before any
// request is sent.
func TestOpenAPIRequiredRequestBodyIsAFaultWithoutARequest(t *testing.T) {
	const oas3Required = `openapi: 3.0.0
servers:
  - url: /api
paths:
  /orders:
    post:
      operationId: createOrder
      requestBody:
        $ref: '#/components/requestBodies/order'
    patch:
      operationId: touchOrders
      requestBody:
        content:
          application/json: {}
components:
  requestBodies:
    order:
      required: true
      content:
        application/json:
          schema:
            type: object
`
	const swagger2Required = `swagger: "2.0"
host: %s
schemes: [http]
basePath: /api
paths:
  /orders:
    post:
      operationId: createOrder
      parameters:
        - name: order
          in: body
          required: true
`
	var sent atomic.Int32
	var host string
	mux := http.NewServeMux()
	mux.HandleFunc("/oas3.yaml", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, oas3Required) })
	mux.HandleFunc("/swagger2.yaml", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, swagger2Required, host) })
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		sent.Add(1)
		echo(w, r)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host = strings.TrimPrefix(srv.URL, "http://")
	c := &Client{HTTP: srv.Client()}
	for _, tc := range []struct {
		name, doc, op string
		params        map[string]any
		wantFault     bool
	}{
		{"3.x required body absent", "/oas3.yaml", "createOrder", nil, true},
		{"3.x required body null", "/oas3.yaml", "createOrder", map[string]any{"body": nil}, true},
		{"3.x required body given", "/oas3.yaml", "createOrder", map[string]any{"body": map[string]any{"sku": "a"}}, false},
		{"3.x optional body absent", "/oas3.yaml", "touchOrders", nil, false},
		{"2.0 required body absent", "/swagger2.yaml", "createOrder", nil, true},
		{"2.0 required body null", "/swagger2.yaml", "createOrder", map[string]any{"order": nil}, true},
		{"2.0 required body given", "/swagger2.yaml", "createOrder", map[string]any{"order": map[string]any{"sku": "a"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent.Store(0)
			_, perr := c.DoOpenAPI(context.Background(), OpenAPIRequest{Document: srv.URL + tc.doc, OperationID: tc.op, Parameters: tc.params})
			if tc.wantFault {
				if perr == nil || perr.Type != errConfiguration || !strings.Contains(perr.Detail, "request body") {
					t.Fatalf("fault %+v, want a configuration fault naming the request body", perr)
				}
				if n := sent.Load(); n != 0 {
					t.Fatalf("%d requests sent, want none", n)
				}
				return
			}
			if perr != nil {
				t.Fatal(perr)
			}
			if n := sent.Load(); n != 1 {
				t.Fatalf("%d requests sent, want one", n)
			}
		})
	}
}
