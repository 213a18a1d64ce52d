package telemetry

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// emfDoc is one parsed EMF document: the members besides _aws, and the
// directive's content.
type emfDoc struct {
	Timestamp  int64
	Namespace  string
	Dimensions [][]string
	Metrics    []emfMetric
	Members    map[string]any
}

type emfMetric struct {
	Name              string
	Unit              string
	StorageResolution int
}

// parseEMF parses output as EMF lines and checks each against the rules of
// the embedded metric format specification. It returns the documents or the
// first violation.
func parseEMF(out []byte) ([]emfDoc, error) {
	var docs []emfDoc
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<24)
	for line := 1; sc.Scan(); line++ {
		d, err := checkEMF(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		docs = append(docs, d)
	}
	return docs, sc.Err()
}

func checkEMF(line []byte) (emfDoc, error) {
	var root map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return emfDoc{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if dec.More() {
		return emfDoc{}, fmt.Errorf("data after the JSON object")
	}
	var meta struct {
		Timestamp         *json.Number                 `json:"Timestamp"`
		CloudWatchMetrics []map[string]json.RawMessage `json:"CloudWatchMetrics"`
	}
	rawMeta, ok := root["_aws"]
	if !ok {
		return emfDoc{}, fmt.Errorf("no _aws member")
	}
	if err := strictDecode(rawMeta, &meta); err != nil {
		return emfDoc{}, fmt.Errorf("_aws: %w", err)
	}
	if meta.Timestamp == nil {
		return emfDoc{}, fmt.Errorf("_aws.Timestamp missing")
	}
	ts, err := meta.Timestamp.Int64()
	if err != nil || ts < 0 {
		return emfDoc{}, fmt.Errorf("_aws.Timestamp %v is not epoch milliseconds", meta.Timestamp)
	}
	if len(meta.CloudWatchMetrics) != 1 {
		return emfDoc{}, fmt.Errorf("want exactly one metric directive, got %d", len(meta.CloudWatchMetrics))
	}
	members := make(map[string]any, len(root))
	for k, v := range root {
		if k == "_aws" {
			continue
		}
		var x any
		d := json.NewDecoder(bytes.NewReader(v))
		d.UseNumber()
		if err := d.Decode(&x); err != nil {
			return emfDoc{}, fmt.Errorf("member %q: %w", k, err)
		}
		members[k] = x
	}
	doc := emfDoc{Timestamp: ts, Members: members}
	dir := meta.CloudWatchMetrics[0]
	for k := range dir {
		if k != "Namespace" && k != "Dimensions" && k != "Metrics" {
			return emfDoc{}, fmt.Errorf("directive has unknown member %q", k)
		}
	}
	if err := json.Unmarshal(dir["Namespace"], &doc.Namespace); err != nil || doc.Namespace == "" || len(doc.Namespace) > 255 {
		return emfDoc{}, fmt.Errorf("Namespace %s invalid", dir["Namespace"])
	}
	if err := json.Unmarshal(dir["Dimensions"], &doc.Dimensions); err != nil || doc.Dimensions == nil {
		return emfDoc{}, fmt.Errorf("Dimensions %s is not an array of arrays of strings", dir["Dimensions"])
	}
	for _, set := range doc.Dimensions {
		if len(set) > MaxDimensions {
			return emfDoc{}, fmt.Errorf("dimension set of %d names, at most %d", len(set), MaxDimensions)
		}
		for _, name := range set {
			v, ok := members[name].(string)
			if !ok || v == "" {
				return emfDoc{}, fmt.Errorf("dimension %q has no non-empty string member", name)
			}
		}
	}
	if err := strictDecode(dir["Metrics"], &doc.Metrics); err != nil {
		return emfDoc{}, fmt.Errorf("Metrics: %w", err)
	}
	if len(doc.Metrics) == 0 || len(doc.Metrics) > MaxMetricsPerDocument {
		return emfDoc{}, fmt.Errorf("%d metric definitions, want 1 to %d", len(doc.Metrics), MaxMetricsPerDocument)
	}
	seen := map[string]bool{}
	for _, m := range doc.Metrics {
		if m.Name == "" || len(m.Name) > 255 || seen[m.Name] {
			return emfDoc{}, fmt.Errorf("metric name %q empty, too long or repeated", m.Name)
		}
		seen[m.Name] = true
		if m.Unit != "" && !Unit(m.Unit).Valid() {
			return emfDoc{}, fmt.Errorf("metric %q: unit %q", m.Name, m.Unit)
		}
		if m.StorageResolution != 0 && m.StorageResolution != 1 && m.StorageResolution != 60 {
			return emfDoc{}, fmt.Errorf("metric %q: StorageResolution %d", m.Name, m.StorageResolution)
		}
		switch v := members[m.Name].(type) {
		case json.Number:
		case []any:
			if len(v) == 0 || len(v) > MaxValuesPerMetric {
				return emfDoc{}, fmt.Errorf("metric %q: %d values, want 1 to %d", m.Name, len(v), MaxValuesPerMetric)
			}
			for _, x := range v {
				if _, ok := x.(json.Number); !ok {
					return emfDoc{}, fmt.Errorf("metric %q: value %v is not a number", m.Name, x)
				}
			}
		default:
			return emfDoc{}, fmt.Errorf("metric %q: member %v is not a number or array of numbers", m.Name, members[m.Name])
		}
	}
	return doc, nil
}

// strictDecode decodes JSON rejecting unknown members.
func strictDecode(raw json.RawMessage, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	d.UseNumber()
	return d.Decode(v)
}

// values returns the numbers of metric name in doc.
func (d emfDoc) values(name string) []float64 {
	var out []float64
	add := func(x any) {
		if n, ok := x.(json.Number); ok {
			f, _ := n.Float64()
			out = append(out, f)
		}
	}
	switch v := d.Members[name].(type) {
	case []any:
		for _, x := range v {
			add(x)
		}
	default:
		add(v)
	}
	return out
}

func (d emfDoc) String() string {
	names := make([]string, len(d.Metrics))
	for i, m := range d.Metrics {
		names[i] = m.Name
	}
	return fmt.Sprintf("doc{%s dims=%v metrics=%s}", d.Namespace, d.Dimensions, strings.Join(names, ","))
}
