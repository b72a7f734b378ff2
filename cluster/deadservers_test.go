package cluster

import (
	"slices"
	"testing"
	"time"
)

const testDeadGrace = time.Second

func deadServerTuning(cfg *Config) {
	cfg.DeadServerGrace, cfg.MinQuorum = testDeadGrace, 3
}

// voterIDs is the leader's view of the voters.
func voterIDs(c *testCluster) []string {
	var ids []string
	for _, p := range c.waitLeader(20 * time.Second).Status().Voters {
		if p.Suffrage == "Voter" {
			ids = append(ids, p.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// waitFailedThenGraces waits until the leader's gossip pool no longer
// counts id as alive, then for several graces: long enough for a removal
// to have happened, had it been allowed.
func waitFailedThenGraces(t *testing.T, c *testCluster, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for slices.ContainsFunc(c.waitLeader(20*time.Second).members(), func(m memberMeta) bool { return m.ID == id }) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still alive in the leader's gossip pool after 30s", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(5 * testDeadGrace)
}

// In a four-node region, a follower whose gossip alone fails stays a
// voter: it still answers Raft. Once it stops (without leaving) it is
// removed by the leader after the grace, and counted. A second failure is
// not: three voters is the min-quorum.
func TestDeadServers_RemovedAfterGraceDownToMinQuorum(t *testing.T) {
	c := newTestCluster(t, 4, deadServerTuning)
	deadline := time.Now().Add(20 * time.Second)
	for len(voterIDs(c)) != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("voters %v, want four", voterIDs(c))
		}
		time.Sleep(50 * time.Millisecond)
	}
	victim := c.follower()
	if err := victim.gossip.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFailedThenGraces(t, c, victim.ID())
	if !slices.Contains(voterIDs(c), victim.ID()) {
		t.Fatalf("%s removed while it still answered Raft: %v", victim.ID(), voterIDs(c))
	}
	stoppedAt := time.Now()
	victim.Shutdown()
	deadline = time.Now().Add(30 * time.Second)
	for slices.Contains(voterIDs(c), victim.ID()) {
		if time.Now().After(deadline) {
			t.Fatalf("dead %s still a voter after 30s: %v", victim.ID(), voterIDs(c))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if took := time.Since(stoppedAt); took < testDeadGrace {
		t.Fatalf("%s removed %s after it stopped, before the grace of %s", victim.ID(), took, testDeadGrace)
	}
	// The configuration shows the removal once its entry is appended; the
	// leader counts it once the entry commits, a moment later.
	removed := func() (n uint64) {
		for _, nd := range c.nodes {
			n += nd.DeadServersRemoved()
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); removed() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := removed(); got != 1 {
		t.Fatalf("dead servers removed: %d, want 1", got)
	}

	// Three voters left, min-quorum 3: the next failure is kept.
	second := c.follower()
	second.Shutdown()
	waitFailedThenGraces(t, c, second.ID())
	if got := voterIDs(c); len(got) != 3 || !slices.Contains(got, second.ID()) {
		t.Fatalf("voters %v: the second dead server %s must stay (min-quorum 3)", got, second.ID())
	}
}

// Three nodes, min-quorum 3: a dead follower is never removed, and the
// two others keep committing.
func TestDeadServers_NeverBelowMinQuorum(t *testing.T) {
	c := newTestCluster(t, 3, deadServerTuning)
	victim := c.follower()
	victim.Shutdown()
	waitFailedThenGraces(t, c, victim.ID())
	if got := voterIDs(c); len(got) != 3 {
		t.Fatalf("voters %v after a failure with min-quorum 3, want all three", got)
	}
	for _, n := range c.nodes {
		if n.DeadServersRemoved() != 0 {
			t.Fatalf("%s removed a dead server", n.ID())
		}
	}
}
