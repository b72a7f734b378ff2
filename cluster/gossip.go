package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// memberMeta is what a node publishes in the gossip pool.
type memberMeta struct {
	ID              string `json:"id"`
	Region          string `json:"region"`
	RaftAddr        string `json:"raft"`
	APIAddr         string `json:"api,omitempty"`
	BootstrapExpect int    `json:"expect,omitempty"`
}

type gossipDelegate struct{ meta []byte }

func (d *gossipDelegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}
func (d *gossipDelegate) NotifyMsg([]byte)                {}
func (d *gossipDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d *gossipDelegate) LocalState(bool) []byte          { return nil }
func (d *gossipDelegate) MergeRemoteState([]byte, bool)   {}

func (n *Node) startGossip() error {
	mc := memberlist.DefaultLANConfig()
	if n.cfg.GossipLocal {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = n.cfg.NodeID
	host, port, err := SplitHostPort(n.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("gossip address: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	if n.cfg.GossipAdvertise != "" {
		ahost, aport, err := SplitHostPort(n.cfg.GossipAdvertise)
		if err != nil {
			return fmt.Errorf("gossip advertise address: %w", err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ahost, aport
	}
	meta, _ := json.Marshal(memberMeta{ID: n.cfg.NodeID, Region: n.cfg.Region, RaftAddr: n.cfg.ClusterAdvertise,
		APIAddr: n.cfg.APIAddr, BootstrapExpect: n.cfg.BootstrapExpect})
	mc.Delegate = &gossipDelegate{meta: meta}
	if n.cfg.GossipKey != nil {
		// memberlist encrypts every message with the key and, with
		// GossipVerifyIncoming (its default), drops unencrypted ones.
		mc.SecretKey = n.cfg.GossipKey
	}
	mc.Events = &memberlist.ChannelEventDelegate{Ch: n.events}
	mc.Logger = nil
	mc.LogOutput = n.logger.Named("gossip").StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}
	n.gossip = ml
	if mc.BindPort == 0 && mc.AdvertisePort == 0 {
		// Port 0 was resolved by the transport; publish the real one.
		n.cfg.GossipAddr = net.JoinHostPort(host, strconv.Itoa(int(ml.LocalNode().Port)))
	}
	if len(n.cfg.Join) > 0 {
		go n.join()
	}
	return nil
}

// join keeps trying the --join addresses until one answers: peers may
// start in any order.
func (n *Node) join() {
	for {
		if _, err := n.gossip.Join(n.cfg.Join); err == nil {
			n.logger.Info("joined gossip pool", "members", n.gossip.NumMembers())
			return
		} else {
			n.logger.Debug("join failed; retrying", "error", err)
		}
		select {
		case <-n.shutdownCtx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// SplitHostPort splits a host:port address into its host and numeric port.
func SplitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	return host, port, nil
}

// GossipAddr is the gossip address peers can join.
func (n *Node) GossipAddr() string {
	if n.cfg.GossipAdvertise != "" {
		return n.cfg.GossipAdvertise
	}
	ln := n.gossip.LocalNode()
	return net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
}

// gossipLoop reacts to membership changes: it bootstraps the cluster when
// enough servers are seen, and notes which members left gracefully.
func (n *Node) gossipLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case e := <-n.events:
			n.noteMemberEvent(e)
			n.maybeBootstrap()
		case <-tick.C:
			n.maybeBootstrap()
		case <-n.shutdownCtx.Done():
			return
		}
	}
}

// members returns the live gossip members of this node's region.
func (n *Node) members() (alive []memberMeta) {
	for _, m := range n.gossip.Members() {
		var meta memberMeta
		if json.Unmarshal(m.Meta, &meta) != nil || meta.Region != n.cfg.Region {
			continue
		}
		if m.State == memberlist.StateAlive || m.State == memberlist.StateSuspect {
			alive = append(alive, meta)
		}
	}
	return alive
}

// maybeBootstrap is Consul's bootstrap_expect: once this many servers of
// the region are in the gossip pool and none has Raft state, every one of
// them bootstraps the same configuration, so they agree without another
// round. A node that already has state, or has seen a leader, never does.
func (n *Node) maybeBootstrap() {
	if n.cfg.BootstrapExpect == 0 || n.bootstrapped.Load() {
		return
	}
	if n.stateMark() > 0 {
		n.bootstrapped.Store(true)
		return
	}
	alive := n.members()
	if len(alive) < n.cfg.BootstrapExpect {
		return
	}
	var servers []raft.Server
	for _, m := range alive {
		if m.BootstrapExpect != 0 && m.BootstrapExpect != n.cfg.BootstrapExpect {
			n.logger.Error("peers disagree on bootstrap-expect; not bootstrapping",
				"peer", m.ID, "peer_expect", m.BootstrapExpect, "expect", n.cfg.BootstrapExpect)
			return
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr), Suffrage: raft.Voter})
	}
	slices.SortFunc(servers, func(a, b raft.Server) int { return cmp.Compare(a.ID, b.ID) })
	// A fresh node that replaces a lost one sees enough live peers too, but
	// they already form a region: bootstrapping would write a second
	// configuration at index 1, term 1 — the same index and term as the
	// region's first entry with other contents, which Raft's log matching
	// cannot repair. Only bootstrap when every peer answers that it has no
	// state; a peer that cannot answer yet means try again later.
	for _, s := range servers {
		if string(s.ID) == n.cfg.NodeID {
			continue
		}
		ctx, cancel := context.WithTimeout(n.shutdownCtx, 2*time.Second)
		resp, err := n.pool.call(ctx, string(s.Address), &rpcRequest{Op: opHasState})
		cancel()
		if err != nil || resp.Unavailable != "" {
			n.logger.Debug("bootstrap: peer state unknown; will retry", "peer", s.ID, "error", err)
			return
		}
		if resp.Index > 0 {
			n.bootstrapped.Store(true)
			n.logger.Info("peers already form a region; joining instead of bootstrapping", "peer", s.ID)
			return
		}
	}
	n.bootstrapped.Store(true)
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		n.logger.Info("bootstrap skipped", "reason", err)
		return
	}
	n.bootstrappedHere.Store(true)
	n.logger.Info("bootstrapped cluster", "servers", len(servers))
}

// stateMark is nonzero when this node has Raft state: its last log index,
// or 1 when it has none but follows a leader.
func (n *Node) stateMark() uint64 {
	if i := n.raft.LastIndex(); i > 0 {
		return i
	}
	if addr, _ := n.raft.LeaderWithID(); addr != "" {
		return 1
	}
	return 0
}

// Bootstrap makes this node a single-voter cluster if it has no state yet
// (coffer dev, tests).
func (n *Node) Bootstrap() error {
	n.bootstrapped.Store(true)
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
		ID: raft.ServerID(n.cfg.NodeID), Address: raft.ServerAddress(n.cfg.ClusterAdvertise), Suffrage: raft.Voter,
	}}}).Error()
	if err == raft.ErrCantBootstrap {
		return nil
	}
	if err == nil {
		n.bootstrappedHere.Store(true)
	}
	return err
}

// requestMembership asks, once at start, to be a voter: to the leader if
// this node knows one, else through any live member of the region's gossip
// pool, which forwards it. A server joins the Raft configuration only at
// its own request, so the leader never re-adds a server that is gone or
// leaving because gossip has not caught up; the request is idempotent, so
// a node already in the configuration asks at no cost.
func (n *Node) requestMembership() {
	defer n.wg.Done()
	req := &rpcRequest{Op: opAddServer, Data: []byte(n.cfg.NodeID + "\x00" + n.cfg.ClusterAdvertise)}
	backoff := 200 * time.Millisecond
	for {
		if n.askToJoin(req) {
			return
		}
		select {
		case <-n.shutdownCtx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (n *Node) askToJoin(req *rpcRequest) bool {
	if n.IsLeader() {
		_, err := n.addVoter(raft.ServerID(n.cfg.NodeID), raft.ServerAddress(n.cfg.ClusterAdvertise))
		n.joined.Store(err == nil)
		return err == nil
	}
	var targets []string
	if addr, _ := n.raft.LeaderWithID(); addr != "" {
		targets = append(targets, string(addr))
	}
	for _, m := range n.members() {
		if m.ID != n.cfg.NodeID {
			targets = append(targets, m.RaftAddr)
		}
	}
	for _, addr := range targets {
		ctx, cancel := context.WithTimeout(n.shutdownCtx, 3*time.Second)
		resp, err := n.pool.call(ctx, addr, req)
		cancel()
		if err == nil {
			if _, _, err = fromResponse(resp); err == nil {
				n.logger.Info("member of the Raft configuration", "via", addr)
				n.joined.Store(true)
				return true
			}
		}
		n.logger.Debug("membership request not answered yet", "via", addr, "error", err)
	}
	return false
}

// addVoter, on the leader, makes id a voter at addr unless it already is.
func (n *Node) addVoter(id raft.ServerID, addr raft.ServerAddress) (uint64, error) {
	if !n.IsLeader() {
		return 0, errNotLeader
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return 0, errNotLeader
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == id && s.Address == addr && s.Suffrage == raft.Voter {
			return f.Index(), nil
		}
	}
	// Another id at this address is a server this one replaced (its data
	// lost, so it came back under a new id): the address now answers as
	// the new server, so the old id is gone for good. Remove it first, or
	// the configuration would count one process as two voters.
	for _, s := range f.Configuration().Servers {
		if s.Address == addr && s.ID != id {
			n.logger.Info("removing server replaced at its address", "id", s.ID, "address", addr, "by", id)
			if err := n.await(n.raft.RemoveServer(s.ID, 0, n.cfg.RequestTimeout)); err != nil {
				if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
					return 0, errNotLeader
				}
				return 0, unavailable(err.Error(), OutcomeUnknown)
			}
		}
	}
	n.logger.Info("adding voter at its request", "id", id, "address", addr)
	af := n.raft.AddVoter(id, addr, 0, n.cfg.RequestTimeout)
	if err := n.await(af); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, errNotLeader
		}
		return 0, unavailable(err.Error(), OutcomeUnknown)
	}
	return af.Index(), nil
}
