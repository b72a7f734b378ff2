package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/tlsutil/tlstest"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// An in-process region for cluster's own tests: real nodes on loopback
// (Raft, internal RPC and gossip over TCP/UDP), in-memory stores, no HTTP.

type testCluster struct {
	t     *testing.T
	nodes []*Node
	tune  func(*Config)
	log   *testWriter
}

func newTestCluster(t *testing.T, n int, tune func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, tune: tune, log: &testWriter{t: t}}
	// Cleanups run last first: the log stops after the nodes have, and
	// before the test ends (a raft goroutine may still log then).
	t.Cleanup(c.log.stop)
	t.Cleanup(c.shutdown)
	for range n {
		c.add(n)
	}
	c.waitLeader(10 * time.Second)
	return c
}

// add starts one more node that joins the others' gossip pool; expect is
// its bootstrap-expect (0: join a running region).
func (c *testCluster) add(expect int) *Node {
	c.t.Helper()
	cfg := DefaultConfig()
	cfg.NodeID, cfg.Region = fmt.Sprintf("n%d", len(c.nodes)+1), "us-east-1"
	cfg.ClusterAddr, cfg.GossipAddr, cfg.GossipLocal = "127.0.0.1:0", "127.0.0.1:0", true
	cfg.BootstrapExpect = expect
	cfg.RequestTimeout = 5 * time.Second
	// As a server runs: mutual TLS on the cluster port, encrypted gossip.
	cfg.TLS = tlstest.Shared().Node(c.t, cfg.NodeID, cfg.Region)
	cfg.GossipKey = testGossipKey
	for _, o := range c.nodes {
		cfg.Join = append(cfg.Join, o.GossipAddr())
	}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: cfg.NodeID, Level: hclog.Warn, Output: c.log})
	if c.tune != nil {
		c.tune(&cfg)
	}
	n, err := New(cfg, fsm.New(nil))
	if err != nil {
		c.t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	c.nodes = append(c.nodes, n)
	return n
}

func (c *testCluster) shutdown() {
	for _, n := range c.nodes {
		n.Shutdown()
	}
}

// leader waits for exactly one running node to lead with its Noop
// committed (ready to serve reads), and returns it.
func (c *testCluster) waitLeader(timeout time.Duration) *Node {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var leaders []*Node
		for _, n := range c.nodes {
			if n.shutdownCtx.Err() == nil && n.IsLeader() && n.readyTerm.Load() == n.raft.CurrentTerm() {
				leaders = append(leaders, n)
			}
		}
		if len(leaders) == 1 {
			return leaders[0]
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no single ready leader after %v (%d leaders)", timeout, len(leaders))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *testCluster) follower() *Node {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.shutdownCtx.Err() == nil && !n.IsLeader() {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// testWriter sends node logs to the test log until stop: testing panics
// on a log line after the test has completed.
type testWriter struct {
	mu      sync.Mutex
	t       *testing.T
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

func encode(t *testing.T, ct fsm.CommandType, cmd any) []byte {
	t.Helper()
	buf, err := fsm.Encode(ct, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

func ctxTest(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Three nodes bootstrap with bootstrap-expect, elect one leader, and elect
// another when it dies; the survivors keep serving.
func TestCluster_ElectionAndFailover(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	first := c.waitLeader(10 * time.Second)
	term := first.raft.CurrentTerm()
	for _, n := range c.nodes {
		if got := len(n.Status().Voters); got != 3 {
			t.Fatalf("%s sees %d voters", n.ID(), got)
		}
	}
	first.Shutdown()
	second := c.waitLeader(15 * time.Second)
	if second == first || second.raft.CurrentTerm() <= term {
		t.Fatalf("new leader %s in term %d after %s in term %d", second.ID(), second.raft.CurrentTerm(), first.ID(), term)
	}
	if _, _, err := second.Apply(ctxTest(t), encode(t, fsm.CmdNoop, &fsm.Noop{})); err != nil {
		t.Fatalf("write after failover: %v", err)
	}
}

// A follower forwards writes to the leader: results and AWS-typed errors
// come back unchanged, with the index they applied at.
func TestCluster_ForwardingKeepsTypedErrors(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	f := c.follower()
	ctx := ctxTest(t)
	res, index, err := f.Apply(ctx, encode(t, fsm.CmdNoop, &fsm.Noop{}))
	if err != nil || res == nil || index == 0 {
		t.Fatalf("forwarded Noop: %v %d %v", res, index, err)
	}
	// A write Apply refuses: a value for a secret that does not exist.
	_, _, err = f.Apply(ctx, encode(t, fsm.CmdPutSecretValue, &fsm.PutSecretValue{ARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:none-abcdef",
		Version: fsm.NewVersion{VersionID: "v1"}}))
	if e, ok := apierr.As(err); !ok || e.Code != apierr.ResourceNotFound {
		t.Fatalf("forwarded refusal: %v", err)
	}
}

// A read index taken on a follower covers every write acknowledged
// before it, on any node: the follower's state has applied it when
// ReadIndex returns.
func TestCluster_ReadIndexCoversAcknowledgedWrites(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	ctx := ctxTest(t)
	for i := range 20 {
		_, index, err := leader.Apply(ctx, encode(t, fsm.CmdNoop, &fsm.Noop{}))
		if err != nil {
			t.Fatal(err)
		}
		f := c.nodes[i%len(c.nodes)]
		got, err := f.ReadIndex(ctx)
		if err != nil {
			t.Fatalf("%s read index: %v", f.ID(), err)
		}
		if got < index || f.fsm.AppliedIndex() < index {
			t.Fatalf("%s: read index %d, applied %d, after a write at %d", f.ID(), got, f.fsm.AppliedIndex(), index)
		}
	}
}

// A node started with --join and no bootstrap-expect becomes a voter; one
// that leaves gracefully is removed, so the quorum shrinks with it.
func TestCluster_JoinAndLeave(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	fourth := c.add(0)
	voters := func() int {
		return len(c.waitLeader(10 * time.Second).Status().Voters)
	}
	deadline := time.Now().Add(15 * time.Second)
	for voters() != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("the joining node did not become a voter: %d voters", voters())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := fourth.Leave(5 * time.Second); err != nil {
		t.Fatalf("leave: %v", err)
	}
	fourth.Shutdown()
	for _, s := range c.waitLeader(10 * time.Second).Status().Voters {
		if s.ID == fourth.ID() {
			t.Fatalf("%s still a voter after leaving", s.ID)
		}
	}
}

// The fenced leader loop: on a node, one term's leader work has returned
// before the next term's starts, even when it takes a while to notice
// that its context ended. Leadership is moved away from a node and back
// quickly while that node's previous work is still winding down.
func TestCluster_LeaderWorkOfTwoTermsNeverOverlaps(t *testing.T) {
	type tracker struct {
		mu      sync.Mutex
		running int
		overlap bool
		starts  int
	}
	trackers := map[string]*tracker{}
	var mu sync.Mutex
	const windDown = 1500 * time.Millisecond
	c := newTestCluster(t, 3, func(cfg *Config) {
		tr := &tracker{}
		mu.Lock()
		trackers[cfg.NodeID] = tr
		mu.Unlock()
		cfg.OnLeader = func(ctx context.Context) {
			tr.mu.Lock()
			tr.running++
			tr.starts++
			if tr.running > 1 {
				tr.overlap = true
			}
			tr.mu.Unlock()
			<-ctx.Done()
			time.Sleep(windDown) // e.g. a rotator finishing its step
			tr.mu.Lock()
			tr.running--
			tr.mu.Unlock()
		}
	})
	a := c.waitLeader(10 * time.Second)
	for round := range 2 {
		// Away from a, to any other voter, then straight back to a.
		if err := a.raft.LeadershipTransfer().Error(); err != nil {
			t.Fatalf("round %d: transfer away: %v", round, err)
		}
		b := c.waitLeader(10 * time.Second)
		if b == a {
			t.Fatalf("round %d: leadership did not move", round)
		}
		if err := b.raft.LeadershipTransferToServer(raft.ServerID(a.ID()), raft.ServerAddress(a.ClusterAddr())).Error(); err != nil {
			t.Fatalf("round %d: transfer back: %v", round, err)
		}
		if got := c.waitLeader(10 * time.Second); got != a {
			t.Fatalf("round %d: leader is %s, want %s", round, got.ID(), a.ID())
		}
		// Let the new term's work start (after the old one's wind-down).
		time.Sleep(windDown + 500*time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	tr := trackers[a.ID()]
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.overlap {
		t.Fatalf("leader work of two terms ran at once on %s", a.ID())
	}
	if tr.starts < 3 {
		t.Fatalf("leader work started %d times on %s, want 3 terms", tr.starts, a.ID())
	}
}

// testGossipKey encrypts the test clusters' gossip.
var testGossipKey = []byte("0123456789abcdef0123456789abcdef")
