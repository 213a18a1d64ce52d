package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/registry"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/workflow/dsl"
)

func init() {
	wf := &cobra.Command{Use: "workflow", Short: "Publish and inspect workflow descriptors in the registry"}
	wf.AddCommand(workflowPushCmd(), workflowListCmd(), workflowShowCmd(), workflowRollbackCmd())
	root.AddCommand(wf)
}

func openRegistry(cmd *cobra.Command) (*registry.Registry, error) {
	cfg, res, err := deployedStack(cmd.Context(), stack.OutStateTable)
	if err != nil {
		return nil, err
	}
	return registry.New(dynamodb.NewFromConfig(cfg), res.StateTable), nil
}

func workflowPushCmd() *cobra.Command {
	var tenant string
	var shared bool
	cmd := &cobra.Command{
		Use:   "push FILE... [--tenant T] [--shared]",
		Short: "Validate and publish workflow documents (immutable per namespace/name/version) into a tenant's namespace",
		Long: "Validate and publish workflow documents (immutable per namespace/name/version). Each document's namespace\n" +
			"is claimed for --tenant (default: default) if nobody claimed it; one another tenant owns is refused.\n" +
			"--shared lets every tenant start the namespace's workflows (docs/security.md).",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			reg, err := openRegistry(cmd)
			if err != nil {
				return err
			}
			for _, f := range files {
				body, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				wf, err := dsl.Load(body)
				if err != nil {
					return withExit(2, fmt.Errorf("%s: %w", f, err))
				}
				if err := reg.Claim(cmd.Context(), wf.Document.Namespace, tenant); err != nil {
					return withExit(2, fmt.Errorf("%s: %w", f, err))
				}
				e, res, err := reg.Push(cmd.Context(), body)
				if err != nil {
					return withExit(2, fmt.Errorf("%s: %w", f, err))
				}
				if shared {
					if err := reg.Share(cmd.Context(), e.Namespace, true); err != nil {
						return err
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s sha256:%s\n", res, e.Ref(), e.Hash)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", message.DefaultTenant, "the tenant that owns the documents' namespaces")
	cmd.Flags().BoolVar(&shared, "shared", false, "let every tenant start the namespaces' workflows")
	return cmd
}

func workflowListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List published workflow versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := openRegistry(cmd)
			if err != nil {
				return err
			}
			entries, err := reg.List(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WORKFLOW\tVERSION\tLATEST\tSHA256\tPUSHED")
			for _, e := range entries {
				latest := ""
				if e.Latest {
					latest = "*"
				}
				fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\n", e.Namespace, e.Name, e.Version, latest, e.Hash[:16], e.PushedAt.Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
}

func workflowShowCmd() *cobra.Command {
	var raw bool
	cmd := &cobra.Command{
		Use:   "show NAMESPACE/NAME[:VERSION]",
		Short: "Show a published version (latest when no version is given)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, name, version, err := parseWorkflowRef(args[0])
			if err != nil {
				return withExit(2, err)
			}
			reg, err := openRegistry(cmd)
			if err != nil {
				return err
			}
			d, err := reg.Resolve(cmd.Context(), ns, name, version)
			if err != nil {
				return err
			}
			if raw {
				_, err = cmd.OutOrStdout().Write(d.Body)
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(d.Entry)
		},
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "print the document itself")
	return cmd
}

func workflowRollbackCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rollback NAMESPACE/NAME:VERSION",
		Short: "Point a workflow's latest at an earlier published version (running cases keep theirs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, name, version, err := parseWorkflowRef(args[0])
			if err != nil || version == "" {
				return withExit(2, fmt.Errorf("rollback: want NAMESPACE/NAME:VERSION, got %q", args[0]))
			}
			reg, err := openRegistry(cmd)
			if err != nil {
				return err
			}
			if err := reg.SetLatest(cmd.Context(), ns, name, version); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "latest %s/%s -> %s\n", ns, name, version)
			return nil
		},
	}
}

// parseWorkflowRef splits [NAMESPACE/]NAME[:VERSION]; the namespace defaults
// to "default".
func parseWorkflowRef(s string) (ns, name, version string, err error) {
	ref, version, _ := strings.Cut(s, ":")
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		ns, name = "default", ref
	}
	if ns == "" || name == "" {
		return "", "", "", fmt.Errorf("workflow reference %q: want [NAMESPACE/]NAME[:VERSION]", s)
	}
	return ns, name, version, nil
}
