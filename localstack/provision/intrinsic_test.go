package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func mustJSON(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

func testResolver() *Resolver {
	r := &Resolver{
		Params:   map[string]any{"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws", "Env": "prod"},
		Mappings: map[string]any{"Sizes": map[string]any{"prod": map[string]any{"Memory": 1024.0}}},
		Ref: func(id string) (any, error) {
			if id == "Queue" {
				return "https://queue/url", nil
			}
			return nil, fmt.Errorf("unknown %s", id)
		},
		Attr: func(id, attr string) (any, error) {
			if id == "Table" && attr == "Arn" {
				return "arn:aws:dynamodb:us-east-1:123456789012:table/t", nil
			}
			return nil, fmt.Errorf("unknown %s.%s", id, attr)
		},
	}
	conds := map[string]bool{"IsProd": true, "IsLocal": false}
	r.Condition = func(name string) (bool, error) {
		v, ok := conds[name]
		if !ok {
			return false, errors.New("unknown condition " + name)
		}
		return v, nil
	}
	return r
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"literal", `"x"`, `"x"`},
		{"ref resource", `{"Ref":"Queue"}`, `"https://queue/url"`},
		{"ref pseudo", `{"Ref":"AWS::Region"}`, `"us-east-1"`},
		{"getatt list", `{"Fn::GetAtt":["Table","Arn"]}`, `"arn:aws:dynamodb:us-east-1:123456789012:table/t"`},
		{"getatt dotted", `{"Fn::GetAtt":"Table.Arn"}`, `"arn:aws:dynamodb:us-east-1:123456789012:table/t"`},
		{"join", `{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":sqs:",{"Ref":"AWS::Region"},":",5]]}`, `"arn:aws:sqs:us-east-1:5"`},
		{"sub string", `{"Fn::Sub":"arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:x/${Table.Arn}"}`,
			`"arn:aws:logs:us-east-1:123456789012:x/arn:aws:dynamodb:us-east-1:123456789012:table/t"`},
		{"sub with variables and literal", `{"Fn::Sub":["${Name}-${!Literal}-${Queue}",{"Name":{"Ref":"Env"}}]}`, `"prod-${Literal}-https://queue/url"`},
		{"select split", `{"Fn::Select":[1,{"Fn::Split":["/",{"Ref":"Queue"}]}]}`, `""`},
		{"select split second", `{"Fn::Select":["2",{"Fn::Split":["/","a/b/c"]}]}`, `"c"`},
		{"if true", `{"Fn::If":["IsProd","p","l"]}`, `"p"`},
		{"if false novalue removed", `{"A":{"Fn::If":["IsLocal","l",{"Ref":"AWS::NoValue"}]},"B":1}`, `{"B":1}`},
		{"novalue in list", `["a",{"Ref":"AWS::NoValue"},"b"]`, `["a","b"]`},
		{"equals", `{"Fn::Equals":[{"Ref":"AWS::Region"},"us-east-1"]}`, `true`},
		{"or of equals", `{"Fn::Or":[{"Fn::Equals":["a","b"]},{"Condition":"IsProd"}]}`, `true`},
		{"and not", `{"Fn::And":[{"Fn::Not":[{"Condition":"IsLocal"}]},{"Fn::Equals":[1,"1"]}]}`, `true`},
		{"find in map", `{"Fn::FindInMap":["Sizes",{"Ref":"Env"},"Memory"]}`, `1024`},
		{"base64", `{"Fn::Base64":"hi"}`, `"aGk="`},
		{"nested map", `{"Policy":{"Resource":[{"Fn::GetAtt":["Table","Arn"]}]}}`, `{"Policy":{"Resource":["arn:aws:dynamodb:us-east-1:123456789012:table/t"]}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := testResolver().Resolve(mustJSON(t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if want := mustJSON(t, tc.want); !reflect.DeepEqual(got, want) {
				t.Fatalf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"unknown ref", `{"Ref":"Nope"}`, "unknown Nope"},
		{"unknown attr", `{"Fn::GetAtt":["Table","StreamArn"]}`, "unknown Table.StreamArn"},
		{"bad getatt", `{"Fn::GetAtt":["Table"]}`, "want [logicalId, attribute]"},
		{"join non-string", `{"Fn::Join":["",[["x"]]]}`, "want a string"},
		{"select out of range", `{"Fn::Select":[3,["a"]]}`, "out of range"},
		{"select negative", `{"Fn::Select":[-1,["a"]]}`, "out of range"},
		{"split empty delimiter", `{"Fn::Split":["","abc"]}`, "Fn::Split"},
		{"sub unknown", `{"Fn::Sub":"${Nope}"}`, "unknown Nope"},
		{"if unknown condition", `{"Fn::If":["Nope","a","b"]}`, "unknown condition"},
		{"unsupported", `{"Fn::ImportValue":"x"}`, "not supported"},
		{"find in map missing", `{"Fn::FindInMap":["Sizes","dev","Memory"]}`, "not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testResolver().Resolve(mustJSON(t, tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
}

// FuzzResolve feeds arbitrary JSON to the resolver: it must return a value
// or an error, never panic.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{`{"Fn::Join":["-",["a",{"Ref":"Queue"}]]}`, `{"Fn::Sub":["${A}${!B}",{"A":"x"}]}`,
		`{"Fn::Select":[0,{"Fn::Split":[",","a,b"]}]}`, `{"Fn::If":["IsProd",1,2]}`, `{"Fn::Or":[{"Condition":"IsLocal"}]}`,
		`{"Fn::FindInMap":["Sizes","prod","Memory"]}`, `{"Fn::GetAtt":"Table.Arn"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil {
			return
		}
		_, _ = testResolver().Resolve(v)
		_, _ = testResolver().EvalCondition(v)
		_ = references(v)
	})
}
