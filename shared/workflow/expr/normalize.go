package expr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
)

// Normalize converts v into the JSON-like values jq works on: nil, bool,
// float64, int, *big.Int, string, []any and map[string]any. Numbers of
// other Go types become int or float64, typed maps and slices are copied,
// and anything else goes through its JSON encoding. Values that are already
// normal are returned without copying.
func Normalize(v any) any {
	switch t := v.(type) {
	case nil, bool, string, float64, int, *big.Int:
		return v
	case map[string]any:
		for k, x := range t {
			if n := Normalize(x); !same(n, x) {
				// Normalize each member once: normalizing the changed one
				// again would make nested values cost 2^depth.
				c := make(map[string]any, len(t))
				for k2, x2 := range t {
					if k2 != k {
						c[k2] = Normalize(x2)
					}
				}
				c[k] = n
				return c
			}
		}
		return t
	case []any:
		for i, x := range t {
			if n := Normalize(x); !same(n, x) {
				c := make([]any, len(t))
				copy(c, t[:i]) // normal already
				c[i] = n
				for j := i + 1; j < len(t); j++ {
					c[j] = Normalize(t[j])
				}
				return c
			}
		}
		return t
	case json.Number:
		if i, err := t.Int64(); err == nil && i >= math.MinInt && i <= math.MaxInt {
			return int(i)
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
		return t.String()
	case json.RawMessage:
		var out any
		if err := json.Unmarshal(t, &out); err != nil {
			return nil
		}
		return out
	case float32:
		return float64(t)
	case int8:
		return int(t)
	case int16:
		return int(t)
	case int32:
		return int(t)
	case int64:
		if t >= math.MinInt && t <= math.MaxInt {
			return int(t)
		}
		return new(big.Int).SetInt64(t)
	case uint:
		return normalizeUint(uint64(t))
	case uint8:
		return int(t)
	case uint16:
		return int(t)
	case uint32:
		return normalizeUint(uint64(t))
	case uint64:
		return normalizeUint(t)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			out := make(map[string]any, rv.Len())
			it := rv.MapRange()
			for it.Next() {
				out[it.Key().String()] = Normalize(it.Value().Interface())
			}
			return out
		}
		if rv.Type().Key().Kind() == reflect.Interface {
			out := make(map[string]any, rv.Len())
			it := rv.MapRange()
			for it.Next() {
				out[fmt.Sprint(it.Key().Interface())] = Normalize(it.Value().Interface())
			}
			return out
		}
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return nil
		}
		if rv.Type().Elem().Kind() != reflect.Uint8 {
			out := make([]any, rv.Len())
			for i := range out {
				out[i] = Normalize(rv.Index(i).Interface())
			}
			return out
		}
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil
	}
	return Normalize(out)
}

func normalizeUint(u uint64) any {
	if u <= math.MaxInt {
		return int(u)
	}
	return new(big.Int).SetUint64(u)
}

// same reports whether a normalized value is the very value it came from
// (scalars compare by value; maps and slices by identity).
func same(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		return ok && reflect.ValueOf(x).Pointer() == reflect.ValueOf(y).Pointer()
	case []any:
		y, ok := b.([]any)
		return ok && len(x) == len(y) && (len(x) == 0 || &x[0] == &y[0])
	case *big.Int:
		y, ok := b.(*big.Int)
		return ok && x == y
	default:
		_, isMap := b.(map[string]any)
		_, isSlice := b.([]any)
		if isMap || isSlice {
			return false
		}
		return reflect.TypeOf(a) == reflect.TypeOf(b) && a == b
	}
}

// DecodeJSON decodes one JSON value into the values expressions work on,
// keeping integers as int (json.Number, then Normalize).
func DecodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return Normalize(v), nil
}
