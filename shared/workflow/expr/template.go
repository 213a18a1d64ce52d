package expr

import (
	"context"
	"fmt"
	"sort"
)

// Template is a compiled JSON-like value whose string leaves may be runtime
// expressions (strict mode: only `${ }` strings are evaluated). Constant
// sub-trees are kept as they are and shared between evaluations, so callers
// must not mutate results.
type Template struct {
	constant any      // the value when the template holds no expression
	expr     *Expr    // set when the template is a single expression
	keys     []string // object keys, sorted
	fields   []*Template
	items    []*Template
	kind     templateKind
}

type templateKind uint8

const (
	kindConst templateKind = iota
	kindExpr
	kindObject
	kindArray
)

// CompileTemplate compiles v, a JSON-like value, into a Template. extra
// declares further variable names the expressions may use.
func CompileTemplate(v any, extra ...string) (*Template, error) {
	return compileTemplate(nil, Normalize(v), extra)
}

// CompileTemplateCached is CompileTemplate drawing expressions from c.
func CompileTemplateCached(c *Cache, v any, extra ...string) (*Template, error) {
	return compileTemplate(c, Normalize(v), extra)
}

func compileTemplate(c *Cache, v any, extra []string) (*Template, error) {
	switch t := v.(type) {
	case string:
		if !IsExpression(t) {
			return &Template{constant: t}, nil
		}
		var (
			e   *Expr
			err error
		)
		if c != nil {
			e, err = c.Compile(t, extra...)
		} else {
			e, err = Compile(t, extra...)
		}
		if err != nil {
			return nil, err
		}
		return &Template{expr: e, kind: kindExpr}, nil
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		tpl := &Template{kind: kindObject, keys: keys, fields: make([]*Template, len(keys))}
		dynamic := false
		for i, k := range keys {
			f, err := compileTemplate(c, t[k], extra)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			tpl.fields[i] = f
			dynamic = dynamic || f.kind != kindConst
		}
		if !dynamic {
			return &Template{constant: t}, nil
		}
		return tpl, nil
	case []any:
		tpl := &Template{kind: kindArray, items: make([]*Template, len(t))}
		dynamic := false
		for i, x := range t {
			f, err := compileTemplate(c, x, extra)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			tpl.items[i] = f
			dynamic = dynamic || f.kind != kindConst
		}
		if !dynamic {
			return &Template{constant: t}, nil
		}
		return tpl, nil
	default:
		return &Template{constant: t}, nil
	}
}

// IsConstant reports whether the template holds no expression.
func (t *Template) IsConstant() bool { return t == nil || t.kind == kindConst }

// Eval renders the template: every expression leaf is replaced by its
// result on input with vars.
func (t *Template) Eval(ctx context.Context, input any, vars Vars) (any, error) {
	if t == nil {
		return nil, nil
	}
	switch t.kind {
	case kindExpr:
		return t.expr.Eval(ctx, input, vars)
	case kindObject:
		out := make(map[string]any, len(t.keys))
		for i, k := range t.keys {
			v, err := t.fields[i].Eval(ctx, input, vars)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	case kindArray:
		out := make([]any, len(t.items))
		for i, f := range t.items {
			v, err := f.Eval(ctx, input, vars)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	default:
		return t.constant, nil
	}
}

// EvalTemplate compiles v through c (nil for no cache) and renders it on
// input with vars: a one-shot form of CompileTemplate + Template.Eval.
func EvalTemplate(ctx context.Context, c *Cache, v any, input any, vars Vars, extra ...string) (any, error) {
	t, err := compileTemplate(c, Normalize(v), extra)
	if err != nil {
		return nil, err
	}
	return t.Eval(ctx, input, vars)
}

// Uses reports whether any expression of the template mentions the
// variable name (without `$`).
func (t *Template) Uses(name string) bool {
	if t == nil {
		return false
	}
	switch t.kind {
	case kindExpr:
		return t.expr.Uses(name)
	case kindObject:
		for _, f := range t.fields {
			if f.Uses(name) {
				return true
			}
		}
	case kindArray:
		for _, f := range t.items {
			if f.Uses(name) {
				return true
			}
		}
	}
	return false
}
