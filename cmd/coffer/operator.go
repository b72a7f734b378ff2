package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/cofferhq/coffer/crypto"
	"github.com/spf13/cobra"
)

func operatorCmd() *cobra.Command {
	op := &cobra.Command{Use: "operator", Short: "Operator commands: root keys, TLS material, sealing, the Raft configuration, snapshots"}
	rk := &cobra.Command{Use: "root-key", Short: "Manage root keys"}
	var out string
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Write a new random root key (32 bytes, base64) to a file with mode 0600",
		Long: `Write a new random root key to --out. Every node of a region needs the same
root key file (--root-key-file). Coffer never writes the root key anywhere
else; keep the file on an encrypted disk or a secrets volume. The command
refuses to overwrite an existing file.`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			k := crypto.RandomKey()
			defer crypto.Zero(k)
			if _, err := f.Write(crypto.EncodeRootKey(k)); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "root key written to %s\n", out)
			return nil
		},
	}
	gen.Flags().StringVar(&out, "out", "", "file to create (required)")
	rk.AddCommand(gen)
	op.AddCommand(rk, tlsCmd(), gossipCmd(), raftCmd(), snapshotCmd())
	op.AddCommand(sealCmds()...)
	return op
}

func gossipCmd() *cobra.Command {
	g := &cobra.Command{Use: "gossip", Short: "Manage the gossip encryption key"}
	g.AddCommand(&cobra.Command{
		Use:   "keygen",
		Short: "Print a new random gossip encryption key (32 bytes, base64)",
		Long: `Print a new gossip key: 32 random bytes, base64, as Consul's 'consul keygen'
does. Write it to a file (mode 0600) on every node of the region and pass it
with --gossip-key-file: memberlist then encrypts and authenticates every
gossip message with AES-256-GCM and drops the ones that are not.`,
		Example: `  coffer operator gossip keygen > /etc/coffer/gossip.key && chmod 600 /etc/coffer/gossip.key`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k := crypto.RandomKey()
			defer crypto.Zero(k)
			_, err := cmd.OutOrStdout().Write(crypto.EncodeRootKey(k))
			return err
		},
	})
	return g
}
