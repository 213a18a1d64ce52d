// Package httpcall performs the HTTP and OpenAPI calls of workflow tasks:
// the engine renders a Request (pure data) and this package sends it and
// shapes the result as the DSL's `content`, `response` or `raw` output.
package httpcall

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/knhk/knhk/shared/history"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// Output formats of a call.
const (
	OutputContent  = "content"
	OutputResponse = "response"
	OutputRaw      = "raw"
)

const (
	errCommunication = "https://serverlessworkflow.io/spec/1.0.0/errors/communication"
	errConfiguration = "https://serverlessworkflow.io/spec/1.0.0/errors/configuration"
)

// Auth is a resolved authentication policy.
type Auth struct {
	Scheme   string  `json:"scheme"` // basic or bearer
	Username string  `json:"username,omitempty"`
	Password string  `json:"password,omitempty"`
	Token    string  `json:"token,omitempty"`
	OAuth2   *OAuth2 `json:"oauth2,omitempty"` // oauth2 and oidc
}

// Request is a fully rendered HTTP call.
type Request struct {
	Method   string            `json:"method"`
	URI      string            `json:"uri"`
	Headers  map[string]string `json:"headers,omitempty"`
	Query    map[string]string `json:"query,omitempty"`
	Body     any               `json:"body,omitempty"`
	Output   string            `json:"output,omitempty"`
	Redirect bool              `json:"redirect,omitempty"`
	Auth     *Auth             `json:"auth,omitempty"`
	// IdempotencyKey, when set, is sent as the Idempotency-Key header
	// unless the workflow set that header itself. The shell sets it; it
	// is derived from the history, so it is not recorded.
	IdempotencyKey string `json:"-"`
}

// IdempotencyKeyHeader is the request header of the IETF HTTPAPI draft
// "The Idempotency-Key HTTP Header Field"; its value is a Structured Field
// string (quoted).
const IdempotencyKeyHeader = "Idempotency-Key"

// IdempotencyKey derives the key of one call from the case and the call's
// effect id (its task occurrence, including the retry attempt): the same for
// every redelivery and redrive of the call, different for every other call.
// It is returned as a Structured Field string, quotes included.
func IdempotencyKey(caseID, effectID string) string {
	sum := sha256.Sum256([]byte("knhk.idempotency.v1\x00" + caseID + "\x00" + effectID))
	return `"knhk-` + hex.EncodeToString(sum[:16]) + `"`
}

// Redacted returns a copy of r without credentials, fit to be recorded.
func (r Request) Redacted() Request {
	if r.Auth != nil {
		r.Auth = &Auth{Scheme: r.Auth.Scheme}
	}
	if len(r.Headers) > 0 {
		h := make(map[string]string, len(r.Headers))
		for k, v := range r.Headers {
			if strings.EqualFold(k, "Authorization") {
				v = "[redacted]"
			}
			h[k] = v
		}
		r.Headers = h
	}
	return r
}

// Client performs calls with an underlying HTTP client.
type Client struct {
	HTTP *http.Client // nil means http.DefaultClient
	// EarlyRefresh is how long before expiry a cached OAuth2 token is
	// replaced (0: DefaultEarlyRefresh).
	EarlyRefresh time.Duration
	docs         docCache
	tok          tokens
}

func (c *Client) httpClient(redirect bool) *http.Client {
	base := c.HTTP
	if base == nil {
		base = http.DefaultClient
	}
	if redirect {
		return base
	}
	cp := *base
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

// Do sends r and returns the call's output, or a DSL error (without
// instance: the engine sets it).
func (c *Client) Do(ctx context.Context, r Request) (any, *history.Error) {
	u, err := url.Parse(r.URI)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, problem(errConfiguration, 400, "invalid endpoint %q", r.URI)
	}
	if len(r.Query) > 0 {
		q := u.Query()
		keys := make([]string, 0, len(r.Query))
		for k := range r.Query {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			q.Set(k, r.Query[k])
		}
		u.RawQuery = q.Encode()
	}
	method := strings.ToUpper(r.Method)
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	contentType := ""
	if r.Body != nil {
		switch b := r.Body.(type) {
		case string:
			body = strings.NewReader(b)
			contentType = "text/plain; charset=utf-8"
		default:
			data, err := json.Marshal(b)
			if err != nil {
				return nil, problem(errConfiguration, 400, "encode body: %v", err)
			}
			body = bytes.NewReader(data)
			contentType = "application/json"
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, problem(errConfiguration, 400, "build request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json, */*;q=0.5")
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	if r.IdempotencyKey != "" && req.Header.Get(IdempotencyKeyHeader) == "" {
		req.Header.Set(IdempotencyKeyHeader, r.IdempotencyKey)
	}
	if r.Auth != nil {
		v, perr := c.Authorization(ctx, r.Auth)
		if perr != nil {
			return nil, perr
		}
		req.Header.Set("Authorization", v)
	}
	resp, err := c.httpClient(r.Redirect).Do(req)
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, context.DeadlineExceeded) {
			status = http.StatusGatewayTimeout
		}
		return nil, problem(errCommunication, status, "%s %s: %v", method, redact(u), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, problem(errCommunication, 502, "read response: %v", err)
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300 ||
		r.Redirect && resp.StatusCode >= 300 && resp.StatusCode < 400
	if !ok {
		e := problem(errCommunication, resp.StatusCode, "%s %s: %s", method, redact(u), resp.Status)
		e.Title = http.StatusText(resp.StatusCode)
		return nil, e
	}
	content := decodeContent(resp.Header.Get("Content-Type"), data)
	switch r.Output {
	case "", OutputContent:
		return content, nil
	case OutputRaw:
		return base64.StdEncoding.EncodeToString(data), nil
	case OutputResponse:
		return map[string]any{
			"request": map[string]any{
				"method":  method,
				"uri":     redact(u),
				"headers": headerMap(req.Header, true),
			},
			"statusCode": resp.StatusCode,
			"headers":    headerMap(resp.Header, false),
			"content":    content,
		}, nil
	default:
		return nil, problem(errConfiguration, 400, "unknown output format %q", r.Output)
	}
}

// decodeContent decodes a JSON body into JSON-like values and returns any
// other body as a string.
func decodeContent(contentType string, data []byte) any {
	if len(data) == 0 {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "" && json.Valid(data) {
		if v, err := expr.DecodeJSON(data); err == nil {
			return v
		}
	}
	return string(data)
}

func headerMap(h http.Header, hideAuth bool) map[string]any {
	out := make(map[string]any, len(h))
	for k, v := range h {
		val := strings.Join(v, ", ")
		if hideAuth && strings.EqualFold(k, "Authorization") {
			val = "[redacted]"
		}
		out[k] = val
	}
	return out
}

func redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User("redacted")
	}
	return c.String()
}

func problem(typ string, status int, format string, args ...any) *history.Error {
	return &history.Error{Type: typ, Status: status, Title: "Call Failed", Detail: fmt.Sprintf(format, args...)}
}
