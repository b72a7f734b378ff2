package main

import (
	"cmp"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cofferhq/coffer/server"
	"github.com/spf13/cobra"
)

// The rotator commands: the rotators a region's secrets rotate with
// (rotation/registry.go, server/rotators.go). Every call is signed, and
// authorized as its coffer: action (docs/authorization.md).

const rotatorHelpTail = `

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.`

func rotatorCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "rotator",
		Short: "Manage the rotators secrets rotate with (what RotationLambdaARN names)",
		Long: `Manage the region's rotators. A rotator is what a rotation Lambda function is
in AWS Secrets Manager: RotateSecret's RotationLambdaARN names one, by its ARN
(arn:aws:lambda:REGION:ACCOUNT:function:NAME) or its name, and the leader runs
its four steps (createSecret, setSecret, testSecret, finishSecret) for every
rotation. Types:

  postgres   PostgreSQL; --config strategy=single-user (default) or
             strategy=alternating-users (the secret's masterarn names a
             superuser secret)
  mysql      MySQL and MariaDB; the same strategies
  webhook    POSTs each step's event to --config url=https://...; signed with
             the key in the secret --config signing_secret=NAME names
             (optional: timeout=30s, ca_pem=..., allow_http=true for dev)
  exec       runs --config command=NAME from the servers' --rotator-exec-dir
             with the event on stdin (optional: args='["--flag"]', timeout)

Settings hold no credentials. docs/rotation.md has worked examples.` + rotatorHelpTail,
		Example: `  coffer rotator create orders-db --type postgres --config strategy=single-user --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1
  aws secretsmanager rotate-secret --secret-id orders/db --rotation-lambda-arn orders-db --rotation-rules '{"ScheduleExpression": "rate(30 days)"}'`,
	}
	c.AddCommand(rotatorCreateCmd(), rotatorListCmd(), rotatorDescribeCmd(), rotatorDeleteCmd())
	return c
}

func rotatorCreateCmd() *cobra.Command {
	var cf clientFlags
	var typ, description string
	var config []string
	var replace bool
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Register a rotator (or with --replace change one)",
		Long: `Register a rotator named NAME (letters, digits, - and _, at most 64) of
--type postgres, mysql, webhook or exec, with its settings as --config
key=value (repeatable). Its ARN, arn:aws:lambda:REGION:ACCOUNT:function:NAME,
is what RotateSecret's RotationLambdaARN takes (the name works too). With
--replace the rotator's type and settings are replaced; secrets keep
rotating with it.` + rotatorHelpTail,
		Example: `  coffer rotator create orders-db --type postgres --config strategy=alternating-users
  coffer rotator create ci-hook --type webhook --config url=https://hooks.example.com/rotate --config signing_secret=rotation/hook-key`,
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			settings := map[string]string{}
			for _, kv := range config {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--config %q: give key=value", kv)
				}
				settings[k] = v
			}
			return rotatorCall(cmd, &cf, "POST", "/v1/rotators", map[string]any{"name": args[0], "type": typ,
				"config": settings, "description": description, "replace": replace})
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&typ, "type", "", "postgres, mysql, webhook or exec")
	cmd.Flags().StringArrayVar(&config, "config", nil, "a setting, key=value (repeatable)")
	cmd.Flags().StringVar(&description, "description", "", "what the rotator is for")
	cmd.Flags().BoolVar(&replace, "replace", false, "change an existing rotator instead of creating one")
	return cmd
}

func rotatorListCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the region's rotators",
		Long:    `List the region's rotators by name: ARN, type and settings.` + rotatorHelpTail,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var out struct {
				Rotators []server.RotatorInfo `json:"rotators"`
			}
			if err := c.call(cmd.Context(), "GET", "/v1/rotators", nil, &out, true); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if cf.format == "json" {
				return printJSON(w, out.Rotators)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "Name\tType\tSettings\tARN")
			for _, r := range out.Rotators {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Type, cmp.Or(settingsText(r.Config), "-"), r.ARN)
			}
			return tw.Flush()
		},
	}
	cf.add(cmd)
	return cmd
}

func rotatorDescribeCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:     "describe NAME|ARN",
		Short:   "Show a rotator",
		Long:    `Show a rotator: its ARN, type, settings and description.` + rotatorHelpTail,
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			return rotatorCall(cmd, &cf, "GET", "/v1/rotator?rotator="+url.QueryEscape(args[0]), nil)
		},
	}
	cf.add(cmd)
	return cmd
}

func rotatorDeleteCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "delete NAME|ARN",
		Short: "Remove a rotator no secret rotates with",
		Long: `Remove a rotator. A rotator that a secret with rotation enabled or in
flight names is refused: cancel those rotations (CancelRotateSecret) or point
the secrets at another rotator first.` + rotatorHelpTail,
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			return rotatorCall(cmd, &cf, "POST", "/v1/rotator/delete", map[string]string{"rotator": args[0]})
		},
	}
	cf.add(cmd)
	return cmd
}

func rotatorCall(cmd *cobra.Command, cf *clientFlags, method, path string, in any) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	var info server.RotatorInfo
	if err := c.call(cmd.Context(), method, path, in, &info, true); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if cf.format == "json" {
		return printJSON(w, &info)
	}
	return printRotator(w, &info)
}

func printRotator(w io.Writer, r *server.RotatorInfo) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "Name\t%s\n", r.Name)
	fmt.Fprintf(tw, "ARN\t%s\n", r.ARN)
	fmt.Fprintf(tw, "Type\t%s\n", r.Type)
	fmt.Fprintf(tw, "Settings\t%s\n", cmp.Or(settingsText(r.Config), "-"))
	fmt.Fprintf(tw, "Description\t%s\n", cmp.Or(r.Description, "-"))
	fmt.Fprintf(tw, "Created\t%s\n", time.UnixMilli(r.CreatedDate).UTC().Format(time.RFC3339))
	return tw.Flush()
}

// settingsText shows settings as key=value, in key order; a CA
// certificate is shown by size only.
func settingsText(cfg map[string]string) string {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := cfg[k]
		if k == "ca_pem" {
			v = fmt.Sprintf("(%d bytes)", len(v))
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}
