package provision

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// decode converts resolved properties into a typed struct.
func decode(props map[string]any, into any) error {
	b, err := json.Marshal(props)
	if err != nil {
		return fmt.Errorf("encode properties: %w", err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("decode properties: %w", err)
	}
	return nil
}

// flexInt is an integer property that templates may write as a number or
// a string.
type flexInt struct {
	set bool
	n   int64
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("want an integer, got %s", b)
	}
	f.set, f.n = true, n
	return nil
}

// flexBool is a boolean property written as a boolean or a string.
type flexBool struct {
	set bool
	v   bool
}

func (f *flexBool) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" {
		return nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want a boolean, got %s", b)
	}
	f.set, f.v = true, v
	return nil
}

// cfnTag is a CloudFormation resource tag.
type cfnTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// jsonString renders a policy or other document property as the JSON string
// the service APIs take; strings pass through.
func jsonString(v any) (string, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// sameJSON reports whether two JSON documents are equal as values, treating
// numbers and numeric strings alike (services echo them either way).
func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	return normalise(x) == normalise(y)
}

func normalise(v any) string {
	switch t := v.(type) {
	case map[string]any:
		keys := sortedKeys(t)
		var sb strings.Builder
		sb.WriteString("{")
		for _, k := range keys {
			sb.WriteString(strconv.Quote(k) + ":" + normalise(t[k]) + ",")
		}
		return sb.String() + "}"
	case []any:
		var sb strings.Builder
		sb.WriteString("[")
		for _, e := range t {
			sb.WriteString(normalise(e) + ",")
		}
		return sb.String() + "]"
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case string:
		if _, err := strconv.ParseFloat(t, 64); err == nil {
			return t
		}
		return strconv.Quote(t)
	}
	return fmt.Sprint(v)
}
