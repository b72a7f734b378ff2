package cluster

import (
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// Status is a node's view of the cluster, for health checks, operators and
// the jepsen harness.
type Status struct {
	NodeID       string    `json:"node_id"`
	Region       string    `json:"region"`
	State        string    `json:"state"` // leader, follower, candidate, shutdown
	LeaderID     string    `json:"leader_id"`
	LeaderAddr   string    `json:"leader_addr"`
	Term         uint64    `json:"term"`
	CommitIndex  uint64    `json:"commit_index"`
	AppliedIndex uint64    `json:"applied_index"`
	LastContact  time.Time `json:"last_contact,omitzero"`
	Voters       []Peer    `json:"voters"`
	// DeadServersRemoved counts the dead servers this node removed from
	// the configuration while it led (deadservers.go).
	DeadServersRemoved uint64 `json:"dead_servers_removed,omitempty"`
}

// Peer is one server of the Raft configuration.
type Peer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
}

// Status reports the node's Raft state. AppliedIndex is the FSM's.
func (n *Node) Status() Status {
	addr, id := n.raft.LeaderWithID()
	st := Status{
		NodeID: n.cfg.NodeID, Region: n.cfg.Region,
		State:    stateName(n.raft.State()),
		LeaderID: string(id), LeaderAddr: string(addr),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.fsm.AppliedIndex(),

		DeadServersRemoved: n.deadRemoved.Load(),
	}
	if st.State == "leader" {
		st.LastContact = time.Now()
	} else {
		st.LastContact = n.raft.LastContact()
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			st.Voters = append(st.Voters, Peer{ID: string(s.ID), Address: string(s.Address), Suffrage: s.Suffrage.String()})
		}
	}
	return st
}

// LastContact is how long ago this node last heard from a leader (zero on
// the leader itself), for X-Coffer-Last-Contact on stale reads.
func (n *Node) LastContact() time.Duration {
	if n.IsLeader() {
		return 0
	}
	lc := n.raft.LastContact()
	if lc.IsZero() {
		return -1
	}
	return time.Since(lc)
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	case raft.Shutdown:
		return "shutdown"
	}
	return strconv.Itoa(int(s))
}
