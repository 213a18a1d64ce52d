package localaws

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

// EnvRequests names the file to which the endpoint (localstack/endpoint.py),
// when it is set in its environment at start, appends one JSON line per
// request that carries a W3C traceparent header.
const EnvRequests = "KNHK_ENDPOINT_REQUESTS"

// Request is one traced request as the endpoint served it.
type Request struct {
	Op     string  `json:"op"`     // X-Amz-Target ("DynamoDB_20120810.PutItem"), else "<service> <path>"
	Key    string  `json:"key"`    // the access key id that signed it
	Trace  string  `json:"trace"`  // trace id of its traceparent
	Span   string  `json:"span"`   // parent id of its traceparent: the client's span of the call
	Status int     `json:"status"` // HTTP status of the answer
	Table  string  `json:"table"`  // DynamoDB: the table its ConsumedCapacity names
	Units  float64 `json:"units"`  // DynamoDB: the capacity units its answer reported
}

// ReadRequests reads the endpoint's request log (see EnvRequests); a line
// being written is left for the next read.
func ReadRequests(path string) ([]Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("endpoint requests: %w", err)
	}
	defer f.Close()
	var out []Request
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var r Request
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue // a partial last line
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("endpoint requests: %w", err)
	}
	return out, nil
}
