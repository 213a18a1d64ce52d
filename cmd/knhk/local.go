package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/knhk/knhk/localstack/localrun"
	"github.com/knhk/knhk/localstack/provision"
	"github.com/knhk/knhk/shared/stack"
)

func init() {
	local := &cobra.Command{Use: "local", Short: "Work with the stack on a local AWS endpoint"}
	local.AddCommand(localDeployCmd(), tuneDemoCmd())
	root.AddCommand(local)
}

func localDeployCmd() *cobra.Command {
	var (
		templatePath, outPath, statePath, stackName, endpoint string
		params                                                []string
	)
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Provision a synthesized CDK template on a local AWS endpoint",
		Long: "Provision a synthesized CDK template on a local AWS endpoint (moto or LocalStack) through the AWS SDK,\n" +
			"write the stack outputs as JSON and print what was created, updated, kept or skipped.\n" +
			"The endpoint comes from --endpoint or AWS_ENDPOINT_URL; without one the command refuses to run.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			endpoint, err := localEndpoint("local deploy", endpoint)
			if err != nil {
				return err
			}
			overrides, err := parseParams(params)
			if err != nil {
				return withExit(2, err)
			}
			statePath := statePath
			if statePath == "" {
				statePath = filepath.Join(filepath.Dir(outPath), "stack-state.json")
			}
			ctx := cmd.Context()
			cfg, err := awsConfig(ctx, endpoint)
			if err != nil {
				return err
			}
			d, err := provision.DeployFile(ctx, cfg, templatePath, provision.Options{
				StackName: stackName, Parameters: overrides, OutputsFile: outPath, StateFile: statePath,
			})
			if d != nil {
				printDeployment(cmd.OutOrStdout(), d)
			}
			if err != nil {
				return fmt.Errorf("local deploy: %w", err)
			}
			// The local deployer acts for every tenant (docs/security.md).
			if err := localrun.GrantDeployer(ctx, cfg, d.Outputs[stack.OutStateTable]); err != nil {
				return fmt.Errorf("local deploy: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "outputs: %s\nstate:   %s\n", outPath, statePath)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&templatePath, "template", "infra/cdk.out/KnhkStack.template.json", "synthesized CloudFormation template")
	f.StringVar(&outPath, "out", stack.DefaultOutputsFile, "where to write the stack outputs (JSON object)")
	f.StringVar(&statePath, "state", "", "where to write the stack state (default: stack-state.json beside --out)")
	f.StringVar(&stackName, "stack", "", "stack name (default: from the template file name)")
	f.StringVar(&endpoint, "endpoint", "", "local AWS endpoint URL (default: $AWS_ENDPOINT_URL)")
	f.StringArrayVar(&params, "param", nil, "template parameter as NAME=VALUE (repeatable)")
	return cmd
}

func parseParams(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--param %q: want NAME=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}

func printDeployment(w io.Writer, d *provision.Deployment) {
	fmt.Fprintf(w, "stack %s in %s (account %s)\n", d.Stack, d.Region, d.Account)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tTYPE\tLOGICAL ID\tPHYSICAL ID\tNOTE")
	for _, r := range d.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Action, r.Type, r.LogicalID, r.PhysicalID, r.Reason)
	}
	tw.Flush()
	for _, n := range d.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	for _, id := range sortedOmitted(d.OmittedOutputs) {
		fmt.Fprintf(w, "output %s omitted: %s\n", id, d.OmittedOutputs[id])
	}
	if !d.Changed() {
		fmt.Fprintln(w, "no changes")
	}
}

func sortedOmitted(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
