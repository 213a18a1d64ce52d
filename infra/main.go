// Command infra is the KNHK CDK app: it synthesizes the KnhkStack
// CloudFormation template from context (see docs/local-aws.md for the keys).
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/knhk/knhk/infra/stackconfig"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	if _, err := DefineApp(app); err != nil {
		fmt.Fprintln(os.Stderr, "infra:", err)
		os.Exit(2)
	}
	app.Synth(nil)
}

// DefineApp reads the configuration from the app's context and adds the
// stack to it.
func DefineApp(app awscdk.App) (*KnhkStack, error) {
	cfg, err := stackconfig.FromContext(func(key string) (any, bool) {
		v := app.Node().TryGetContext(jsii.String(key))
		return v, v != nil
	})
	if err != nil {
		return nil, err
	}
	if err := CheckFunctionAssets(cfg); err != nil {
		return nil, err
	}
	return NewKnhkStack(app, StackID, cfg), nil
}
