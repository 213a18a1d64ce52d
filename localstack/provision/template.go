// Package provision deploys a synthesized CloudFormation template onto a
// local AWS endpoint through the AWS SDK: it resolves the intrinsic functions
// the template uses, orders resources by their references, creates each
// resource type it honours (finding existing ones by physical name, so a
// second deploy changes nothing) and writes the stack's resolved outputs.
package provision

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// Template is the part of a CloudFormation template the provisioner reads.
type Template struct {
	Description string               `json:"Description"`
	Parameters  map[string]Parameter `json:"Parameters"`
	Conditions  map[string]any       `json:"Conditions"`
	Mappings    map[string]any       `json:"Mappings"`
	Resources   map[string]Resource  `json:"Resources"`
	Outputs     map[string]Output    `json:"Outputs"`
	Rules       map[string]any       `json:"Rules"`
}

// Parameter is a template parameter.
type Parameter struct {
	Type    string `json:"Type"`
	Default any    `json:"Default"`
}

// Resource is one template resource.
type Resource struct {
	Type           string         `json:"Type"`
	Properties     map[string]any `json:"Properties"`
	DependsOn      any            `json:"DependsOn"`
	Condition      string         `json:"Condition"`
	DeletionPolicy string         `json:"DeletionPolicy"`
}

// Output is one template output.
type Output struct {
	Value     any    `json:"Value"`
	Condition string `json:"Condition"`
}

// ParseTemplate decodes a template from JSON.
func ParseTemplate(b []byte) (*Template, error) {
	var t Template
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	if len(t.Resources) == 0 {
		return nil, fmt.Errorf("parse template: no Resources")
	}
	for id, r := range t.Resources {
		if r.Type == "" {
			return nil, fmt.Errorf("parse template: resource %s has no Type", id)
		}
	}
	return &t, nil
}

// LoadTemplate reads and decodes a template file.
func LoadTemplate(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	return ParseTemplate(b)
}

// dependsOn lists the explicit DependsOn entries of a resource.
func (r Resource) dependsOn() []string {
	switch d := r.DependsOn.(type) {
	case string:
		return []string{d}
	case []any:
		out := make([]string, 0, len(d))
		for _, x := range d {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Order returns the resource ids so that every resource comes after the
// resources it references (Ref, Fn::GetAtt, Fn::Sub variables, DependsOn);
// ties are broken by id so the order is deterministic.
func (t *Template) Order() ([]string, error) {
	deps := make(map[string]map[string]bool, len(t.Resources))
	for id, r := range t.Resources {
		set := map[string]bool{}
		for _, ref := range references(r.Properties) {
			if _, ok := t.Resources[ref]; ok && ref != id {
				set[ref] = true
			}
		}
		for _, d := range r.dependsOn() {
			if _, ok := t.Resources[d]; !ok {
				return nil, fmt.Errorf("resource %s depends on unknown resource %s", id, d)
			}
			set[d] = true
		}
		deps[id] = set
	}
	done := make(map[string]bool, len(deps))
	order := make([]string, 0, len(deps))
	for len(order) < len(deps) {
		var ready []string
		for id, ds := range deps {
			if done[id] {
				continue
			}
			ok := true
			for d := range ds {
				if !done[d] {
					ok = false
					break
				}
			}
			if ok {
				ready = append(ready, id)
			}
		}
		if len(ready) == 0 {
			var left []string
			for id := range deps {
				if !done[id] {
					left = append(left, id)
				}
			}
			sort.Strings(left)
			return nil, fmt.Errorf("circular references among resources %v", left)
		}
		sort.Strings(ready)
		for _, id := range ready {
			done[id] = true
		}
		order = append(order, ready...)
	}
	return order, nil
}

// references lists the logical ids a value refers to.
func references(v any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 1 {
				if r, ok := x["Ref"].(string); ok {
					out = append(out, r)
					return
				}
				if ga, ok := x["Fn::GetAtt"]; ok {
					if id, _, err := getAttArgs(ga); err == nil {
						out = append(out, id)
					}
				}
				if sub, ok := x["Fn::Sub"]; ok {
					str, vars := subArgs(sub)
					for _, name := range subVariables(str) {
						if _, local := vars[name]; !local {
							out = append(out, subTarget(name))
						}
					}
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}
