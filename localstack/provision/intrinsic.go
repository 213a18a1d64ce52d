package provision

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// noValue is what Ref AWS::NoValue resolves to: the enclosing property or
// list element is removed.
type noValueT struct{}

var noValue = noValueT{}

// Resolver evaluates CloudFormation intrinsic functions against the values a
// deployment knows so far.
type Resolver struct {
	// Params holds parameter and pseudo-parameter values by name.
	Params map[string]any
	// Mappings is the template's Mappings section.
	Mappings map[string]any
	// Ref returns the Ref value of a resource.
	Ref func(id string) (any, error)
	// Attr returns a resource attribute (Fn::GetAtt).
	Attr func(id, attr string) (any, error)
	// Condition evaluates a named condition.
	Condition func(name string) (bool, error)
}

// Resolve returns v with every intrinsic function evaluated.
func (r *Resolver) Resolve(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || strings.HasPrefix(k, "Fn::") {
					return r.intrinsic(k, arg)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			rv, err := r.Resolve(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if rv != noValue {
				out[k] = rv
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(x))
		for i, e := range x {
			rv, err := r.Resolve(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if rv != noValue {
				out = append(out, rv)
			}
		}
		return out, nil
	default:
		return v, nil
	}
}

// EvalCondition evaluates a condition expression (Fn::Equals, Fn::And,
// Fn::Or, Fn::Not, {"Condition": name}).
func (r *Resolver) EvalCondition(v any) (bool, error) {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		if name, ok := m["Condition"].(string); ok {
			if r.Condition == nil {
				return false, fmt.Errorf("condition %s: no conditions", name)
			}
			return r.Condition(name)
		}
	}
	rv, err := r.Resolve(v)
	if err != nil {
		return false, err
	}
	switch b := rv.(type) {
	case bool:
		return b, nil
	case string:
		return strconv.ParseBool(b)
	}
	return false, fmt.Errorf("condition is %T, want a boolean", rv)
}

func (r *Resolver) intrinsic(fn string, arg any) (any, error) {
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("Ref: want a name, got %T", arg)
		}
		if name == "AWS::NoValue" {
			return noValue, nil
		}
		if v, ok := r.Params[name]; ok {
			return v, nil
		}
		if r.Ref == nil {
			return nil, fmt.Errorf("Ref %s: unknown", name)
		}
		return r.Ref(name)
	case "Fn::GetAtt":
		id, attr, err := getAttArgs(arg)
		if err != nil {
			return nil, err
		}
		if r.Attr == nil {
			return nil, fmt.Errorf("Fn::GetAtt %s.%s: unknown", id, attr)
		}
		return r.Attr(id, attr)
	case "Fn::Join":
		args, err := r.list(fn, arg, 2)
		if err != nil {
			return nil, err
		}
		delim, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("Fn::Join: delimiter is %T", args[0])
		}
		items, ok := args[1].([]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Join: list is %T", args[1])
		}
		parts := make([]string, len(items))
		for i, it := range items {
			s, err := scalarString(it)
			if err != nil {
				return nil, fmt.Errorf("Fn::Join[%d]: %w", i, err)
			}
			parts[i] = s
		}
		return strings.Join(parts, delim), nil
	case "Fn::Select":
		args, err := r.list(fn, arg, 2)
		if err != nil {
			return nil, err
		}
		idx, err := toInt(args[0])
		if err != nil {
			return nil, fmt.Errorf("Fn::Select index: %w", err)
		}
		items, ok := args[1].([]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Select: list is %T", args[1])
		}
		if idx < 0 || idx >= len(items) {
			return nil, fmt.Errorf("Fn::Select: index %d out of range [0,%d)", idx, len(items))
		}
		return items[idx], nil
	case "Fn::Split":
		args, err := r.list(fn, arg, 2)
		if err != nil {
			return nil, err
		}
		delim, ok1 := args[0].(string)
		s, ok2 := args[1].(string)
		if !ok1 || !ok2 || delim == "" {
			return nil, fmt.Errorf("Fn::Split: want [delimiter, string]")
		}
		parts := strings.Split(s, delim)
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	case "Fn::Sub":
		return r.sub(arg)
	case "Fn::If":
		raw, ok := arg.([]any)
		if !ok || len(raw) != 3 {
			return nil, fmt.Errorf("Fn::If: want [condition, then, else]")
		}
		name, ok := raw[0].(string)
		if !ok || r.Condition == nil {
			return nil, fmt.Errorf("Fn::If: want a condition name")
		}
		c, err := r.Condition(name)
		if err != nil {
			return nil, err
		}
		if c {
			return r.Resolve(raw[1])
		}
		return r.Resolve(raw[2])
	case "Fn::Equals":
		args, err := r.list(fn, arg, 2)
		if err != nil {
			return nil, err
		}
		a, err1 := scalarString(args[0])
		b, err2 := scalarString(args[1])
		if err1 != nil || err2 != nil {
			return fmt.Sprint(args[0]) == fmt.Sprint(args[1]), nil
		}
		return a == b, nil
	case "Fn::And", "Fn::Or":
		raw, ok := arg.([]any)
		if !ok || len(raw) < 1 {
			return nil, fmt.Errorf("%s: want a list of conditions", fn)
		}
		for _, c := range raw {
			b, err := r.EvalCondition(c)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fn, err)
			}
			if fn == "Fn::And" && !b {
				return false, nil
			}
			if fn == "Fn::Or" && b {
				return true, nil
			}
		}
		return fn == "Fn::And", nil
	case "Fn::Not":
		raw, ok := arg.([]any)
		if !ok || len(raw) != 1 {
			return nil, fmt.Errorf("Fn::Not: want one condition")
		}
		b, err := r.EvalCondition(raw[0])
		if err != nil {
			return nil, fmt.Errorf("Fn::Not: %w", err)
		}
		return !b, nil
	case "Fn::FindInMap":
		args, err := r.list(fn, arg, 3)
		if err != nil {
			return nil, err
		}
		var cur any = r.Mappings
		for _, k := range args {
			ks, err := scalarString(k)
			if err != nil {
				return nil, fmt.Errorf("Fn::FindInMap: %w", err)
			}
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("Fn::FindInMap: %s is not in a map", ks)
			}
			if cur, ok = m[ks]; !ok {
				return nil, fmt.Errorf("Fn::FindInMap: key %s not found", ks)
			}
		}
		return cur, nil
	case "Fn::Base64":
		v, err := r.Resolve(arg)
		if err != nil {
			return nil, err
		}
		s, err := scalarString(v)
		if err != nil {
			return nil, fmt.Errorf("Fn::Base64: %w", err)
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	case "Fn::GetAZs":
		region, _ := r.Params["AWS::Region"].(string)
		return []any{region + "a", region + "b", region + "c"}, nil
	}
	return nil, fmt.Errorf("intrinsic function %s is not supported", fn)
}

// list resolves the arguments of a function that takes a fixed-size list.
func (r *Resolver) list(fn string, arg any, n int) ([]any, error) {
	raw, ok := arg.([]any)
	if !ok || len(raw) != n {
		return nil, fmt.Errorf("%s: want %d arguments", fn, n)
	}
	out := make([]any, n)
	for i, a := range raw {
		v, err := r.Resolve(a)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fn, err)
		}
		out[i] = v
	}
	return out, nil
}

var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

// subArgs splits the argument of Fn::Sub into its string and variable map.
func subArgs(arg any) (string, map[string]any) {
	switch a := arg.(type) {
	case string:
		return a, nil
	case []any:
		if len(a) == 2 {
			s, _ := a[0].(string)
			vars, _ := a[1].(map[string]any)
			return s, vars
		}
	}
	return "", nil
}

// subVariables lists the variable names a Fn::Sub string uses (not ${!x}).
func subVariables(s string) []string {
	var out []string
	for _, m := range subVar.FindAllStringSubmatch(s, -1) {
		if !strings.HasPrefix(m[1], "!") {
			out = append(out, strings.TrimSpace(m[1]))
		}
	}
	return out
}

// subTarget is the logical id or parameter a Fn::Sub variable names.
func subTarget(name string) string {
	if i := strings.IndexByte(name, '.'); i > 0 && !strings.HasPrefix(name, "AWS::") {
		return name[:i]
	}
	return name
}

func (r *Resolver) sub(arg any) (any, error) {
	str, vars := subArgs(arg)
	if _, ok := arg.(string); !ok && (str == "" && vars == nil) {
		return nil, fmt.Errorf("Fn::Sub: want a string or [string, variables]")
	}
	local := make(map[string]any, len(vars))
	for k, v := range vars {
		rv, err := r.Resolve(v)
		if err != nil {
			return nil, fmt.Errorf("Fn::Sub variable %s: %w", k, err)
		}
		local[k] = rv
	}
	var firstErr error
	out := subVar.ReplaceAllStringFunc(str, func(m string) string {
		name := strings.TrimSpace(m[2 : len(m)-1])
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		var v any
		var err error
		if lv, ok := local[name]; ok {
			v = lv
		} else if i := strings.IndexByte(name, '.'); i > 0 && !strings.HasPrefix(name, "AWS::") {
			v, err = r.intrinsic("Fn::GetAtt", []any{name[:i], name[i+1:]})
		} else {
			v, err = r.intrinsic("Ref", name)
		}
		if err == nil {
			var s string
			if s, err = scalarString(v); err == nil {
				return s
			}
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("Fn::Sub ${%s}: %w", name, err)
		}
		return ""
	})
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// getAttArgs reads [id, attr] or "id.attr".
func getAttArgs(arg any) (string, string, error) {
	switch a := arg.(type) {
	case []any:
		if len(a) == 2 {
			id, ok1 := a[0].(string)
			attr, ok2 := a[1].(string)
			if ok1 && ok2 {
				return id, attr, nil
			}
		}
	case string:
		if id, attr, ok := strings.Cut(a, "."); ok {
			return id, attr, nil
		}
	}
	return "", "", fmt.Errorf("Fn::GetAtt: want [logicalId, attribute]")
}

// scalarString renders a string, number or boolean as CloudFormation does.
func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case int:
		return strconv.Itoa(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", fmt.Errorf("want a string, got %T", v)
}

func toInt(v any) (int, error) {
	switch x := v.(type) {
	case float64:
		if x != float64(int(x)) {
			return 0, fmt.Errorf("%v is not an integer", x)
		}
		return int(x), nil
	case int:
		return x, nil
	case string:
		return strconv.Atoi(x)
	}
	return 0, fmt.Errorf("want an integer, got %T", v)
}
