package main

import (
	"fmt"
	"io"
	"time"

	"github.com/cofferhq/coffer/server"

	"github.com/cofferhq/coffer/replication"
	"github.com/spf13/cobra"
)

// The region commands: what a server knows of every region through the
// WAN pool. Calls are signed with the region's root credentials.

func regionCmd() *cobra.Command {
	g := &cobra.Command{
		Use:   "region",
		Short: "Regions as the WAN pool knows them, and replication between them",
		Long: `Regions find each other through the WAN pool: every server of every region
started with --wan-gossip-addr and --wan-join. These commands ask one server
what it knows. They are signed with the region's root credentials
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and scoped to --region or
AWS_REGION.`,
	}
	g.AddCommand(regionListCmd(), regionStatusCmd())
	return g
}

func regionStatusCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show replication to and from the region: lag in changes and seconds, and the RPO",
		Long: `Show, for the region the call is scoped to, every replica region it ships to
and every primary region it receives from.

For a replica region: the index of this region's log up to which it has
applied every replicated change, when it last acknowledged, how many
replicated secrets changed since (PENDING, the lag in changes), and LAG, the
time since the replica region was last known to hold everything: while
changes wait, losing this region now would lose at most the changes of that
time (the RPO); 0 when nothing waits. A replica region that cannot be
reached shows why and since when; changes wait and are shipped when it can.

The figures are read linearizably, on any server of the region. The call is signed with the region's root credentials
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and scoped to --region or
AWS_REGION.`,
		Example: `  coffer region status --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1
  coffer region status --format json`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var out server.ReplicationStatusOut
			if err := c.call(cmd.Context(), "GET", "/v1/replication/status", nil, &out, true); err != nil {
				return err
			}
			return printReplicationStatus(cmd.OutOrStdout(), cf.format, out)
		},
	}
	cf.add(cmd)
	return cmd
}

func printReplicationStatus(w io.Writer, format string, out server.ReplicationStatusOut) error {
	if format == "json" {
		return printJSON(w, out)
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "Region %s\n\n", out.Region)
	if len(out.Replicas) == 0 {
		fmt.Fprintln(tw, "Replicates to no region.")
	} else {
		fmt.Fprintln(tw, "REPLICA REGION\tACKED INDEX\tLAST ACK\tPENDING\tLAG (RPO)\tERROR")
		for _, r := range out.Replicas {
			last := "never"
			if !r.LastAck.IsZero() {
				last = r.LastAck.Format(time.RFC3339)
			}
			errText := "-"
			if r.Error != "" {
				errText = r.Error + " (since " + r.ErrorSince.Format(time.RFC3339) + ")"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\n", r.Region, r.AckedIndex, last, r.Pending,
				(time.Duration(r.LagSeconds * float64(time.Second))).Round(time.Millisecond), errText)
		}
	}
	if len(out.Sources) > 0 {
		fmt.Fprintln(tw, "\nPRIMARY REGION\tAPPLIED INDEX\tLAST APPLIED")
		for _, s := range out.Sources {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", s.Region, s.AppliedIndex, s.LastApplied.Format(time.RFC3339))
		}
	}
	return tw.Flush()
}

func regionListCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every region: its leader, how many servers serve, its replication key's fingerprint",
		Long: `List every region the server knows through the WAN pool: its leader, how
many of its servers are up and how many can serve (unsealed, with a leader),
and the fingerprint of the region's replication public key (the first 16
bytes of its SHA-256), which other regions seal shipped data keys to. Compare
fingerprints out of band before trusting a region. A region whose servers
publish different keys is marked: one of them has not caught up yet, or
something is wrong.

A server started without --wan-gossip-addr knows only its own region.

The call is signed with the region's root credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.`,
		Example: `  coffer region list --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var out struct {
				Regions []replication.Region `json:"regions"`
			}
			if err := c.call(cmd.Context(), "GET", "/v1/regions", nil, &out, true); err != nil {
				return err
			}
			return printRegions(cmd.OutOrStdout(), cf.format, out.Regions)
		},
	}
	cf.add(cmd)
	return cmd
}

func printRegions(w io.Writer, format string, regions []replication.Region) error {
	if format == "json" {
		if regions == nil {
			regions = []replication.Region{}
		}
		return printJSON(w, regions)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "REGION\tLEADER\tSERVING\tKEY FINGERPRINT")
	for _, r := range regions {
		leader := r.Leader
		if leader == "" {
			leader = "(none)"
		}
		fp := r.Fingerprint
		if fp == "" {
			fp = "(no key yet)"
		}
		if r.KeyMismatch {
			fp += " (servers disagree)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\n", r.Name, leader, r.Serving, r.Servers, fp)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return nil
}
