// Command coffer is Coffer's one binary: the server, the dev server and
// the operator commands.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := rootCmd().Execute(); err != nil {
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "coffer",
		Short: "Coffer: a self-hosted, replicated secrets manager that speaks the AWS Secrets Manager API",
		Long: `Coffer serves the AWS Secrets Manager API from a Raft cluster you run yourself.
Applications keep using the AWS SDKs and CLI; only the endpoint changes.

Every flag can also be set from the environment as COFFER_<FLAG>, with dashes
as underscores: --node-id is COFFER_NODE_ID. A flag on the command line wins.`,
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.AddCommand(serverCmd(), devCmd(), operatorCmd(), keyCmd(), rotatorCmd(), iamCmd(), regionCmd(), auditCmd(), versionCmd())
	return root
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the Coffer version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "coffer %s\n", version)
		},
	}
}

// bindEnv fills every flag not given on the command line from
// COFFER_<NAME>. It runs before the command, so validation sees the final
// values.
func bindEnv(cmd *cobra.Command) error {
	var firstErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || firstErr != nil {
			return
		}
		env := "COFFER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := cmd.Flags().Set(f.Name, v); err != nil {
				firstErr = fmt.Errorf("%s=%q: %w", env, v, err)
			}
		}
	})
	return firstErr
}
