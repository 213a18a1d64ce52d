package main

import (
	"path/filepath"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// TestEnvironmentFilesSynthesizeAndPassNag synthesizes the stack with each
// environment file of docs/PRODUCTION_GUIDE.md (cdk deploy -c
// envFile=environments/NAME.json): the file's settings reach the template
// and cdk-nag's AwsSolutions pack reports nothing unsuppressed.
func TestEnvironmentFilesSynthesizeAndPassNag(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("environments", "*.json"))
	if err != nil || len(files) < 2 {
		t.Fatalf("environment files %v (%v), want prod and staging at least", files, err)
	}
	prefixes := map[string]string{"prod.json": "knhk-prod", "staging.json": "knhk-staging"}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s := synth(t, "envFile "+f, map[string]any{"envFile": f})
			prefix, ok := prefixes[filepath.Base(f)]
			if !ok {
				t.Fatalf("add %s's namePrefix to this test", f)
			}
			must(t, "executor named from the file's namePrefix", func() {
				s.tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"),
					like(map[string]any{"FunctionName": prefix + "-" + ExecutorName}))
			})
			errs := s.ann.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*")))
			warns := s.ann.FindWarning(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*")))
			for _, m := range append(*errs, *warns...) {
				t.Errorf("unsuppressed cdk-nag finding at %s: %v", *m.Id, m.Entry.Data)
			}
		})
	}
}
