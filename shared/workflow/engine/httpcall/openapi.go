package httpcall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"

	"github.com/knhk/knhk/shared/history"
)

// OpenAPIRequest is a rendered OpenAPI call: the operation is looked up in
// the document when the call is performed.
type OpenAPIRequest struct {
	Document    string         `json:"document"` // URL of the OpenAPI (2.0 or 3.x) document, JSON or YAML
	OperationID string         `json:"operationId"`
	Parameters  map[string]any `json:"parameters,omitempty"`
	Output      string         `json:"output,omitempty"`
	Redirect    bool           `json:"redirect,omitempty"`
	Auth        *Auth          `json:"auth,omitempty"`
	// IdempotencyKey is passed on to the bound Request (see
	// Request.IdempotencyKey); not recorded.
	IdempotencyKey string `json:"-"`
}

// Redacted returns a copy of r without credentials.
func (r OpenAPIRequest) Redacted() OpenAPIRequest {
	if r.Auth != nil {
		r.Auth = &Auth{Scheme: r.Auth.Scheme}
	}
	return r
}

// docCache keeps loaded OpenAPI documents by URL.
type docCache struct {
	mu sync.Mutex
	m  map[string]map[string]any
}

// DoOpenAPI loads the document (once per client), finds the operation,
// binds the parameters and performs the call.
func (c *Client) DoOpenAPI(ctx context.Context, r OpenAPIRequest) (any, *history.Error) {
	doc, perr := c.document(ctx, r.Document)
	if perr != nil {
		return nil, perr
	}
	req, err := Bind(doc, r)
	if err != nil {
		return nil, problem(errConfiguration, 400, "openapi %s: %v", r.OperationID, err)
	}
	req.IdempotencyKey = r.IdempotencyKey
	return c.Do(ctx, req)
}

func (c *Client) document(ctx context.Context, loc string) (map[string]any, *history.Error) {
	c.docs.mu.Lock()
	doc := c.docs.m[loc]
	c.docs.mu.Unlock()
	if doc != nil {
		return doc, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return nil, problem(errConfiguration, 400, "openapi document %q: %v", loc, err)
	}
	resp, err := c.httpClient(true).Do(req)
	if err != nil {
		return nil, problem(errCommunication, 503, "load openapi document %s: %v", loc, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil || resp.StatusCode >= 300 {
		return nil, problem(errCommunication, max(resp.StatusCode, 502), "load openapi document %s: %s", loc, resp.Status)
	}
	doc, err = ParseDocument(data)
	if err != nil {
		return nil, problem(errConfiguration, 400, "openapi document %s: %v", loc, err)
	}
	if _, ok := doc["host"]; !ok {
		if _, ok := doc["servers"]; !ok {
			// no server given: the API lives where the document does.
			u, _ := url.Parse(loc)
			doc["x-knhk-base"] = u.Scheme + "://" + u.Host
		}
	}
	if base, err := url.Parse(loc); err == nil {
		doc["x-knhk-document"] = base.String()
	}
	c.docs.mu.Lock()
	if c.docs.m == nil {
		c.docs.m = make(map[string]map[string]any)
	}
	c.docs.m[loc] = doc
	c.docs.mu.Unlock()
	return doc, nil
}

// ParseDocument decodes an OpenAPI document written in JSON or YAML.
func ParseDocument(data []byte) (map[string]any, error) {
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err == nil {
		return doc, nil
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return doc, nil
}

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Bind finds r.OperationID in doc and renders the HTTP request: path,
// query and header parameters from r.Parameters, the body from the
// parameter of the body (2.0) or from a `body` parameter (3.x).
func Bind(doc map[string]any, r OpenAPIRequest) (Request, error) {
	paths, _ := doc["paths"].(map[string]any)
	pathKeys := make([]string, 0, len(paths))
	for p := range paths {
		pathKeys = append(pathKeys, p)
	}
	sort.Strings(pathKeys)
	for _, p := range pathKeys {
		item, _ := paths[p].(map[string]any)
		for _, m := range methods {
			op, _ := item[m].(map[string]any)
			if op == nil || op["operationId"] != r.OperationID {
				continue
			}
			params := append(asList(item["parameters"]), asList(op["parameters"])...)
			return bindOperation(doc, p, m, params, op, r)
		}
	}
	return Request{}, fmt.Errorf("operation %q not found", r.OperationID)
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func bindOperation(doc map[string]any, path, method string, params []any, op map[string]any, r OpenAPIRequest) (Request, error) {
	req := Request{Method: strings.ToUpper(method), Output: r.Output, Redirect: r.Redirect, Auth: r.Auth}
	used := map[string]bool{}
	for _, raw := range params {
		p, _ := raw.(map[string]any)
		if ref, ok := p["$ref"].(string); ok {
			p = resolveRef(doc, ref)
		}
		name, _ := p["name"].(string)
		in, _ := p["in"].(string)
		v, present := r.Parameters[name]
		if !present {
			if req, _ := p["required"].(bool); req && in == "path" {
				return Request{}, fmt.Errorf("missing path parameter %q", name)
			}
			if req, _ := p["required"].(bool); req && in == "body" {
				return Request{}, fmt.Errorf("missing request body %q, which the operation requires", name)
			}
			continue
		}
		used[name] = true
		switch in {
		case "path":
			path = strings.ReplaceAll(path, "{"+name+"}", url.PathEscape(scalar(v)))
		case "query":
			if req.Query == nil {
				req.Query = map[string]string{}
			}
			req.Query[name] = scalar(v)
		case "header":
			if req.Headers == nil {
				req.Headers = map[string]string{}
			}
			req.Headers[name] = scalar(v)
		case "body":
			if req, _ := p["required"].(bool); req && v == nil {
				return Request{}, fmt.Errorf("request body %q is null, and the operation requires one", name)
			}
			req.Body = v
		}
	}
	if rb, ok := op["requestBody"]; ok && req.Body == nil {
		if b, ok := r.Parameters["body"]; ok {
			req.Body = b
			used["body"] = true
		}
		body, _ := rb.(map[string]any)
		if ref, ok := body["$ref"].(string); ok {
			body = resolveRef(doc, ref)
		}
		if required, _ := body["required"].(bool); required && req.Body == nil {
			return Request{}, errors.New("missing request body, which the operation requires (pass it as the `body` parameter)")
		}
	}
	base, err := serverURL(doc)
	if err != nil {
		return Request{}, err
	}
	req.URI = strings.TrimSuffix(base, "/") + path
	return req, nil
}

func resolveRef(doc map[string]any, ref string) map[string]any {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	var cur any = doc
	for _, part := range strings.Split(ref[2:], "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, _ := cur.(map[string]any)
		cur = m[part]
	}
	out, _ := cur.(map[string]any)
	return out
}

func serverURL(doc map[string]any) (string, error) {
	docURL, _ := doc["x-knhk-document"].(string)
	if host, ok := doc["host"].(string); ok {
		scheme := "https"
		if schemes := asList(doc["schemes"]); len(schemes) > 0 {
			if s, ok := schemes[0].(string); ok {
				scheme = s
			}
			for _, s := range schemes {
				if s == "https" {
					scheme = "https"
				}
			}
		}
		basePath, _ := doc["basePath"].(string)
		return scheme + "://" + host + basePath, nil
	}
	if servers := asList(doc["servers"]); len(servers) > 0 {
		s, _ := servers[0].(map[string]any)
		u, _ := s["url"].(string)
		ref, err := url.Parse(u)
		if err != nil {
			return "", fmt.Errorf("server url %q: %w", u, err)
		}
		if !ref.IsAbs() && docURL != "" {
			base, _ := url.Parse(docURL)
			return base.ResolveReference(ref).String(), nil
		}
		return u, nil
	}
	if b, ok := doc["x-knhk-base"].(string); ok {
		return b, nil
	}
	return "", fmt.Errorf("document names no server")
}

func scalar(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case nil:
		return ""
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return fmt.Sprint(t)
		}
		return string(b)
	}
}
