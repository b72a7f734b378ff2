package main

import (
	"fmt"
	"io"

	"github.com/cofferhq/coffer/cluster"
	"github.com/spf13/cobra"
)

// `coffer operator raft …`: the region's Raft configuration, as Consul's
// operators know it. Every call is signed with the region's root
// credentials and may go to any node, which sends changes to the leader.

const raftSigning = `The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION; any node takes
it.`

func raftCmd() *cobra.Command {
	g := &cobra.Command{
		Use:   "raft",
		Short: "The region's Raft configuration: list peers, remove one, transfer leadership, recover a lost quorum",
	}
	g.AddCommand(raftListPeersCmd(), raftRemovePeerCmd(), raftTransferLeaderCmd(), raftRecoverCmd())
	return g
}

func raftListPeersCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "list-peers",
		Short: "List the servers of the region's Raft configuration and which one leads",
		Long: `List the servers of the region's Raft configuration as the node asked sees it:
each server's id, cluster address, whether it leads, and whether it votes.

` + raftSigning,
		Example: `  coffer operator raft list-peers --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var st cluster.Status
			if err := c.call(cmd.Context(), "GET", "/v1/cluster/status", nil, &st, true); err != nil {
				return err
			}
			return printPeers(cmd.OutOrStdout(), cf.format, st)
		},
	}
	cf.add(cmd)
	return cmd
}

// peerRow is one server as list-peers prints it.
type peerRow struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	State   string `json:"state"`
	Voter   bool   `json:"voter"`
}

func printPeers(w io.Writer, format string, st cluster.Status) error {
	rows := []peerRow{}
	for _, p := range st.Voters {
		state := "follower"
		if p.ID == st.LeaderID {
			state = "leader"
		}
		rows = append(rows, peerRow{ID: p.ID, Address: p.Address, State: state, Voter: p.Suffrage == "Voter"})
	}
	if format == "json" {
		return printJSON(w, rows)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NODE\tADDRESS\tSTATE\tVOTER")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\n", r.ID, r.Address, r.State, r.Voter)
	}
	return tw.Flush()
}

func raftRemovePeerCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "remove-peer ID",
		Short: "Remove a server that is gone for good from the Raft configuration",
		Long: `Remove server ID from the region's Raft configuration, so the quorum no longer
counts it. Use it for a server that is gone for good (its machine lost) and
did not leave gracefully; a server that stops with SIGTERM removes itself.
A server still running may ask to be added back when it restarts. The last
voter cannot be removed, and an unknown id is refused; nothing changes then.

` + raftSigning,
		Example: `  coffer operator raft remove-peer n3 --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1`,
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var out struct {
				Removed string `json:"removed"`
				Index   uint64 `json:"index"`
			}
			if err := c.call(cmd.Context(), "POST", "/v1/operator/raft/remove-peer", map[string]string{"id": args[0]}, &out, true); err != nil {
				return err
			}
			if cf.format == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed peer %s from the Raft configuration (index %d).\n", out.Removed, out.Index)
			return nil
		},
	}
	cf.add(cmd)
	return cmd
}

func raftTransferLeaderCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "transfer-leader [ID]",
		Short: "Hand the region's leadership to server ID, or to any other voter",
		Long: `Hand the region's leadership to server ID (a voter), or, without an ID, to
the most up-to-date other voter: before maintenance of the leader's machine,
say. The answer names the new leader once the node asked sees it. An unknown
id, a server that does not vote, or a region with no other voter is refused.

` + raftSigning,
		Example: `  coffer operator raft transfer-leader n2 --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1`,
		Args:    cobra.MaximumNArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			var out struct {
				Leader string `json:"leader"`
			}
			if err := c.call(cmd.Context(), "POST", "/v1/operator/raft/transfer-leader", map[string]string{"id": id}, &out, true); err != nil {
				return err
			}
			if cf.format == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Leadership transferred; the leader is %s.\n", out.Leader)
			return nil
		},
	}
	cf.add(cmd)
	return cmd
}
