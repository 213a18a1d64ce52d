package engine

import (
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/knhk/knhk/shared/workflow/dsl"
	"github.com/knhk/knhk/shared/workflow/expr"
)

// Built-in functions KNHK provides to `call`.
const (
	// FuncValidateSchema validates `with.data` (default: the task input)
	// against the JSON Schema `with.schema`; its output is the data.
	FuncValidateSchema = dsl.BuiltinValidateSchema
)

type callKind uint8

const (
	callHTTP callKind = iota + 1
	callOpenAPI
	callFunction
	callValidate
	callGRPC
	callScript
)

// callSpec is a compiled call task.
type callSpec struct {
	kind     callKind
	method   string
	uri      *expr.Template // set when the endpoint is a runtime expression
	uriTpl   string         // RFC 6570 template otherwise
	headers  *expr.Template
	query    *expr.Template
	body     *expr.Template
	output   string
	redirect bool
	auth     *authSpec
	params   *expr.Template // openapi parameters
	document string
	opID     string
	schema   *jsonschema.Schema // validate-schema with a constant schema
	grpc     *grpcSpec
	script   *scriptSpec // run: script
}

type authSpec struct {
	scheme string
	fields *expr.Template // username/password or token
	secret string         // {scheme: {use: secret}}
}

func (c *compiler) call(n *node, extra []string) error {
	ct := n.t.Call
	var err error
	if n.with, err = expr.CompileTemplateCached(&c.p.cache, ct.With, extra...); err != nil {
		return err
	}
	switch {
	case ct.Call == dsl.CallHTTP:
		a := ct.HTTP
		if a == nil {
			return fmt.Errorf("http call without arguments")
		}
		cs := &callSpec{kind: callHTTP, method: a.Method, output: a.Output, redirect: a.Redirect}
		if expr.IsExpression(a.Endpoint.URI) {
			if cs.uri, err = expr.CompileTemplateCached(&c.p.cache, a.Endpoint.URI, extra...); err != nil {
				return err
			}
		} else {
			cs.uriTpl = a.Endpoint.URI
		}
		if cs.headers, err = c.kv(a.Headers, a.HeadersExpr, extra); err != nil {
			return err
		}
		if cs.query, err = c.kv(a.Query, a.QueryExpr, extra); err != nil {
			return err
		}
		if a.Body != nil {
			if cs.body, err = expr.CompileTemplateCached(&c.p.cache, a.Body, extra...); err != nil {
				return err
			}
		}
		if cs.auth, err = c.auth(a.Endpoint.Authentication, extra); err != nil {
			return err
		}
		n.call = cs
	case ct.Call == dsl.CallOpenAPI:
		a := ct.OpenAPI
		if a == nil {
			return fmt.Errorf("openapi call without arguments")
		}
		cs := &callSpec{kind: callOpenAPI, output: a.Output, redirect: a.Redirect, document: a.Document.Endpoint.URI, opID: a.OperationID}
		if cs.params, err = expr.CompileTemplateCached(&c.p.cache, a.Parameters, extra...); err != nil {
			return err
		}
		ref := a.Authentication
		if ref == nil {
			ref = a.Document.Endpoint.Authentication
		}
		if cs.auth, err = c.auth(ref, extra); err != nil {
			return err
		}
		n.call = cs
	case ct.Call == dsl.CallGRPC:
		return c.grpc(n, ct.GRPC, extra)
	case ct.Call == FuncValidateSchema:
		cs := &callSpec{kind: callValidate}
		if doc, ok := ct.With["schema"]; ok && !hasExpression(doc) {
			if cs.schema, err = compileSchemaDoc(doc); err != nil {
				return err
			}
		}
		n.call = cs
	case c.p.wf.Use.Functions[ct.Call] != nil:
		fn, ok := c.fns[ct.Call]
		if !ok {
			// register before compiling so that recursive functions terminate.
			fn = &node{}
			c.fns[ct.Call] = fn
			*fn = *c.node(dsl.NamedTask{Name: ct.Call, Task: c.p.wf.Use.Functions[ct.Call]}, "/use/functions/"+escapePtr(ct.Call), nil)
		}
		n.fn = fn
		n.call = &callSpec{kind: callFunction}
	default:
		switch ct.Call {
		case dsl.CallAsyncAPI, dsl.CallA2A, dsl.CallMCP:
			return fmt.Errorf("call: %s is not supported", ct.Call)
		}
		return fmt.Errorf("unknown function %q", ct.Call)
	}
	return nil
}

// kv compiles a string map or a runtime expression yielding one.
func (c *compiler) kv(m map[string]string, src string, extra []string) (*expr.Template, error) {
	if src != "" {
		return expr.CompileTemplateCached(&c.p.cache, "${ "+expr.Unwrap(src)+" }", extra...)
	}
	if len(m) == 0 {
		return nil, nil
	}
	v := make(map[string]any, len(m))
	for k, x := range m {
		v[k] = x
	}
	return expr.CompileTemplateCached(&c.p.cache, v, extra...)
}

func (c *compiler) auth(ref *dsl.AuthRef, extra []string) (*authSpec, error) {
	if ref == nil {
		return nil, nil
	}
	pol := ref.Policy
	if ref.Use != "" {
		pol = c.p.wf.Use.Authentications[ref.Use]
		if pol == nil {
			return nil, fmt.Errorf("unknown authentication %q", ref.Use)
		}
	}
	if pol == nil {
		return nil, nil
	}
	a := &authSpec{scheme: pol.Scheme, secret: pol.Secret}
	var fields map[string]any
	switch pol.Scheme {
	case dsl.AuthBasic:
		if pol.Basic != nil {
			fields = map[string]any{"username": pol.Basic.Username, "password": pol.Basic.Password}
		}
	case dsl.AuthBearer:
		if pol.Bearer != nil {
			fields = map[string]any{"token": pol.Bearer.Token}
		}
	case dsl.AuthOAuth2, dsl.AuthOIDC:
		if pol.OAuth2 != nil {
			fields = pol.OAuth2.Raw
		}
	default:
		return nil, fmt.Errorf("authentication scheme %q is not supported", pol.Scheme)
	}
	var err error
	if a.fields, err = expr.CompileTemplateCached(&c.p.cache, fields, extra...); err != nil {
		return nil, err
	}
	return a, nil
}

// hasExpression reports whether any string leaf of v is a `${ }` expression.
func hasExpression(v any) bool {
	switch t := v.(type) {
	case string:
		return expr.IsExpression(t)
	case map[string]any:
		for _, x := range t {
			if hasExpression(x) {
				return true
			}
		}
	case []any:
		for _, x := range t {
			if hasExpression(x) {
				return true
			}
		}
	}
	return false
}

// expandURI expands a level-1 RFC 6570 template: every {name} is replaced
// by the percent-encoded value of that top-level field of data.
func expandURI(tpl string, data any) (string, error) {
	if !strings.Contains(tpl, "{") {
		return tpl, nil
	}
	m, _ := data.(map[string]any)
	var b strings.Builder
	for {
		i := strings.IndexByte(tpl, '{')
		if i < 0 {
			b.WriteString(tpl)
			return b.String(), nil
		}
		j := strings.IndexByte(tpl[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("unclosed { in uri template")
		}
		b.WriteString(tpl[:i])
		name := tpl[i+1 : i+j]
		v, ok := m[name]
		if !ok || v == nil {
			return "", fmt.Errorf("uri template variable %q is not in the task input", name)
		}
		b.WriteString(pctEncode(scalarString(v)))
		tpl = tpl[i+j+1:]
	}
}

// pctEncode encodes everything but RFC 3986 unreserved characters.
func pctEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '.' || ch == '_' || ch == '~' {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[ch>>4])
		b.WriteByte(hex[ch&15])
	}
	return b.String()
}
