package meter

import (
	"io"
	"net/http"

	"github.com/knhk/knhk/shared/cost"
)

// Transport counts each HTTP call and its request and response bytes
// (headers excluded, bodies as sent and read) against the Meter of the
// request's context.
type Transport struct {
	Base http.RoundTripper // nil: http.DefaultTransport
}

// RoundTrip performs the call and charges it.
func (t Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	ctx := req.Context()
	sent := max(req.ContentLength, 0)
	resp, err := base.RoundTrip(req)
	if err != nil {
		charge(ctx, cost.Usage{HTTPCalls: 1, HTTPBytes: sent})
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, done: func(n int64) {
		charge(ctx, cost.Usage{HTTPCalls: 1, HTTPBytes: sent + n})
	}}
	return resp, nil
}

// countingBody counts what is read and reports once, when closed.
type countingBody struct {
	io.ReadCloser
	n    int64
	done func(int64)
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *countingBody) Close() error {
	if b.done != nil {
		b.done(b.n)
		b.done = nil
	}
	return b.ReadCloser.Close()
}
