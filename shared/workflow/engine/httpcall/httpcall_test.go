package httpcall

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// echo answers with what it received.
func echo(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/moved":
		http.Redirect(w, r, "/target", http.StatusFound)
		return
	case "/text":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "plain words")
		return
	case "/missing":
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	user, pass, _ := r.BasicAuth()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery,
		"auth": r.Header.Get("Authorization"), "user": user, "pass": pass,
		"x": r.Header.Get("X-Trace"), "body": string(body), "n": 12345678901,
	})
}

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(echo))
	defer srv.Close()
	c := &Client{HTTP: srv.Client()}
	ctx := context.Background()

	out, perr := c.Do(ctx, Request{Method: "post", URI: srv.URL + "/a", Headers: map[string]string{"X-Trace": "t1"},
		Query: map[string]string{"b": "2", "a": "1"}, Body: map[string]any{"k": "v"}, Auth: &Auth{Scheme: "bearer", Token: "tok"}})
	if perr != nil {
		t.Fatal(perr)
	}
	m := out.(map[string]any)
	if m["method"] != "POST" || m["query"] != "a=1&b=2" || m["auth"] != "Bearer tok" || m["x"] != "t1" || m["body"] != `{"k":"v"}` {
		t.Fatalf("content %v", m)
	}
	if m["n"] != 12345678901 {
		t.Fatalf("large integers must stay integers: %#v", m["n"])
	}

	out, _ = c.Do(ctx, Request{URI: srv.URL + "/b", Auth: &Auth{Scheme: "basic", Username: "u", Password: "p"}, Output: OutputResponse})
	resp := out.(map[string]any)
	if resp["statusCode"] != 200 || resp["content"].(map[string]any)["user"] != "u" {
		t.Fatalf("response %v", resp)
	}
	req := resp["request"].(map[string]any)
	if req["method"] != "GET" || !strings.HasSuffix(req["uri"].(string), "/b") || req["headers"].(map[string]any)["Authorization"] != "[redacted]" {
		t.Fatalf("request %v", req)
	}

	out, _ = c.Do(ctx, Request{URI: srv.URL + "/text", Output: OutputRaw})
	if raw, _ := base64.StdEncoding.DecodeString(out.(string)); string(raw) != "plain words" {
		t.Fatalf("raw %v", out)
	}
	if out, _ = c.Do(ctx, Request{URI: srv.URL + "/text"}); out != "plain words" {
		t.Fatalf("text content %v", out)
	}
}

func TestDoErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(echo))
	defer srv.Close()
	c := &Client{HTTP: srv.Client()}
	ctx := context.Background()
	cases := []struct {
		name   string
		req    Request
		typ    string
		status int
	}{
		{"not found", Request{URI: srv.URL + "/missing"}, errCommunication, 404},
		{"redirect not allowed", Request{URI: srv.URL + "/moved"}, errCommunication, 302},
		{"bad endpoint", Request{URI: "not a url"}, errConfiguration, 400},
		{"unreachable", Request{URI: "http://127.0.0.1:1/x"}, errCommunication, 503},
		{"unknown auth", Request{URI: srv.URL, Auth: &Auth{Scheme: "digest"}}, errConfiguration, 400},
	}
	for _, tc := range cases {
		_, perr := c.Do(ctx, tc.req)
		if perr == nil || perr.Type != tc.typ || perr.Status != tc.status {
			t.Errorf("%s: got %+v, want %s %d", tc.name, perr, tc.typ, tc.status)
		}
	}
	if out, perr := c.Do(ctx, Request{URI: srv.URL + "/moved", Redirect: true}); perr != nil || out.(map[string]any)["path"] != "/target" {
		t.Fatalf("redirect: true must follow: %v %v", out, perr)
	}
}

func TestRedacted(t *testing.T) {
	r := Request{Headers: map[string]string{"authorization": "Bearer x", "A": "b"}, Auth: &Auth{Scheme: "basic", Password: "p"}}
	red := r.Redacted()
	if red.Auth.Password != "" || red.Headers["authorization"] != "[redacted]" || red.Headers["A"] != "b" {
		t.Fatalf("redacted %+v", red)
	}
	if r.Auth.Password != "p" || r.Headers["authorization"] != "Bearer x" {
		t.Fatal("Redacted must not change the original")
	}
}

const oas3 = `openapi: 3.0.0
servers:
  - url: /api
paths:
  /items/{id}:
    parameters:
      - name: id
        in: path
        required: true
    put:
      operationId: putItem
      parameters:
        - $ref: '#/components/parameters/trace'
        - name: dry
          in: query
      requestBody:
        content:
          application/json: {}
components:
  parameters:
    trace:
      name: X-Trace
      in: header
`

func TestOpenAPI(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/doc.yaml", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, oas3) })
	mux.HandleFunc("/api/", echo)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := &Client{HTTP: srv.Client()}
	out, perr := c.DoOpenAPI(context.Background(), OpenAPIRequest{
		Document: srv.URL + "/doc.yaml", OperationID: "putItem",
		Parameters: map[string]any{"id": "a b", "dry": true, "X-Trace": "t9", "body": map[string]any{"v": 1}},
	})
	if perr != nil {
		t.Fatal(perr)
	}
	m := out.(map[string]any)
	if m["method"] != "PUT" || m["path"] != "/api/items/a b" || m["query"] != "dry=true" || m["x"] != "t9" || m["body"] != `{"v":1}` {
		t.Fatalf("bound request %v", m)
	}
	_, perr = c.DoOpenAPI(context.Background(), OpenAPIRequest{Document: srv.URL + "/doc.yaml", OperationID: "nope"})
	if perr == nil || perr.Type != errConfiguration {
		t.Fatalf("unknown operation: %+v", perr)
	}
	_, perr = c.DoOpenAPI(context.Background(), OpenAPIRequest{Document: srv.URL + "/doc.yaml", OperationID: "putItem"})
	if perr == nil || !strings.Contains(perr.Detail, "missing path parameter") {
		t.Fatalf("missing path parameter: %+v", perr)
	}
}

func TestBindSwagger2(t *testing.T) {
	doc := map[string]any{
		"swagger": "2.0", "host": "pets.example", "basePath": "/v2", "schemes": []any{"http"},
		"paths": map[string]any{"/pet": map[string]any{"post": map[string]any{
			"operationId": "addPet",
			"parameters":  []any{map[string]any{"name": "pet", "in": "body"}},
		}}},
	}
	req, err := Bind(doc, OpenAPIRequest{OperationID: "addPet", Parameters: map[string]any{"pet": map[string]any{"name": "Rex"}}})
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "POST" || req.URI != "http://pets.example/v2/pet" || req.Body.(map[string]any)["name"] != "Rex" {
		t.Fatalf("request %+v", req)
	}
}

func TestIdempotencyKeyHeader(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get(IdempotencyKeyHeader))
	}))
	defer srv.Close()
	c := &Client{}
	key := IdempotencyKey("case-1", "/do/0/charge")
	if key != IdempotencyKey("case-1", "/do/0/charge") || key == IdempotencyKey("case-2", "/do/0/charge") ||
		key == IdempotencyKey("case-1", "/do/0/charge~try1/0") {
		t.Fatal("keys must be stable per (case, call) and differ between calls")
	}
	if !strings.HasPrefix(key, `"`) || !strings.HasSuffix(key, `"`) {
		t.Fatalf("key %s is not a Structured Field string", key)
	}
	calls := []Request{
		{Method: "POST", URI: srv.URL, IdempotencyKey: key},
		{Method: "POST", URI: srv.URL, IdempotencyKey: key, Headers: map[string]string{"Idempotency-Key": `"own"`}},
		{Method: "POST", URI: srv.URL},
	}
	for _, r := range calls {
		if _, err := c.Do(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{key, `"own"`, ""}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("headers %q, want %q (a workflow's own header wins)", got, want)
	}
	if b, _ := json.Marshal(calls[0].Redacted()); strings.Contains(string(b), "knhk-") {
		t.Fatalf("the key is recorded: %s", b)
	}
}
