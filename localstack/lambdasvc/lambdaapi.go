package lambdasvc

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EnvLambdaEndpoint is the variable that points the functions' Lambda
// clients at the service's own Lambda API (the AWS SDKs read it).
const EnvLambdaEndpoint = "AWS_ENDPOINT_URL_LAMBDA"

// liveMapping is a queue mapping whose batch size and maximum concurrency
// the Lambda API may change while the service runs, as on AWS.
type liveMapping struct {
	m           QueueMapping
	uuid        string
	functionARN string
	concurrency atomic.Int64 // ScalingConfig.MaximumConcurrency; 0: none set
	batch       atomic.Int64
	modified    atomic.Int64 // unix seconds of the last change
}

// MappingUUID is the id the local Lambda API gives a mapping: stable
// across restarts, derived from the stack and the mapping's logical id.
func MappingUUID(stackName, logicalID string) string {
	h := sha256.Sum256([]byte(stackName + "/" + logicalID))
	x := hex.EncodeToString(h[:16])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

func newLiveMapping(stackName string, m QueueMapping, functionARN string, at time.Time) *liveMapping {
	l := &liveMapping{m: m, uuid: MappingUUID(stackName, m.LogicalID), functionARN: functionARN}
	l.concurrency.Store(int64(m.MaxConcurrency))
	l.batch.Store(int64(m.BatchSize))
	l.modified.Store(at.Unix())
	return l
}

// mappingJSON is the Lambda API's EventSourceMappingConfiguration, the
// members the local service plays.
type mappingJSON struct {
	UUID                           string         `json:"UUID"`
	BatchSize                      int64          `json:"BatchSize"`
	MaximumBatchingWindowInSeconds int64          `json:"MaximumBatchingWindowInSeconds"`
	EventSourceArn                 string         `json:"EventSourceArn"`
	FunctionArn                    string         `json:"FunctionArn"`
	State                          string         `json:"State"`
	LastModified                   float64        `json:"LastModified"`
	FunctionResponseTypes          []string       `json:"FunctionResponseTypes,omitempty"`
	ScalingConfig                  *scalingConfig `json:"ScalingConfig,omitempty"`
}

type scalingConfig struct {
	MaximumConcurrency *int64 `json:"MaximumConcurrency,omitempty"`
}

func (l *liveMapping) config() mappingJSON {
	c := mappingJSON{UUID: l.uuid, BatchSize: l.batch.Load(), MaximumBatchingWindowInSeconds: int64(l.m.WindowSeconds),
		EventSourceArn: l.m.QueueARN, FunctionArn: l.functionARN, State: "Enabled", LastModified: float64(l.modified.Load())}
	if l.m.ReportFailures {
		c.FunctionResponseTypes = []string{"ReportBatchItemFailures"}
	}
	if n := l.concurrency.Load(); n > 0 {
		c.ScalingConfig = &scalingConfig{MaximumConcurrency: &n}
	}
	return c
}

// lambdaAPI serves the part of the Lambda API that reads and updates the
// stack's SQS event source mappings: ListEventSourceMappings,
// GetEventSourceMapping and UpdateEventSourceMapping (BatchSize,
// MaximumBatchingWindowInSeconds and ScalingConfig.MaximumConcurrency).
type lambdaAPI struct {
	mu       sync.Mutex // orders updates
	mappings []*liveMapping
	now      func() time.Time
}

const mappingsPath = "/2015-03-31/event-source-mappings/"

// ServeHTTP implements http.Handler.
func (a *lambdaAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == strings.TrimSuffix(mappingsPath, "/") {
		r.URL.Path = mappingsPath
	}
	if !strings.HasPrefix(r.URL.Path, mappingsPath) {
		apiError(w, http.StatusNotFound, "ResourceNotFoundException", "the local Lambda API serves event source mappings only: "+r.URL.Path)
		return
	}
	id := strings.TrimPrefix(r.URL.Path, mappingsPath)
	switch {
	case id == "" && r.Method == http.MethodGet:
		a.list(w, r)
	case id != "" && r.Method == http.MethodGet:
		if l := a.find(id); l != nil {
			writeJSON(w, http.StatusOK, l.config())
			return
		}
		apiError(w, http.StatusNotFound, "ResourceNotFoundException", "event source mapping "+id+" not found")
	case id != "" && r.Method == http.MethodPut:
		a.update(w, r, id)
	default:
		apiError(w, http.StatusMethodNotAllowed, "InvalidParameterValueException", r.Method+" "+r.URL.Path+" is not served locally")
	}
}

func (a *lambdaAPI) find(id string) *liveMapping {
	for _, l := range a.mappings {
		if l.uuid == id {
			return l
		}
	}
	return nil
}

// sameFunction matches a FunctionName filter (name, ARN or partial ARN)
// against a function ARN.
func sameFunction(filter, arn string) bool {
	if filter == "" || filter == arn {
		return true
	}
	name := arn[strings.LastIndex(arn, ":")+1:]
	return filter == name || strings.HasSuffix(filter, ":"+name)
}

func (a *lambdaAPI) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out := struct {
		EventSourceMappings []mappingJSON `json:"EventSourceMappings"`
	}{EventSourceMappings: []mappingJSON{}}
	for _, l := range a.mappings {
		if src := q.Get("EventSourceArn"); src != "" && src != l.m.QueueARN {
			continue
		}
		if !sameFunction(q.Get("FunctionName"), l.functionARN) {
			continue
		}
		out.EventSourceMappings = append(out.EventSourceMappings, l.config())
	}
	writeJSON(w, http.StatusOK, out)
}

// update applies an UpdateEventSourceMapping request with the limits AWS
// sets for SQS mappings: a batch of 1 to 10 000 (above 10 only with a
// batching window), a window of 0 to 300 seconds, a maximum concurrency of
// 2 to 1000.
func (a *lambdaAPI) update(w http.ResponseWriter, r *http.Request, id string) {
	var in struct {
		BatchSize                      *int64         `json:"BatchSize"`
		MaximumBatchingWindowInSeconds *int64         `json:"MaximumBatchingWindowInSeconds"`
		ScalingConfig                  *scalingConfig `json:"ScalingConfig"`
		Enabled                        *bool          `json:"Enabled"`
		FunctionName                   *string        `json:"FunctionName"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil {
		apiError(w, http.StatusBadRequest, "InvalidParameterValueException", "request body: "+err.Error())
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.find(id)
	if l == nil {
		apiError(w, http.StatusNotFound, "ResourceNotFoundException", "event source mapping "+id+" not found")
		return
	}
	if in.Enabled != nil && !*in.Enabled {
		apiError(w, http.StatusBadRequest, "InvalidParameterValueException", "disabling a mapping is not played locally")
		return
	}
	if in.FunctionName != nil && !sameFunction(*in.FunctionName, l.functionARN) {
		apiError(w, http.StatusBadRequest, "InvalidParameterValueException", "moving a mapping to another function is not played locally")
		return
	}
	batch, window := l.batch.Load(), int64(l.m.WindowSeconds)
	if in.MaximumBatchingWindowInSeconds != nil {
		window = *in.MaximumBatchingWindowInSeconds
	}
	if in.BatchSize != nil {
		batch = *in.BatchSize
	}
	switch {
	case window < 0 || window > 300:
		apiError(w, http.StatusBadRequest, "InvalidParameterValueException", fmt.Sprintf("MaximumBatchingWindowInSeconds %d: want 0 to 300", window))
		return
	case window != int64(l.m.WindowSeconds):
		apiError(w, http.StatusBadRequest, "InvalidParameterValueException", "changing the batching window is not played locally")
		return
	case batch < 1 || batch > 10000 || (batch > 10 && window == 0):
		apiError(w, http.StatusBadRequest, "InvalidParameterValueException", fmt.Sprintf("BatchSize %d: want 1 to 10, or up to 10000 with a batching window", batch))
		return
	}
	conc := l.concurrency.Load()
	if in.ScalingConfig != nil {
		conc = 0
		if in.ScalingConfig.MaximumConcurrency != nil {
			conc = *in.ScalingConfig.MaximumConcurrency
			if conc < 2 || conc > 1000 {
				apiError(w, http.StatusBadRequest, "InvalidParameterValueException", fmt.Sprintf("MaximumConcurrency %d: want 2 to 1000", conc))
				return
			}
		}
	}
	l.batch.Store(batch)
	l.concurrency.Store(conc)
	l.modified.Store(a.now().Unix())
	writeJSON(w, http.StatusAccepted, l.config())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Amzn-ErrorType", code)
	writeJSON(w, status, map[string]string{"Type": "User", "message": msg})
}

// MappingAPI is the Lambda API over st's SQS mappings without running
// them: clients of the API test against it.
func MappingAPI(st *Stack) http.Handler {
	a := &lambdaAPI{now: time.Now}
	for _, m := range st.Queues {
		arn := ""
		if f := st.Functions[m.Function]; f != nil {
			arn = f.ARN
		}
		a.mappings = append(a.mappings, newLiveMapping(st.Name, m, arn, time.Now()))
	}
	return a
}
