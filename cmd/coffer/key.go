package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/cofferhq/coffer/region"
	"github.com/spf13/cobra"
)

// The key commands: the region's customer keys and their aliases
// (region/kms.go, server/keys.go). Every call is signed, and authorized as
// its coffer: action (docs/authorization.md).

func keyCmd() *cobra.Command {
	k := &cobra.Command{
		Use:   "key",
		Short: "Manage the region's keys (KMS-style customer keys) and their aliases",
		Long: `Manage the region's keys: the key-encryption keys that wrap the data key of
every secret value, as KMS customer keys do for AWS Secrets Manager. A secret
names its key with KmsKeyId, which takes a key id, a key ARN
(arn:aws:kms:REGION:ACCOUNT:key/ID), an alias (alias/NAME) or an alias ARN
(arn:aws:kms:REGION:ACCOUNT:alias/NAME). The default key, id "default", alias
alias/aws/secretsmanager, protects the secrets that name none.

The key commands name a key the same ways. They are signed with the root
identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.`,
		Example: `  coffer key create --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1 --alias alias/payments
  coffer key list --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1`,
	}
	k.AddCommand(keyCreateCmd(), keyListCmd(), keyDescribeCmd(), keyRotateCmd(),
		keyStateCmd(true), keyStateCmd(false), keyAliasCmd())
	return k
}

func keyCreateCmd() *cobra.Command {
	var cf clientFlags
	var description, alias string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a key with one version, optionally named by an alias",
		Long: `Create a customer key in the region: a new key-encryption key with one
version, sealed in the region's keyring with the others. --alias names it
alias/NAME at once (the name must be free; names under alias/aws/ are
reserved). Secrets use the key when they name it in KmsKeyId, by the printed
key id, its ARN or the alias.

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.`,
		Example: `  coffer key create --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1 --description "payments service" --alias alias/payments`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			return keyCall(cmd, &cf, "POST", "/v1/keys", map[string]string{"description": description, "alias": alias})
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&description, "description", "", "what the key is for (at most 8192 characters)")
	cmd.Flags().StringVar(&alias, "alias", "", "alias to name the key with, alias/NAME")
	return cmd
}

func keyListCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the region's keys, the default key first",
		Long: `List the region's keys, the default key (alias/aws/secretsmanager) first:
their aliases, whether they are enabled, their current version, how many
secrets use them for new values, and how many data keys a rotation left on
older versions (the leader re-wraps them in the background). --format json
prints a JSON array of the keys, as 'coffer key describe' prints each.

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.`,
		Example: `  coffer key list --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var out struct {
				Keys []region.KeyInfo `json:"keys"`
			}
			if err := c.call(cmd.Context(), "GET", "/v1/keys", nil, &out, true); err != nil {
				return err
			}
			return printKeys(cmd.OutOrStdout(), cf.format, out.Keys)
		},
	}
	cf.add(cmd)
	return cmd
}

func printKeys(w io.Writer, format string, keys []region.KeyInfo) error {
	if format == "json" {
		if keys == nil {
			keys = []region.KeyInfo{}
		}
		return printJSON(w, keys)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "KEY ID\tALIASES\tENABLED\tVERSION\tSECRETS\tREWRAP PENDING")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%d\t%d\t%d\n", k.KeyID, joinOr(k.Aliases, ",", "-"), k.Enabled, k.CurrentVersion, k.Secrets, k.RewrapPending)
	}
	return tw.Flush()
}

func keyDescribeCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "describe KEY",
		Short: "Show a key: its versions, the data keys each wraps, and the re-wrap progress",
		Long: `Show one key, named by its id, its ARN or an alias: its ARN, description,
state and aliases, each version with the number of data keys it wraps, and
whether the data keys of older versions have all been re-wrapped under the
current one since the last rotation.

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.`,
		Example: `  coffer key describe alias/payments --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1`,
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var info region.KeyInfo
			if err := c.call(cmd.Context(), "GET", "/v1/key?key="+url.QueryEscape(args[0]), nil, &info, true); err != nil {
				return err
			}
			return printKey(cmd.OutOrStdout(), cf.format, &info)
		},
	}
	cf.add(cmd)
	return cmd
}

func keyRotateCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "rotate KEY",
		Short: "Add a version to a key; new data keys use it at once",
		Long: `Rotate a key, named by its id, its ARN or an alias: add a new version, which
wraps every data key made from now on. The data keys the older versions wrap
stay readable; the leader re-wraps them under the new version in the
background ('coffer key describe' shows how many are left). A disabled key
cannot be rotated: enable it first.

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.`,
		Example: `  coffer key rotate alias/payments --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1`,
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			return keyCall(cmd, &cf, "POST", "/v1/key/rotate", map[string]string{"key": args[0]})
		},
	}
	cf.add(cmd)
	return cmd
}

// keyStateCmd is `coffer key enable` or `coffer key disable`.
func keyStateCmd(enable bool) *cobra.Command {
	var cf clientFlags
	verb, path := "disable", "/v1/key/disable"
	short := "Disable a key: secrets whose data keys it wraps can be neither read nor written"
	if enable {
		verb, path = "enable", "/v1/key/enable"
		short = "Enable a disabled key again: its secrets can be read and written"
	}
	cmd := &cobra.Command{
		Use:   verb + " KEY",
		Short: short,
		Long: fmt.Sprintf(`%s a key, named by its id, its ARN or an alias. While a key is disabled, a
secret whose data keys are wrapped by it cannot be read (DecryptionFailure)
nor written (EncryptionFailure) until the key is enabled again with
'coffer key enable'. Nothing is deleted: enabling the key makes its secrets
readable and writable again. The default key (alias/aws/secretsmanager)
cannot be disabled.

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.`, strings.ToUpper(verb[:1])+verb[1:]),
		Example: fmt.Sprintf(`  coffer key %s alias/payments --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1`, verb),
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			return keyCall(cmd, &cf, "POST", path, map[string]string{"key": args[0]})
		},
	}
	cf.add(cmd)
	return cmd
}

func keyAliasCmd() *cobra.Command {
	var cf clientFlags
	var del bool
	cmd := &cobra.Command{
		Use:   "alias alias/NAME KEY | --delete alias/NAME",
		Short: "Point an alias at a key (creating or moving it), or delete it",
		Long: `Point alias/NAME at a key, named by its id, its ARN or another alias: the
alias is created, or moved if it names another key. Then it prints the key the
alias names. With --delete, the alias is deleted.

A secret's key is fixed when its KmsKeyId is set: re-pointing (or deleting) an
alias does not move existing secrets, which keep the key the alias named then.
Only secrets given the alias afterwards use the new key. Names under
alias/aws/ are reserved.

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.`,
		Example: `  coffer key alias alias/payments 1234abcd-12ab-34cd-56ef-1234567890ab --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1
  coffer key alias --delete alias/payments --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1`,
		Args: func(cmd *cobra.Command, args []string) error {
			if del {
				if len(args) != 1 {
					return fmt.Errorf("--delete takes the alias only, got %d arguments", len(args))
				}
				return nil
			}
			if len(args) != 2 {
				return fmt.Errorf("give the alias and the key it names (or --delete and the alias), got %d arguments", len(args))
			}
			return nil
		},
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			if del && len(args) != 1 {
				return errors.New("--delete takes the alias only")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			name, key := args[0], ""
			if !del {
				key = args[1]
			}
			if err := c.call(cmd.Context(), "POST", "/v1/key/alias", map[string]string{"alias": name, "key": key}, nil, true); err != nil {
				return err
			}
			if del {
				if cf.format == "json" {
					return printJSON(cmd.OutOrStdout(), map[string]string{"deleted": name})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Alias %s deleted.\n", name)
				return nil
			}
			var info region.KeyInfo
			if err := c.call(cmd.Context(), "GET", "/v1/key?key="+url.QueryEscape(name), nil, &info, true); err != nil {
				return err
			}
			return printKey(cmd.OutOrStdout(), cf.format, &info)
		},
	}
	cf.add(cmd)
	cmd.Flags().BoolVar(&del, "delete", false, "delete the alias instead")
	return cmd
}

// keyCall sends a key call that answers with the key, and prints it.
func keyCall(cmd *cobra.Command, cf *clientFlags, method, path string, in any) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	var info region.KeyInfo
	if err := c.call(cmd.Context(), method, path, in, &info, true); err != nil {
		return err
	}
	return printKey(cmd.OutOrStdout(), cf.format, &info)
}

func printKey(w io.Writer, format string, k *region.KeyInfo) error {
	if format == "json" {
		return printJSON(w, k)
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "Key ID\t%s\n", k.KeyID)
	fmt.Fprintf(tw, "ARN\t%s\n", k.ARN)
	fmt.Fprintf(tw, "Description\t%s\n", cmp.Or(k.Description, "-"))
	fmt.Fprintf(tw, "Enabled\t%t\n", k.Enabled)
	fmt.Fprintf(tw, "Default\t%t\n", k.Default)
	fmt.Fprintf(tw, "Aliases\t%s\n", joinOr(k.Aliases, ", ", "-"))
	fmt.Fprintf(tw, "Created\t%s\n", msTime(k.CreatedDate))
	fmt.Fprintf(tw, "Current version\t%d\n", k.CurrentVersion)
	fmt.Fprintf(tw, "Secrets\t%d\n", k.Secrets)
	for _, v := range k.Versions {
		fmt.Fprintf(tw, "Version %d\tcreated %s  data keys %d\n", v.Version, msTime(v.CreatedDate), v.DataKeys)
	}
	switch n := k.RewrapPending; n {
	case 0:
		fmt.Fprintf(tw, "Re-wrap\tcomplete\n")
	case 1:
		fmt.Fprintf(tw, "Re-wrap\t1 data key still on an older version (the leader re-wraps it in the background)\n")
	default:
		fmt.Fprintf(tw, "Re-wrap\t%d data keys still on older versions (the leader re-wraps them in the background)\n", n)
	}
	return tw.Flush()
}

// msTime is a Unix time in milliseconds as RFC 3339, UTC.
func msTime(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

// joinOr joins ss with sep, or is none if there are none.
func joinOr(ss []string, sep, none string) string {
	if len(ss) == 0 {
		return none
	}
	return strings.Join(ss, sep)
}
