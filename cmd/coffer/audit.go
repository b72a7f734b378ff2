package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cofferhq/coffer/audit"
	"github.com/spf13/cobra"
)

func auditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check and read a node's audit log",
		Long: `Every Coffer server records each AWS API request and each signed operator call
in its audit log before answering it: JSON lines in the shape of CloudTrail
records, in segment files audit-00000001.log, audit-00000002.log, ... in the
node's audit directory (coffer server --audit-dir, default <data-dir>/audit).
Records are hash-chained: each carries the SHA-256 of the line before it, so a
changed, removed or reordered record breaks the chain. No record ever holds a
secret value, a random password or a rotation token (docs/audit.md).

These commands read the local files of one node; run them on the node (each
node keeps the log of the requests it served). DIR defaults to
<--data-dir>/audit, and --data-dir to ./data (or COFFER_DATA_DIR, as for
coffer server).`,
	}
	cmd.AddCommand(auditVerifyCmd(), auditTailCmd())
	return cmd
}

// auditDir is DIR, or <data-dir>/audit.
func auditDir(args []string, dataDir string) string {
	if len(args) > 0 {
		return args[0]
	}
	return filepath.Join(dataDir, "audit")
}

func auditVerifyCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "verify [DIR]",
		Short: "Check the hash chain of an audit log",
		Long: `Check every segment of the audit log in DIR in order: no segment missing
between the first and the last, every line a record, sequence numbers that
follow each other, and each record's previousHash equal to the SHA-256 of the
line before it. Prints the records and segments checked and the last record's
hash (keep it elsewhere to prove later that nothing up to it changed).

Exits 1 naming the first broken record: its file, line, sequence and what is
wrong (hash mismatch, sequence gap, unparsable line, missing segment). A
changed record shows as a hash mismatch on the record after it.

A torn last line (a crash during a write) is reported but is not a break: that
record was never acknowledged, and the server sets it aside in
<segment>.torn when it next starts. When the first segments were removed (old
segments archived), the chain is checked from the first record present and
the output says so.`,
		Example: `  coffer audit verify /var/lib/coffer/audit
  coffer audit verify --data-dir /var/lib/coffer`,
		Args:    cobra.MaximumNArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAuditVerify(cmd.OutOrStdout(), auditDir(args, dataDir))
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./data", "the node's data directory, whose audit/ is read when DIR is not given")
	return cmd
}

func runAuditVerify(out io.Writer, dir string) error {
	rep, err := audit.Verify(dir)
	if err != nil && !audit.IsBroken(err) {
		return err
	}
	if rep.FirstSegment > 1 {
		fmt.Fprintf(out, "Note: the log starts at segment %d (earlier segments are absent); the chain is checked from sequence %d.\n",
			rep.FirstSegment, rep.FirstSequence)
	}
	if rep.Torn != nil {
		fmt.Fprintf(out, "Note: %s line %d is torn (%d bytes without a newline, a crash during a write); the server sets it aside at its next start.\n",
			rep.Torn.File, rep.Torn.Line, rep.Torn.Bytes)
	}
	if err != nil {
		fmt.Fprintf(out, "BROKEN after %d records in %d segments of %s.\n", rep.Records, rep.Segments, dir)
		return fmt.Errorf("the audit chain is broken at %v", err)
	}
	fmt.Fprintf(out, "OK: %d records in %d segments of %s; the chain holds.\n", rep.Records, rep.Segments, dir)
	if rep.Records > 0 {
		fmt.Fprintf(out, "Sequences %d to %d; last record's hash %s\n", rep.FirstSequence, rep.LastSequence, rep.LastHash)
	}
	return nil
}

func auditTailCmd() *cobra.Command {
	var dataDir, format string
	var follow bool
	var n int
	var f audit.Filter
	cmd := &cobra.Command{
		Use:   "tail [DIR]",
		Short: "Print the last records of an audit log, optionally filtered and followed",
		Long: `Print the last N records of the audit log in DIR (all of them with -n 0), in
order, as a table or as the JSON lines themselves. With -f, keep printing
new records as the server writes them (across segment files) until
interrupted.

Filters (all given must match):
  --identity X   the caller's access key id, user ARN or user name
  --operation Y  the eventName: an API operation (GetSecretValue), a service
                 event (RotationFailed) or an operator route (POST /v1/keys)
  --secret Z     a substring of the secret's ARN, or of the SecretId or Name
                 the request gave (a refused request names no ARN)

Lines that do not parse are skipped (coffer audit verify reports them).`,
		Example: `  coffer audit tail /var/lib/coffer/audit -n 20
  coffer audit tail --data-dir /var/lib/coffer -f --operation GetSecretValue --secret prod/db
  coffer audit tail /var/lib/coffer/audit --identity AKIAIOSFODNN7EXAMPLE --format json -n 0`,
		Args:    cobra.MaximumNArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format must be table or json, got %q", format)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runAuditTail(ctx, cmd.OutOrStdout(), auditDir(args, dataDir), f, follow, n, format)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dataDir, "data-dir", "./data", "the node's data directory, whose audit/ is read when DIR is not given")
	fl.BoolVarP(&follow, "follow", "f", false, "keep printing new records until interrupted")
	fl.IntVarP(&n, "lines", "n", 10, "print the last N matching records (0: all)")
	fl.StringVar(&f.Identity, "identity", "", "only records of this access key id, user ARN or user name")
	fl.StringVar(&f.Operation, "operation", "", "only records of this eventName (e.g. GetSecretValue)")
	fl.StringVar(&f.Secret, "secret", "", "only records whose secret ARN, SecretId or Name contains this")
	fl.StringVar(&format, "format", "table", "output: table, or json (one record per line)")
	return cmd
}

func runAuditTail(ctx context.Context, out io.Writer, dir string, f audit.Filter, follow bool, n int, format string) error {
	if n < 0 {
		return errors.New("-n must be 0 (all) or more")
	}
	if format == "table" {
		fmt.Fprintf(out, "%-20s  %8s  %-24s  %-22s  %-15s  %-28s  %s\n", "TIME", "SEQUENCE", "EVENT", "IDENTITY", "SOURCE IP", "ERROR", "SECRET")
	}
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	if ctx == nil {
		ctx = context.Background()
	}
	return audit.Tail(ctx, dir, f, follow, n, func(r audit.Record) error {
		if format == "json" {
			return enc.Encode(r)
		}
		id := r.UserIdentity.UserName
		switch {
		case r.UserIdentity.InvokedBy != "":
			id = r.UserIdentity.InvokedBy
		case r.UserIdentity.Type == "Root":
			id = "root " + r.UserIdentity.AccessKeyID
		case id == "":
			id = r.UserIdentity.AccessKeyID
		}
		secret := ""
		if len(r.Resources) > 0 {
			secret = r.Resources[0].ARN
		}
		_, err := fmt.Fprintf(out, "%-20s  %8d  %-24s  %-22s  %-15s  %-28s  %s\n", r.EventTime, r.Sequence, r.EventName, id,
			r.SourceIPAddress, strings.TrimSpace(r.ErrorCode), secret)
		return err
	})
}
