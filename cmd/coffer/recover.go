package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/cofferhq/coffer/cluster"
	"github.com/spf13/cobra"
)

// `coffer operator raft recover`: the way out of a lost quorum. It runs
// on a stopped node's machine against its data directory, never through
// the API (a region without a quorum has no leader to ask).

type recoverFlags struct {
	dataDir, nodeID, peersFile string
	peers                      []string
	dryRun, force              bool
}

func raftRecoverCmd() *cobra.Command {
	var f recoverFlags
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Recover a region that lost its quorum: rewrite a stopped node's Raft configuration",
		Long: `Recover a region whose quorum is lost for good (say two of three servers
destroyed): write the Raft configuration the surviving servers should have to
the data directory of a stopped survivor (raft/peers.json). When that node
starts, it replaces its configuration with this one before Raft starts,
removes the file, and logs it loudly; the survivors then elect a leader among
themselves with everything their logs hold.

Run it on each surviving server's machine, with the server stopped and the
same --data-dir and --node-id it runs with. Without --peer or --peers-file
the new configuration is this node alone (a single survivor). With several
survivors, give every one of them the same list: --peer ID=CLUSTER_ADDR once
per survivor, or --peers-file with a JSON array in raft's peers.json format
([{"id": "n1", "address": "10.0.0.1:8301", "non_voter": false}, ...]).

Refused, with nothing written: when the node is running (its Raft store is
locked), when the directory is not a Coffer node's, when --node-id is not in
the directory's Raft configuration, on malformed or duplicate peers, and,
unless --force, when the cluster port of any other server of the old or the
new configuration answers. Recovering while other servers are alive makes
two regions out of one that each accept writes: stop (or destroy) every
server that is not in the new configuration first.

--dry-run prints the configuration the node has, the one it would write, and
its last log index and term (compare them between survivors: the one with
the highest term, then index, holds the most), and writes nothing.

Never start a server that was left out with its old data directory again:
wipe it and let it join with a new node id.`,
		Example: `  # One survivor (n1) of three; n2 and n3 are gone for good. On n1's machine:
  systemctl stop coffer
  coffer operator raft recover --data-dir /var/lib/coffer --node-id n1 --dry-run
  coffer operator raft recover --data-dir /var/lib/coffer --node-id n1
  systemctl start coffer

  # Two survivors (n1, n4) of five: the same on both machines.
  coffer operator raft recover --data-dir /var/lib/coffer --node-id n1 \
    --peer n1=10.0.0.1:8301 --peer n4=10.0.0.4:8301`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE:    func(cmd *cobra.Command, _ []string) error { return runRecover(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "", "the stopped node's data directory, as given to coffer server (required)")
	fl.StringVar(&f.nodeID, "node-id", "", "the node's id, as given to coffer server (required)")
	fl.StringArrayVar(&f.peers, "peer", nil, "a server of the new configuration as ID=CLUSTER_ADDR; repeat for each (default: this node alone)")
	fl.StringVar(&f.peersFile, "peers-file", "", "JSON file with the new configuration in raft's peers.json format, instead of --peer")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print what would be written and the last log index and term; write nothing")
	fl.BoolVar(&f.force, "force", false, "recover even though other servers' cluster ports answer (two regions may result)")
	return cmd
}

func runRecover(cmd *cobra.Command, f *recoverFlags) error {
	if f.dataDir == "" || f.nodeID == "" {
		return errors.New("--data-dir and --node-id are required")
	}
	if len(f.peers) > 0 && f.peersFile != "" {
		return errors.New("give either --peer or --peers-file, not both")
	}
	st, err := cluster.ReadDataDir(f.dataDir)
	if err != nil {
		return err
	}
	var self *cluster.RecoveryPeer
	for i, p := range st.Configuration {
		if p.ID == f.nodeID {
			self = &st.Configuration[i]
		}
	}
	if self == nil {
		return fmt.Errorf("node %s is not in the Raft configuration of %s (%s): wrong --node-id or --data-dir?",
			f.nodeID, f.dataDir, describePeers(st.Configuration))
	}
	peers, err := recoveryPeers(f, *self)
	if err != nil {
		return err
	}
	if err := cluster.ValidateRecoveryPeers(f.nodeID, peers); err != nil {
		return err
	}
	// Every other server, of the old configuration and the new, must be
	// down: a live one that is left out keeps its own quorum (or gets one
	// back) and the region splits in two; a live one that is listed is
	// running with its old configuration and must be stopped and
	// recovered too.
	if alive := aliveServers(f.nodeID, st.Configuration, peers); len(alive) > 0 && !f.force {
		return fmt.Errorf("refusing to recover: the cluster port of %s answers; stop every other server first "+
			"(or, if those addresses now belong to something else, --force)", strings.Join(alive, ", "))
	}

	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Data directory:        %s\n", f.dataDir)
	fmt.Fprintf(w, "Last log entry:        index %d, term %d (current term %d)\n", st.LastIndex, st.LastTerm, st.CurrentTerm)
	fmt.Fprintf(w, "Configuration now:     %s\n", describePeers(st.Configuration))
	fmt.Fprintf(w, "Configuration after:   %s\n", describePeers(peers))
	raw, _ := json.MarshalIndent(peers, "", "  ")
	if f.dryRun {
		fmt.Fprintf(w, "Dry run: nothing written. Without --dry-run, %s would hold:\n%s\n",
			strings.TrimSuffix(f.dataDir, "/")+"/raft/"+cluster.PeersFile, raw)
		return nil
	}
	path, err := cluster.WritePeersFile(f.dataDir, peers)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Wrote %s:\n%s\nStart the node: it applies the file, removes it, and logs \"RECOVERY\".\n", path, raw)
	return nil
}

// recoveryPeers is the new configuration: --peer, --peers-file, or this
// node alone at the address its configuration has for it.
func recoveryPeers(f *recoverFlags, self cluster.RecoveryPeer) ([]cluster.RecoveryPeer, error) {
	switch {
	case f.peersFile != "":
		raw, err := os.ReadFile(f.peersFile)
		if err != nil {
			return nil, err
		}
		var peers []cluster.RecoveryPeer
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&peers); err != nil {
			return nil, fmt.Errorf("%s: want a JSON array of {\"id\", \"address\", \"non_voter\"}: %w", f.peersFile, err)
		}
		return peers, nil
	case len(f.peers) > 0:
		var peers []cluster.RecoveryPeer
		for _, p := range f.peers {
			id, addr, ok := strings.Cut(p, "=")
			if !ok || id == "" || addr == "" {
				return nil, fmt.Errorf("--peer %q: want ID=CLUSTER_ADDR, e.g. n1=10.0.0.1:8301", p)
			}
			peers = append(peers, cluster.RecoveryPeer{ID: id, Address: addr})
		}
		return peers, nil
	}
	return []cluster.RecoveryPeer{{ID: self.ID, Address: self.Address}}, nil
}

// aliveServers returns the other servers, of either configuration, whose
// cluster port accepts a connection.
func aliveServers(self string, configs ...[]cluster.RecoveryPeer) []string {
	var alive []string
	seen := map[cluster.RecoveryPeer]bool{}
	for _, c := range configs {
		for _, p := range c {
			p.NonVoter = false
			if p.ID == self || seen[p] {
				continue
			}
			seen[p] = true
			if conn, err := net.DialTimeout("tcp", p.Address, 2*time.Second); err == nil {
				conn.Close()
				alive = append(alive, p.ID+" ("+p.Address+")")
			}
		}
	}
	return alive
}

func describePeers(peers []cluster.RecoveryPeer) string {
	if len(peers) == 0 {
		return "none"
	}
	var s []string
	for _, p := range peers {
		d := p.ID + "=" + p.Address
		if p.NonVoter {
			d += " (non-voter)"
		}
		s = append(s, d)
	}
	return strings.Join(s, ", ")
}
