// Package cluster runs a region's Raft group: the Raft node with its
// BoltDB stores and file snapshots, the cluster port shared by Raft and the
// internal RPC, the LAN gossip pool, write forwarding, linearizable reads
// by read index, and the leader loop. It knows nothing of HTTP.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// Config configures a node. Addresses are host:port; port 0 picks a free
// port (tests).
type Config struct {
	NodeID  string
	Region  string
	DataDir string // empty: in-memory stores (tests only)

	ClusterAddr      string // bind address of the cluster port (Raft + RPC)
	ClusterAdvertise string // what peers dial; defaults to the bound address
	GossipAddr       string
	GossipAdvertise  string
	Join             []string // gossip addresses to join at start
	BootstrapExpect  int      // bootstrap once this many servers are seen
	// APIAddr is published in gossip so peers and tools can find the API.
	APIAddr string
	// GossipLocal selects memberlist's loopback timings (tests, dev).
	GossipLocal bool

	// TLS secures the cluster port with mutual TLS (mux.go); nil leaves it
	// plaintext, which only `coffer dev` and --insecure-plaintext do.
	TLS TLS
	// GossipKey encrypts and authenticates gossip (memberlist's keyring:
	// 16, 24 or 32 bytes for AES-128/192/256); nil leaves gossip in the
	// clear.
	GossipKey []byte

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64

	// RequestTimeout bounds one forwarded write or read-index request.
	RequestTimeout time.Duration

	// DeadServerGrace is how long a voter must have failed before the
	// leader removes it (deadservers.go); 0 turns the cleanup off.
	DeadServerGrace time.Duration
	// MinQuorum is the fewest voters the dead-server cleanup leaves.
	MinQuorum int

	// UnsafeLocalReads makes a leader hand out read indexes from its local
	// state without confirming leadership with a quorum: a deposed or
	// partitioned leader then answers stale data. It exists only for the jepsen harness's negative
	// control and is set only by --unsafe-local-reads in binaries built
	// with -tags faults. Never set it otherwise.
	UnsafeLocalReads bool

	// OnLeader runs on the leader once leadership is established (after
	// the barrier); its context ends when leadership is lost, and it must
	// return then: the next term's OnLeader on this node starts only after
	// it has returned (the fenced leader loop, leader.go).
	OnLeader func(ctx context.Context)

	// CheckSnapshot checks a state stream on the leader before
	// RestoreSnapshot hands it to Raft: its
	// region, its account, that every record decodes and that this
	// region's root key opens its keyring. An error (an *apierr.Error
	// says why to the caller) refuses the restore with nothing changed.
	CheckSnapshot func(state []byte) error

	Logger hclog.Logger
}

// DefaultConfig returns the defaults documented for `coffer server`.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		SnapshotThreshold:  8192,
		SnapshotInterval:   2 * time.Minute,
		TrailingLogs:       10240,
		RequestTimeout:     10 * time.Second,
		DeadServerGrace:    5 * time.Minute,
		MinQuorum:          3,
	}
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("node id is required")
	case c.Region == "":
		return errors.New("region is required")
	case c.ClusterAddr == "":
		return errors.New("cluster address is required")
	case c.GossipAddr == "":
		return errors.New("gossip address is required")
	case c.BootstrapExpect < 0:
		return errors.New("bootstrap-expect must not be negative")
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return errors.New("raft leader lease timeout must not exceed the heartbeat timeout")
	case c.RequestTimeout <= 0:
		return errors.New("request timeout must be positive")
	case c.DeadServerGrace < 0:
		return errors.New("dead-server grace must not be negative")
	case c.MinQuorum < 0:
		return errors.New("min-quorum must not be negative")
	case c.GossipKey != nil && len(c.GossipKey) != 16 && len(c.GossipKey) != 24 && len(c.GossipKey) != 32:
		return fmt.Errorf("gossip key must be 16, 24 or 32 bytes, got %d", len(c.GossipKey))
	}
	return nil
}

// Node is one member of a region's Raft group.
type Node struct {
	cfg    Config
	logger hclog.Logger
	fsm    *fsm.FSM

	raft      *raft.Raft
	transport *raft.NetworkTransport
	mux       *mux
	pool      *rpcPool
	stores    []interface{ Close() error }
	// snaps is the snapshot store (SaveSnapshot).
	snaps  raft.SnapshotStore
	gossip *memberlist.Memberlist
	events chan memberlist.NodeEvent

	// readyTerm is the term in which this node, as leader, has committed
	// its own Noop: from then on its commit index is safe to hand out as a
	// read index.
	readyTerm atomic.Uint64
	reads     readBatcher

	shutdownCtx  context.Context
	shutdownFn   context.CancelFunc
	wg           sync.WaitGroup
	shutdownOnce sync.Once
	bootstrapped atomic.Bool
	// bootstrappedHere: this process wrote an initial Raft configuration.
	bootstrappedHere atomic.Bool
	// joined: the leader added this node as a voter at its request, even
	// if this node has not received that configuration entry yet.
	joined atomic.Bool

	// left holds the gossip members that left gracefully (by name, the
	// node id), which the dead-server cleanup leaves alone.
	leftMu sync.Mutex
	left   map[string]bool
	// deadRemoved counts the dead servers this node removed as leader.
	deadRemoved atomic.Uint64
	// hbFailed: the last failed Raft heartbeat to each server that has not
	// answered one since (deadservers.go).
	hbMu     sync.Mutex
	hbFailed map[raft.ServerID]time.Time

	// relead asks the leader loop to restart this term's leader session
	// (after a restore); restoreMu lets one restore run at a time.
	relead    chan struct{}
	restoreMu sync.Mutex
}

// New starts a node: it opens the stores, listens on the cluster and
// gossip ports, starts Raft and joins the gossip pool.
func New(cfg Config, f *fsm.FSM) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	n := &Node{cfg: cfg, logger: logger.Named("cluster"), fsm: f,
		events: make(chan memberlist.NodeEvent, 256), left: map[string]bool{},
		hbFailed: map[raft.ServerID]time.Time{}, relead: make(chan struct{}, 1)}
	n.shutdownCtx, n.shutdownFn = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			n.closeResources()
		}
	}()

	ln, err := net.Listen("tcp", cfg.ClusterAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on cluster address: %w", err)
	}
	advertise, err := advertiseAddr(cfg.ClusterAdvertise, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	n.cfg.ClusterAdvertise = advertise.String()
	n.mux = newMux(ln, advertise, cfg.TLS, cfg.Region, n.logger.Named("mux"))
	n.mux.rpc = n.serveRPC
	n.pool = &rpcPool{idle: map[string][]*rpcConn{}, limit: 128,
		dial: func(addr string, t time.Duration) (net.Conn, error) { return n.mux.dial(addr, muxRPC, t) }}

	if err := n.startRaft(); err != nil {
		return nil, err
	}
	// The cluster port accepts only once Raft exists: every RPC handler
	// and Raft's transport need it. Until then peers' connections wait in
	// the listen backlog (a restarting node may spend seconds restoring a
	// snapshot) rather than reach a node that cannot answer them; this
	// ordering is also what makes n.raft visible to the handlers.
	go n.mux.serve()
	if err := n.startGossip(); err != nil {
		return nil, err
	}
	n.wg.Add(2)
	go n.gossipLoop()
	go n.requestMembership()
	ok = true
	return n, nil
}

func advertiseAddr(configured string, bound net.Addr) (*net.TCPAddr, error) {
	if configured == "" {
		tcp := bound.(*net.TCPAddr)
		if tcp.IP.IsUnspecified() {
			return nil, errors.New("cluster address binds all interfaces: set --cluster-advertise to the address peers dial")
		}
		return tcp, nil
	}
	return net.ResolveTCPAddr("tcp", configured)
}

func (n *Node) startRaft() error {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.Logger = n.logger.Named("raft")
	notify := make(chan bool, 16)
	rc.NotifyCh = notify

	var logs raft.LogStore
	var stable raft.StableStore
	var snaps raft.SnapshotStore
	if n.cfg.DataDir == "" {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		dir := filepath.Join(n.cfg.DataDir, "raft")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		// NoFreelistSync, as Vault does: the freelist is rebuilt on open
		// instead of being written on every commit.
		store, err := raftboltdb.New(raftboltdb.Options{
			Path:        filepath.Join(dir, "raft.db"),
			BoltOptions: &bolt.Options{Timeout: time.Second, NoFreelistSync: true},
		})
		if err != nil {
			return fmt.Errorf("open raft store: %w", err)
		}
		n.stores = append(n.stores, store)
		logs, stable = store, store
		fss, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, n.logger.Named("snapshot"))
		if err != nil {
			return fmt.Errorf("open snapshot store: %w", err)
		}
		snaps = fss
	}
	n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: raftLayer{n.mux}, MaxPool: 3, Timeout: 10 * time.Second,
		Logger: n.logger.Named("transport"),
	})
	n.snaps = snaps
	if n.cfg.DataDir != "" {
		if err := n.recoverFromPeersFile(filepath.Join(n.cfg.DataDir, "raft"), rc, logs, stable, snaps); err != nil {
			return err
		}
	}
	r, err := raft.NewRaft(rc, n.fsm, logs, stable, snaps, n.transport)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	n.observeLeaders()
	n.observeHeartbeats()
	n.wg.Add(1)
	go n.watchLeadership(notify)
	return nil
}

// observeLeaders logs every change of leader seen by this node. The term
// is read after the fact (raft 1.8's LeaderObservation has none), so it is
// the current term, not necessarily the leader's; raft's own "election
// won" line is the exact record of who led which term.
func (n *Node) observeLeaders() {
	ch := make(chan raft.Observation, 16)
	n.raft.RegisterObserver(raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	}))
	go func() {
		for {
			select {
			case o := <-ch:
				lo := o.Data.(raft.LeaderObservation)
				n.logger.Info("leader changed", "leader", lo.LeaderID, "address", lo.LeaderAddr, "current_term", n.raft.CurrentTerm())
			case <-n.shutdownCtx.Done():
				return
			}
		}
	}()
}

// BootstrappedHere reports whether this process wrote an initial Raft
// configuration (bootstrap-expect or Bootstrap), rather than joining one.
func (n *Node) BootstrappedHere() bool { return n.bootstrappedHere.Load() }

// FSM returns the node's state machine.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// Region returns the region this node serves.
func (n *Node) Region() string { return n.cfg.Region }

// ID returns the node id.
func (n *Node) ID() string { return n.cfg.NodeID }

// ClusterAddr is the advertised cluster address.
func (n *Node) ClusterAddr() string { return n.cfg.ClusterAdvertise }

// IsLeader reports whether this node is the Raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Apply commits an encoded fsm command through Raft, on this node if it
// leads or forwarded to the leader, and returns the result and the index it
// applied at. Errors are *apierr.Error (Apply refused it; nothing applied)
// or *UnavailableError (with its outcome).
func (n *Node) Apply(ctx context.Context, cmd []byte) (*fsm.Result, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	return n.toLeader(ctx, func(ctx context.Context) (*fsm.Result, uint64, error) {
		return n.applyLocal(ctx, cmd)
	}, &rpcRequest{Op: opApply, Data: cmd})
}

// toLeader runs local on the leader, or sends req to it, retrying while no
// leader is known or the one asked has stepped down: those answers prove
// nothing was applied.
func (n *Node) toLeader(ctx context.Context, local func(context.Context) (*fsm.Result, uint64, error), req *rpcRequest) (*fsm.Result, uint64, error) {
	backoff := 5 * time.Millisecond
	for {
		var res *fsm.Result
		var index uint64
		var err error
		addr, id := n.raft.LeaderWithID()
		switch {
		case n.IsLeader():
			res, index, err = local(ctx)
		case addr == "":
			err = errNotLeader
		default:
			var resp *rpcResponse
			start := time.Now()
			resp, err = n.pool.call(ctx, string(addr), req)
			n.metricForward(req.Op, start, err == nil)
			switch {
			case err == nil:
				res, index, err = fromResponse(resp)
			case errors.As(err, new(errSendFailed)):
				n.logger.Debug("leader unreachable", "leader", id, "error", err)
				err = errNotLeader
			default:
				return nil, 0, unavailable(fmt.Sprintf("no answer from leader %s: %v", id, err), OutcomeUnknown)
			}
		}
		if !errors.Is(err, errNotLeader) {
			return res, index, err
		}
		select {
		case <-ctx.Done():
			return nil, 0, unavailable("no leader could be reached before the request timed out", OutcomeNotApplied)
		case <-n.shutdownCtx.Done():
			return nil, 0, unavailable("node is shutting down", OutcomeNotApplied)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

// applyLocal applies on this node, which must be the leader.
func (n *Node) applyLocal(ctx context.Context, cmd []byte) (*fsm.Result, uint64, error) {
	timeout := n.cfg.RequestTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	f := n.raft.Apply(cmd, timeout)
	if err := n.await(f); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return nil, 0, errNotLeader
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, 0, unavailable("timed out waiting to append to the log", OutcomeNotApplied)
		case errors.Is(err, raft.ErrLeadershipLost):
			return nil, 0, unavailable("leadership lost while committing", OutcomeUnknown)
		default:
			return nil, 0, unavailable(err.Error(), OutcomeUnknown)
		}
	}
	switch r := f.Response().(type) {
	case *fsm.Result:
		return r, f.Index(), nil
	case *apierr.Error:
		return nil, f.Index(), r
	}
	return nil, f.Index(), apierr.Newf(apierr.InternalServiceError, "unexpected apply response %T", f.Response())
}

// ReadIndex makes the next local read linearizable: it gets a read index
// from the leader (its commit index, confirmed by a quorum) and waits until
// this node's state has applied it. It writes nothing to the log.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if n.cfg.UnsafeLocalReads && n.IsLeader() {
		// The classic lease bug, on purpose: a leader that believes it
		// still leads answers from local state without asking a quorum.
		return n.fsm.AppliedIndex(), nil
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	_, index, err := n.toLeader(ctx, func(ctx context.Context) (*fsm.Result, uint64, error) {
		i, err := n.leaderReadIndex(ctx)
		return nil, i, err
	}, &rpcRequest{Op: opReadIndex})
	if err != nil {
		if ue, ok := err.(*UnavailableError); ok {
			ue.Outcome = OutcomeNotApplied // a read changes nothing
		}
		return 0, err
	}
	gotIndex := time.Now()
	if err := n.fsm.WaitApplied(ctx, index); err != nil {
		return 0, unavailable("this node did not catch up with the leader in time", OutcomeNotApplied)
	}
	n.metricReadIndex(start, gotIndex)
	return index, nil
}

// await waits for a future raft answers after its FSM applied the entry
// (Apply, Barrier, membership changes), or until the node shuts down: raft
// leaves such a future unanswered when it shuts down after handing the
// entry to its FSM goroutine, and a node that is shutting down must not
// wait for it forever (its leader work, which Shutdown waits for, may be
// the one waiting).
func (n *Node) await(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-n.shutdownCtx.Done():
		return raft.ErrRaftShutdown
	}
}

// Shutdown stops the node without leaving: peers see it fail. Leave
// first for a graceful exit.
func (n *Node) Shutdown() error {
	var err error
	n.shutdownOnce.Do(func() {
		n.shutdownFn()
		if n.gossip != nil {
			n.gossip.Shutdown()
		}
		if n.raft != nil {
			err = n.raft.Shutdown().Error()
		}
		n.wg.Wait()
		n.closeResources()
	})
	return err
}

func (n *Node) closeResources() {
	n.shutdownFn()
	if n.transport != nil {
		n.transport.Close()
	}
	if n.mux != nil {
		n.mux.close()
		if !n.mux.waitRaft(5 * time.Second) {
			n.logger.Warn("a Raft connection handler did not return within 5s; closing the stores anyway")
		}
	}
	if n.pool != nil {
		n.pool.closeAll()
	}
	for _, s := range n.stores {
		s.Close()
	}
	n.stores = nil
}

// Leave exits gracefully: a leader hands leadership to another voter
// first; then the node asks the leader to remove it from the Raft
// configuration, so the quorum shrinks with it instead of counting a node
// that will not return; then it leaves the gossip pool.
func (n *Node) Leave(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(n.shutdownCtx, timeout)
	defer cancel()
	if n.IsLeader() && n.voterCount() > 1 {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.logger.Warn("leadership transfer failed", "error", err)
		} else {
			n.logger.Info("leadership transferred before leaving")
		}
	}
	// Leave the gossip pool first: peers stop counting this node for
	// bootstrap and stop sending it gossip.
	var leaveErr error
	if n.gossip != nil {
		leaveErr = n.gossip.Leave(timeout)
	}
	// A node that was just added may not have received the entry that
	// added it: it asks to be removed all the same (removing a server the
	// configuration does not hold changes nothing).
	if !n.IsLeader() && (n.inConfiguration() || n.joined.Load()) {
		_, _, err := n.toLeader(ctx, func(context.Context) (*fsm.Result, uint64, error) {
			return nil, 0, errNotLeader // we are not the leader: ask the one there is
		}, &rpcRequest{Op: opRemoveServer, Data: []byte(n.cfg.NodeID)})
		if err != nil {
			n.logger.Warn("could not be removed from the Raft configuration", "error", err)
		} else {
			n.logger.Info("removed from the Raft configuration")
		}
	}
	return leaveErr
}

func (n *Node) voterCount() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			c++
		}
	}
	return c
}

func (n *Node) inConfiguration() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(n.cfg.NodeID) {
			return true
		}
	}
	return false
}
