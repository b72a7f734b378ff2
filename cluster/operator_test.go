package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
)

// transfer-leader and remove-peer, asked of a follower: leadership moves
// to the server named, a stopped server is removed and the two left still
// commit; bad input (an unknown id, a non-voter, the last voter) is
// refused with the reason and changes nothing.
func TestOperator_TransferLeaderAndRemovePeer(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	// Every node has finished asking to be a voter (its request, still in
	// flight, would add back a server removed meanwhile).
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range c.nodes {
		for !n.joined.Load() {
			if time.Now().After(deadline) {
				t.Fatalf("%s never joined", n.cfg.NodeID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ctx := context.Background()
	leader := c.waitLeader(10 * time.Second)
	var target, asker *Node
	for _, n := range c.nodes {
		if n != leader {
			if target == nil {
				target = n
			} else {
				asker = n
			}
		}
	}
	got, err := asker.TransferLeader(ctx, target.cfg.NodeID)
	if err != nil || got != target.cfg.NodeID {
		t.Fatalf("transfer to %s: %q, %v", target.cfg.NodeID, got, err)
	}
	if c.waitLeader(10*time.Second) != target {
		t.Fatal("leadership did not move to the server named")
	}
	if _, err := asker.TransferLeader(ctx, "n9"); !apierr.Is(err, apierr.InvalidParameter) {
		t.Fatalf("transfer to an unknown id: %v", err)
	}
	if _, err := asker.RemovePeer(ctx, "n9"); !apierr.Is(err, apierr.InvalidParameter) {
		t.Fatalf("remove an unknown id: %v", err)
	}
	// Any voter will do when none is named.
	if got, err := asker.TransferLeader(ctx, ""); err != nil || got == target.cfg.NodeID {
		t.Fatalf("transfer to any voter: %q, %v", got, err)
	}
	// Stop a follower for good and remove it: two voters, still a quorum.
	leader = c.stableLeader()
	var gone *Node
	for _, n := range c.nodes {
		if n != leader {
			gone = n
			break
		}
	}
	gone.Shutdown()
	if _, err := leader.RemovePeer(ctx, gone.cfg.NodeID); err != nil {
		t.Fatal(err)
	}
	if v := leader.voterCount(); v != 2 {
		t.Fatalf("%d voters after remove-peer of %s, want 2: %+v (leader %s %v)", v, gone.cfg.NodeID, leader.Status().Voters, leader.cfg.NodeID, leader.IsLeader())
	}
	cmd, _ := fsm.Encode(fsm.CmdNoop, &fsm.Noop{})
	if _, _, err := leader.Apply(ctx, cmd); err != nil {
		t.Fatalf("the two left do not commit: %v", err)
	}
	// Down to one voter, which is never removed. (remove-peer is for
	// servers gone for good: a removed server still running would keep
	// calling elections.)
	for _, n := range c.nodes {
		if n != leader && n != gone {
			n.Shutdown()
			if _, err := leader.RemovePeer(ctx, n.cfg.NodeID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := leader.RemovePeer(ctx, leader.cfg.NodeID); !apierr.Is(err, apierr.InvalidParameter) {
		t.Fatalf("removing the last voter: %v", err)
	}
	if _, err := leader.TransferLeader(ctx, ""); !apierr.Is(err, apierr.InvalidParameter) {
		t.Fatalf("transfer with no other voter: %v", err)
	}
	if v := leader.voterCount(); v != 1 || !leader.IsLeader() {
		t.Fatalf("after the refusals: %d voters, leader %v", v, leader.IsLeader())
	}
}

// stableLeader waits for a leader that every running node agrees on.
func (c *testCluster) stableLeader() *Node {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := c.waitLeader(10 * time.Second)
		agreed := true
		for _, n := range c.nodes {
			if _, id := n.raft.LeaderWithID(); n.shutdownCtx.Err() == nil && string(id) != l.cfg.NodeID {
				agreed = false
			}
		}
		if agreed {
			return l
		}
		if time.Now().After(deadline) {
			c.t.Fatal("the nodes do not agree on a leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
