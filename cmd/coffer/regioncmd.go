package main

import (
	"fmt"
	"io"

	"github.com/cofferhq/coffer/replication"
	"github.com/spf13/cobra"
)

// The region commands: what a server knows of every region through the
// WAN pool. Calls are signed with the region's root credentials.

func regionCmd() *cobra.Command {
	g := &cobra.Command{
		Use:   "region",
		Short: "Regions as the WAN pool knows them",
		Long: `Regions find each other through the WAN pool: every server of every region
started with --wan-gossip-addr and --wan-join. These commands ask one server
what it knows. They are signed with the region's root credentials
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and scoped to --region or
AWS_REGION.`,
	}
	g.AddCommand(regionListCmd())
	return g
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
