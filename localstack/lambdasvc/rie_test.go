package lambdasvc

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		failed bool
	}{
		{"success", 200, `{"batchItemFailures":[]}`, false},
		{"null", 200, `null`, false},
		{"function error", 200, `{"errorMessage":"boom","errorType":"errorString"}`, true},
		{"error with stack", 200, `{"errorMessage":"boom","errorType":"x","stackTrace":[]}`, true},
		{"result that mentions errors", 200, `{"errorMessage":"x","result":1}`, false},
		{"timeout", 200, `Task timed out after 3.00 seconds`, true},
		{"emulator failure", http.StatusBadGateway, ``, true},
		{"plain string", 200, `"ok"`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := classify(tc.status, []byte(tc.body))
			if r.Failed() != tc.failed {
				t.Errorf("failed = %v (%s), want %v", r.Failed(), r.Reason, tc.failed)
			}
			if r.Failed() && r.FunctionError != "Unhandled" {
				t.Errorf("function error %q", r.FunctionError)
			}
		})
	}
}

func TestFailedMessages(t *testing.T) {
	ids := []string{"a", "b", "c"}
	tests := []struct {
		name   string
		res    Result
		report bool
		want   []string
	}{
		{"success without reports", Result{Payload: []byte(`{"batchItemFailures":[{"itemIdentifier":"a"}]}`)}, false, nil},
		{"function error", Result{FunctionError: "Unhandled"}, true, ids},
		{"function error without reports", Result{FunctionError: "Unhandled"}, false, ids},
		{"listed failures", Result{Payload: []byte(`{"batchItemFailures":[{"itemIdentifier":"c"},{"itemIdentifier":"a"}]}`)}, true, []string{"a", "c"}},
		{"empty body", Result{}, true, nil},
		{"null", Result{Payload: []byte(`null`)}, true, nil},
		{"empty object", Result{Payload: []byte(`{}`)}, true, nil},
		{"null list", Result{Payload: []byte(`{"batchItemFailures":null}`)}, true, nil},
		{"unknown id", Result{Payload: []byte(`{"batchItemFailures":[{"itemIdentifier":"z"}]}`)}, true, ids},
		{"empty id", Result{Payload: []byte(`{"batchItemFailures":[{"itemIdentifier":""}]}`)}, true, ids},
		{"missing id", Result{Payload: []byte(`{"batchItemFailures":[{}]}`)}, true, ids},
		{"not a batch response", Result{Payload: []byte(`"not a batch response"`)}, true, ids},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := FailedMessages(tc.res, ids, tc.report)
			var keys []string
			for k, v := range got {
				if v {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tc.want) {
				t.Errorf("failed %v, want %v", keys, tc.want)
			}
		})
	}
}

func FuzzFailedMessages(f *testing.F) {
	f.Add([]byte(`{"batchItemFailures":[{"itemIdentifier":"a"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ids := []string{"a", "b"}
		for id := range FailedMessages(Result{Payload: body}, ids, true) {
			if !slices.Contains(ids, id) {
				t.Fatalf("failure %q is not in the batch", id)
			}
		}
	})
}

func TestFunctionEnv(t *testing.T) {
	s := &Service{stack: &Stack{Region: "eu-west-1"}, cfg: Config{Env: map[string]string{"EXTRA": "1", "AWS_REGION": "xx"}}}
	s.cfg.AWS.BaseEndpoint = new(string)
	*s.cfg.AWS.BaseEndpoint = "http://127.0.0.1:4566"
	f := &Function{Name: "f", Binary: "/opt/fn/bootstrap", MemorySize: 512, Timeout: 30,
		Env: map[string]string{"TABLE": "t", "AWS_LAMBDA_FUNCTION_NAME": "spoofed", "AWS_LAMBDA_MAX_CONCURRENCY": "4"}}
	env := map[string]string{}
	for _, kv := range s.functionEnv(f) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	want := map[string]string{"TABLE": "t", "EXTRA": "1", "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
		"AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", "AWS_LAMBDA_FUNCTION_TIMEOUT": "30",
		"AWS_ACCESS_KEY_ID": FunctionAccessKey("f"), "AWS_SECRET_ACCESS_KEY": "test", "LAMBDA_TASK_ROOT": "/opt/fn"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if _, ok := env["AWS_LAMBDA_MAX_CONCURRENCY"]; ok {
		t.Error("AWS_LAMBDA_MAX_CONCURRENCY passed to the emulator")
	}
}
