package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
	"github.com/knhk/knhk/shared/tenancy"
)

func init() {
	t := &cobra.Command{Use: "tenant", Short: "Grant principals the tenants they may act for (docs/security.md)"}
	t.AddCommand(tenantGrantCmd("grant", "Let a principal start, continue and signal the cases of a tenant"),
		tenantGrantCmd("revoke", "Withdraw a grant"), tenantListCmd())
	root.AddCommand(t)
}

func openGrants(cmd *cobra.Command) (*store.Grants, error) {
	cfg, res, err := deployedStack(cmd.Context(), stack.OutStateTable)
	if err != nil {
		return nil, err
	}
	return store.NewGrants(dynamodb.NewFromConfig(cfg), res.StateTable), nil
}

func tenantGrantCmd(verb, short string) *cobra.Command {
	var principal, tenant string
	cmd := &cobra.Command{
		Use:   verb + " --principal ID --tenant T",
		Short: short,
		Long: short + ".\n\nThe principal is what SQS reports as a message's SenderId, without a role session name: a role's\n" +
			"unique id (aws iam get-role --role-name R --query Role.RoleId), a user's (AIDA...), an account id,\n" +
			"or on the local stack the access key id. --tenant '*' stands for every tenant.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := tenancy.Principal(principal)
			if p == "" || principal != p {
				return withExit(2, fmt.Errorf("--principal %q: want a unique id such as AROA... (no session name, no ARN)", principal))
			}
			if tenant != tenancy.AnyTenant && !message.ValidTenant(tenant) {
				return withExit(2, fmt.Errorf("--tenant %q: want 1-64 letters, digits, '.', '_' or '-', or *", tenant))
			}
			g, err := openGrants(cmd)
			if err != nil {
				return err
			}
			if verb == "grant" {
				err = g.Grant(cmd.Context(), p, tenant)
			} else {
				err = g.Revoke(cmd.Context(), p, tenant)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", verb, p, tenant)
			return nil
		},
	}
	cmd.Flags().StringVar(&principal, "principal", "", "the principal (SenderId without session)")
	cmd.Flags().StringVar(&tenant, "tenant", "", "the tenant, or * for every tenant")
	return cmd
}

func tenantListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the grants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g, err := openGrants(cmd)
			if err != nil {
				return err
			}
			grants, err := g.List(cmd.Context())
			if err != nil {
				return err
			}
			if len(grants) == 0 {
				return errors.New("no grants: only the stack's open tenants are served")
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PRINCIPAL\tTENANT\tGRANTED")
			for _, x := range grants {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", x.Principal, x.Tenant, x.GrantedAt.Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
}
