package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/cofferhq/coffer/crypto"
	"github.com/spf13/cobra"
)

func operatorCmd() *cobra.Command {
	op := &cobra.Command{Use: "operator", Short: "Operator commands (today: generating a root key)"}
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
	op.AddCommand(rk)
	return op
}
