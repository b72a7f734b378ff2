package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cofferhq/coffer/region"
	"github.com/spf13/cobra"
)

// The seal commands: init, unseal, seal-status, rekey (region/seal.go).

func sealCmds() []*cobra.Command {
	return []*cobra.Command{initCmd(), unsealCmd(), sealStatusCmd(), rekeyCmd()}
}

func initCmd() *cobra.Command {
	var cf clientFlags
	var shares, threshold int
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialize a region whose nodes run without a root key; prints the unseal shares once",
		Long: `Initialize a new region whose nodes were started without a root key (no
--root-key-file, no COFFER_ROOT_KEY). The node creates the region's root key,
splits it into --key-shares Shamir shares of which --key-threshold unseal a
node, creates the keyring and the root access key, and answers with the shares
and the key pair. They are printed once: Coffer keeps neither. Give each share
to a different operator.

The node that ran init is unsealed; unseal every other node with
'coffer operator unseal' and threshold shares. A node that restarts starts
sealed again.

--key-shares 1 --key-threshold 1 prints the root key itself instead, in the
--root-key-file format, for nodes that unseal from a key file.

init needs no credentials (there are none yet); run it as soon as the nodes
are up, from a machine you trust.`,
		Example: `  coffer operator init --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --key-shares 5 --key-threshold 3`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSplit(cmd, &cf, "/v1/sys/init", shares, threshold, false, "Initialized")
		},
	}
	cf.add(cmd)
	cmd.Flags().IntVar(&shares, "key-shares", 5, "number of shares to split the root key into (1-255)")
	cmd.Flags().IntVar(&threshold, "key-threshold", 3, "number of shares that unseal a node (2 or more; 1 only with one share)")
	return cmd
}

// runSplit asks a node for a new root key split as given (init, rekey)
// and prints the shares.
func runSplit(cmd *cobra.Command, cf *clientFlags, path string, shares, threshold int, signed bool, verb string) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	var out region.InitResult
	if err := c.call(cmd.Context(), "POST", path, map[string]int{"key_shares": shares, "key_threshold": threshold}, &out, signed); err != nil {
		return err
	}
	return printInit(cmd.OutOrStdout(), cf.format, &out, verb)
}

func printInit(w io.Writer, format string, out *region.InitResult, verb string) error {
	if format == "json" {
		return printJSON(w, out)
	}
	for i, s := range out.Shares {
		fmt.Fprintf(w, "Unseal share %d: %s\n", i+1, s)
	}
	if out.RootKey != "" {
		fmt.Fprintf(w, "Root key: %s\n", out.RootKey)
	}
	fmt.Fprintln(w)
	if out.RootKey != "" {
		fmt.Fprintf(w, "%s with a root key given whole (init id %s). Put it in each node's --root-key-file\n(or COFFER_ROOT_KEY); it is shown once.\n", verb, out.InitID)
	} else {
		fmt.Fprintf(w, "%s with %d shares and a threshold of %d (init id %s). The shares are shown once:\ngive each to a different operator. A sealed node unseals with %d of them\n('coffer operator unseal', one share per call).\n",
			verb, len(out.Shares), out.Threshold, out.InitID, out.Threshold)
	}
	if c := out.Credentials; c != nil {
		fmt.Fprintf(w, "\nRoot credentials of the region (shown once; store them now):\n  AWS_ACCESS_KEY_ID=%s\n  AWS_SECRET_ACCESS_KEY=%s\n", c.AccessKeyID, c.SecretAccessKey)
	}
	return nil
}

func unsealCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "unseal [SHARE]",
		Short: "Give a sealed node one unseal share (or the root key)",
		Long: `Give one unseal share to a sealed node. Run it once per share, on each node,
until the node has the threshold: then it rebuilds the root key, opens the
region's keyring and serves. Without an argument the share is read from the
first line of standard input, which keeps it out of the shell's history.

A share of another region or of an earlier key (before a rekey), a mistyped
share, or a share already given is refused with the reason and changes
nothing. Shares that are each valid but do not rebuild the root key are all
discarded, and the operators start again. The root key itself (the
--root-key-file format) unseals in one call.`,
		Example: `  coffer operator unseal --endpoint https://10.0.0.2:8201 --ca-file coffer-ca.pem
  echo "$SHARE" | coffer operator unseal --endpoint https://10.0.0.2:8201 --ca-file coffer-ca.pem`,
		Args:    cobra.MaximumNArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var key string
			if len(args) == 1 {
				key = args[0]
			} else {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				key = strings.TrimSpace(line)
			}
			if key == "" {
				return errors.New("no share given: pass it as the argument or on standard input")
			}
			var st region.SealStatus
			if err := c.call(cmd.Context(), "POST", "/v1/sys/unseal", map[string]string{"key": key}, &st, false); err != nil {
				return err
			}
			return printSealStatus(cmd.OutOrStdout(), cf.format, st)
		},
	}
	cf.add(cmd)
	return cmd
}

func sealStatusCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:     "seal-status",
		Short:   "Show whether a node is sealed and how many unseal shares it has",
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var st region.SealStatus
			if err := c.call(cmd.Context(), "GET", "/v1/sys/seal-status", nil, &st, false); err != nil {
				return err
			}
			return printSealStatus(cmd.OutOrStdout(), cf.format, st)
		},
	}
	cf.add(cmd)
	return cmd
}

func printSealStatus(w io.Writer, format string, st region.SealStatus) error {
	if format == "json" {
		return printJSON(w, st)
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "Region\t%s\n", st.Region)
	fmt.Fprintf(tw, "Initialized\t%t\n", st.Initialized)
	fmt.Fprintf(tw, "Sealed\t%t\n", st.Sealed)
	if st.Threshold >= 2 {
		fmt.Fprintf(tw, "Shares\t%d\n", st.Shares)
		fmt.Fprintf(tw, "Threshold\t%d\n", st.Threshold)
		fmt.Fprintf(tw, "Unseal progress\t%d/%d\n", st.Progress, st.Threshold)
	} else if st.Initialized {
		fmt.Fprintf(tw, "Root key\tgiven whole (key file)\n")
	}
	if st.InitID != "" {
		fmt.Fprintf(tw, "Init id\t%s\n", st.InitID)
	}
	if st.Reason != "" {
		fmt.Fprintf(tw, "Reason\t%s\n", st.Reason)
	}
	return tw.Flush()
}

func rekeyCmd() *cobra.Command {
	var cf clientFlags
	var shares, threshold int
	cmd := &cobra.Command{
		Use:   "rekey",
		Short: "Replace the region's root key with a new one and print its new shares once",
		Long: `Replace the region's root key. The node (which must be unsealed) makes a new
root key, splits it as asked, and re-seals the keyring and the access keys'
secrets under it through Raft; secret values and their data keys are not
touched. The old shares (or root key file) stop working: nodes keep serving,
but one that restarts needs the new shares.

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.
--key-shares 1 --key-threshold 1 prints the new root key itself, for key files.`,
		Example: `  coffer operator rekey --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1 --key-shares 5 --key-threshold 3`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSplit(cmd, &cf, "/v1/sys/rekey", shares, threshold, true, "Rekeyed")
		},
	}
	cf.add(cmd)
	cmd.Flags().IntVar(&shares, "key-shares", 5, "number of shares to split the new root key into (1-255)")
	cmd.Flags().IntVar(&threshold, "key-threshold", 3, "number of shares that unseal a node (2 or more; 1 only with one share)")
	return cmd
}
