package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cofferhq/coffer/fsm"
	"github.com/spf13/cobra"
)

// `coffer operator snapshot save | inspect | restore`: the region's state
// in a file that stays encrypted (values, data keys and the keyring only
// as ciphertext), with a header that records where it comes from and a
// checksum; and that state put back on every server of the region.

func snapshotCmd() *cobra.Command {
	g := &cobra.Command{
		Use:   "snapshot",
		Short: "Save the region's state to an encrypted snapshot file, inspect one, or restore one",
	}
	g.AddCommand(snapshotSaveCmd(), snapshotInspectCmd(), snapshotRestoreCmd())
	return g
}

func snapshotSaveCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Save a snapshot of the region's state, as the node asked has applied it, to FILE",
		Long: `Save a snapshot of the region's state to FILE (created with mode 0600; an
existing file is not overwritten). Any node will do: it first catches up with
every write acknowledged before the call, then snapshots its state at the
index it has applied, which the header records with the region, account,
node, term, size and SHA-256 of the state.

The file stays encrypted: secret values and their data keys are in it only
as ciphertext, and the keyring only sealed under the region's root key, so
the file alone reveals names, tags and dates, never a value. Keep the root
key (or enough unseal shares) to make use of it.

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.`,
		Example: `  coffer operator snapshot save backup.snap --endpoint https://10.0.0.2:8201 --ca-file coffer-ca.pem --region us-east-1`,
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			c.http.Timeout = 0 // a large state takes as long as it takes
			path := args[0]
			tmp := path + ".partial"
			f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			defer os.Remove(tmp)
			err = c.download(cmd.Context(), "/v1/operator/snapshot", f, true)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			hdr, info, err := inspectFile(tmp)
			if err != nil {
				return fmt.Errorf("the snapshot received does not check out: %w", err)
			}
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s already exists; not overwriting it", path)
			}
			if err := os.Rename(tmp, path); err != nil {
				return err
			}
			return printSnapshot(cmd.OutOrStdout(), cf.format, path, hdr, info)
		},
	}
	cf.add(cmd)
	return cmd
}

func snapshotInspectCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Check a snapshot file and show where it comes from and what it holds",
		Long: `Check a snapshot file without a server: its header, its size and checksum,
and that every record of the state decodes; then show the region, account,
node, index and term it was taken at, and how many secrets, versions, access
keys, keys and aliases it holds. A truncated, damaged or foreign file is an
error that says which.`,
		Example: `  coffer operator snapshot inspect backup.snap`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format must be table or json, got %q", format)
			}
			hdr, info, err := inspectFile(args[0])
			if err != nil {
				return err
			}
			return printSnapshot(cmd.OutOrStdout(), format, args[0], hdr, info)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func snapshotRestoreCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the region's state, on every server, with a snapshot file's",
		Long: `Replace the whole state of the region with the one saved in FILE: every
secret, version, tag, policy, access key and key goes back to what it was
when the snapshot was saved, and whatever was written since is gone, on
every server of the region. Any node will do; it sends the snapshot to the
leader, and the call returns once a quorum serves the restored state.

FILE is checked here first, as inspect does (header, size, checksum, every
record), then streamed to the node, signed with its SHA-256. The node
checks it again before it changes anything and refuses, with the reason, a
file that is truncated or damaged, of another region or account, or whose
keyring this region's root key does not open (saved before a rekey, or by
another initialization of the region).

Writes that land while it runs are overwritten or fail: stop the writers
first. Replica regions are not re-synced: after the restore, check them with
` + "`coffer region status`" + ` (docs/operations.md, "Snapshots", says what to
do).

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.`,
		Example: `  coffer operator snapshot inspect backup.snap
  coffer operator snapshot restore backup.snap --endpoint https://10.0.0.2:8201 --ca-file coffer-ca.pem --region us-east-1`,
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			path := args[0]
			if _, _, err := inspectFile(path); err != nil {
				return fmt.Errorf("not restoring: %w", err)
			}
			c.http.Timeout = 0 // a large state takes as long as it takes
			var out struct {
				Header fsm.SnapshotFileHeader `json:"header"`
				State  fsm.SnapshotInfo       `json:"state"`
				Index  uint64                 `json:"index"`
			}
			if err := c.upload(cmd.Context(), "/v1/operator/snapshot", path, &out); err != nil {
				return err
			}
			if cf.format == "json" {
				return printJSON(cmd.OutOrStdout(), struct {
					File   string                 `json:"file"`
					Header fsm.SnapshotFileHeader `json:"header"`
					State  fsm.SnapshotInfo       `json:"state"`
					Index  uint64                 `json:"restored_at_index"`
				}{path, out.Header, out.State, out.Index})
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintf(tw, "Restored\t%s\n", path)
			fmt.Fprintf(tw, "Region\t%s\n", out.Header.Region)
			fmt.Fprintf(tw, "Saved on\t%s at index %d, %s\n", out.Header.Node, out.Header.Index, out.Header.Created)
			fmt.Fprintf(tw, "Secrets\t%d\n", out.State.Records["secrets"])
			fmt.Fprintf(tw, "Versions\t%d\n", out.State.Versions)
			fmt.Fprintf(tw, "Access keys\t%d\n", out.State.Records["access_keys"])
			fmt.Fprintf(tw, "Keys\t%d\n", out.State.Records["keys"])
			fmt.Fprintf(tw, "Aliases\t%d\n", out.State.Records["aliases"])
			fmt.Fprintf(tw, "Serving from\tindex %d, on every server\n", out.Index)
			return tw.Flush()
		},
	}
	cf.add(cmd)
	return cmd
}

// inspectFile reads and checks a snapshot file.
func inspectFile(path string) (fsm.SnapshotFileHeader, fsm.SnapshotInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return fsm.SnapshotFileHeader{}, fsm.SnapshotInfo{}, err
	}
	defer f.Close()
	hdr, body, err := fsm.ReadSnapshotFile(f)
	if err != nil {
		return hdr, fsm.SnapshotInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	info, err := fsm.InspectSnapshot(bytes.NewReader(body))
	if err != nil {
		return hdr, info, fmt.Errorf("%s: %w", path, err)
	}
	if info.Region != hdr.Region || info.AccountID != hdr.AccountID || info.Index != hdr.Index {
		return hdr, info, errors.New(path + ": the header does not describe the state it carries")
	}
	return hdr, info, nil
}

func printSnapshot(w io.Writer, format, path string, hdr fsm.SnapshotFileHeader, info fsm.SnapshotInfo) error {
	if format == "json" {
		return printJSON(w, struct {
			File   string                 `json:"file"`
			Header fsm.SnapshotFileHeader `json:"header"`
			State  fsm.SnapshotInfo       `json:"state"`
		}{path, hdr, info})
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "File\t%s\n", path)
	fmt.Fprintf(tw, "Region\t%s\n", hdr.Region)
	fmt.Fprintf(tw, "Account\t%s\n", hdr.AccountID)
	fmt.Fprintf(tw, "Node\t%s\n", hdr.Node)
	fmt.Fprintf(tw, "Index\t%d\n", hdr.Index)
	fmt.Fprintf(tw, "Term\t%d\n", hdr.Term)
	fmt.Fprintf(tw, "Created\t%s\n", hdr.Created)
	fmt.Fprintf(tw, "Size\t%d bytes\n", hdr.Size)
	fmt.Fprintf(tw, "SHA-256\t%s\n", hdr.SHA256)
	fmt.Fprintf(tw, "Secrets\t%d\n", info.Records["secrets"])
	fmt.Fprintf(tw, "Versions\t%d\n", info.Versions)
	fmt.Fprintf(tw, "Access keys\t%d\n", info.Records["access_keys"])
	fmt.Fprintf(tw, "Keys\t%d (records: customer keys, and the default key once rotated)\n", info.Records["keys"])
	fmt.Fprintf(tw, "Aliases\t%d\n", info.Records["aliases"])
	fmt.Fprintf(tw, "Encrypted\tvalues, data keys and keyring as ciphertext only\n")
	return tw.Flush()
}
