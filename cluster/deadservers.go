package cluster

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// Dead-server cleanup, Consul Autopilot's idea: a voter that has failed
// (memberlist declared it dead, or no longer knows it, and the leader's
// Raft heartbeats to it fail) for longer than
// DeadServerGrace is removed from the Raft configuration by the leader,
// so that one more loss does not cost the region its quorum: a voter that
// will not return still counts towards the majority Raft needs. MinQuorum
// is the floor: the leader never takes the voters below it, so a small
// region is never shrunk to one that a single further failure stops.
//
// A server that left (SIGTERM) removed itself on its way out and is not
// this code's business. The failure clock lives in the leader session:
// memberlist does not say when a member failed, and a clock kept from an
// earlier term might predate the server's return; so a new leader starts
// counting afresh, which only ever delays a removal.

// noteMemberEvent keeps track of which members left gracefully (as
// opposed to failed); the gossip loop calls it for every event.
func (n *Node) noteMemberEvent(e memberlist.NodeEvent) {
	n.leftMu.Lock()
	defer n.leftMu.Unlock()
	if e.Event == memberlist.NodeLeave && e.Node.State == memberlist.StateLeft {
		n.left[e.Node.Name] = true
	} else {
		delete(n.left, e.Node.Name)
	}
}

func (n *Node) hasLeft(id string) bool {
	n.leftMu.Lock()
	defer n.leftMu.Unlock()
	return n.left[id]
}

// heartbeatFailureWindow is how recent this leader's last failed Raft
// heartbeat to a server must be for it to count as failing: a server that
// does not answer yields one at least every transport timeout (10s, when
// its address drops packets) plus raft's backoff.
const heartbeatFailureWindow = 30 * time.Second

// observeHeartbeats records, on the leader, the last failed Raft heartbeat
// to each server, and forgets it once heartbeats resume.
func (n *Node) observeHeartbeats() {
	ch := make(chan raft.Observation, 64)
	n.raft.RegisterObserver(raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	}))
	go func() {
		for {
			select {
			case o := <-ch:
				n.hbMu.Lock()
				switch d := o.Data.(type) {
				case raft.FailedHeartbeatObservation:
					n.hbFailed[d.PeerID] = time.Now()
				case raft.ResumedHeartbeatObservation:
					delete(n.hbFailed, d.PeerID)
				}
				n.hbMu.Unlock()
			case <-n.shutdownCtx.Done():
				return
			}
		}
	}()
}

func (n *Node) heartbeatsFailing(id raft.ServerID, now time.Time) bool {
	n.hbMu.Lock()
	defer n.hbMu.Unlock()
	t, ok := n.hbFailed[id]
	return ok && now.Sub(t) < heartbeatFailureWindow
}

// removeDeadServers runs in the leader session until it ends.
func (n *Node) removeDeadServers(ctx context.Context) {
	grace := n.cfg.DeadServerGrace
	if grace <= 0 {
		return
	}
	// A few looks per grace period, so a removal comes at most a quarter
	// of the grace late.
	tick := time.NewTicker(min(max(grace/4, 50*time.Millisecond), 10*time.Second))
	defer tick.Stop()
	failedSince := map[raft.ServerID]time.Time{}
	held := map[raft.ServerID]bool{} // logged as kept for min-quorum
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if !n.removeDeadOnce(ctx, now, failedSince, held) {
				return
			}
		}
	}
}

// removeDeadOnce looks at the configuration once; false means this node
// no longer leads.
func (n *Node) removeDeadOnce(ctx context.Context, now time.Time, failedSince map[raft.ServerID]time.Time, held map[raft.ServerID]bool) bool {
	if !n.IsLeader() {
		return false
	}
	cfg, err := n.configuration()
	if err != nil {
		return true
	}
	alive := map[raft.ServerID]bool{}
	for _, m := range n.members() {
		alive[raft.ServerID(m.ID)] = true
	}
	voters := 0
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	servers := slices.Clone(cfg.Servers)
	slices.SortFunc(servers, func(a, b raft.Server) int { return cmp.Compare(a.ID, b.ID) })
	for _, s := range servers {
		if s.ID == raft.ServerID(n.cfg.NodeID) || s.Suffrage != raft.Voter {
			continue
		}
		// Failed means failed to gossip and to Raft both: gossip alone
		// may be cut (UDP blocked, say) from a voter that still replicates.
		if alive[s.ID] || n.hasLeft(string(s.ID)) || !n.heartbeatsFailing(s.ID, now) {
			delete(failedSince, s.ID)
			delete(held, s.ID)
			continue
		}
		since, ok := failedSince[s.ID]
		if !ok {
			failedSince[s.ID] = now
			n.logger.Warn("voter failed; it will be removed if it stays failed", "id", s.ID, "address", s.Address,
				"grace", n.cfg.DeadServerGrace, "min_quorum", n.cfg.MinQuorum)
			continue
		}
		if now.Sub(since) < n.cfg.DeadServerGrace {
			continue
		}
		if voters-1 < max(n.cfg.MinQuorum, 1) {
			if !held[s.ID] {
				held[s.ID] = true
				n.logger.Warn("dead server kept: removing it would take the voters below min-quorum",
					"id", s.ID, "failed_for", now.Sub(since).Round(time.Second), "voters", voters, "min_quorum", n.cfg.MinQuorum)
			}
			continue
		}
		n.logger.Warn("removing dead server from the Raft configuration", "id", s.ID, "address", s.Address,
			"failed_for", now.Sub(since).Round(time.Second), "voters_after", voters-1)
		if err := n.await(n.raft.RemoveServer(s.ID, 0, n.cfg.RequestTimeout)); err != nil {
			n.logger.Warn("removing dead server failed", "id", s.ID, "error", err)
			return ctx.Err() == nil
		}
		voters--
		delete(failedSince, s.ID)
		n.deadRemoved.Add(1)
	}
	return true
}

// DeadServersRemoved is how many dead servers this node removed while it
// led.
func (n *Node) DeadServersRemoved() uint64 { return n.deadRemoved.Load() }
