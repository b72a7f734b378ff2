package cluster

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
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
	host, port, err := splitHostPort(n.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("gossip address: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	if n.cfg.GossipAdvertise != "" {
		ahost, aport, err := splitHostPort(n.cfg.GossipAdvertise)
		if err != nil {
			return fmt.Errorf("gossip advertise address: %w", err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ahost, aport
	}
	meta, _ := json.Marshal(memberMeta{ID: n.cfg.NodeID, Region: n.cfg.Region, RaftAddr: n.cfg.ClusterAdvertise,
		APIAddr: n.cfg.APIAddr, BootstrapExpect: n.cfg.BootstrapExpect})
	mc.Delegate = &gossipDelegate{meta: meta}
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

func splitHostPort(addr string) (string, int, error) {
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
// enough servers are seen, and asks the leader to reconcile.
func (n *Node) gossipLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case ev := <-n.events:
			if ev.Event == memberlist.NodeJoin {
				n.leavingMu.Lock()
				delete(n.leaving, ev.Node.Name)
				n.leavingMu.Unlock()
			}
			n.maybeBootstrap()
			n.kickReconcile()
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
	if addr, _ := n.raft.LeaderWithID(); addr != "" || n.raft.LastIndex() > 0 {
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
	n.bootstrapped.Store(true)
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		n.logger.Info("bootstrap skipped", "reason", err)
		return
	}
	n.logger.Info("bootstrapped cluster", "servers", len(servers))
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
	return err
}

// kickReconcile asks the leader loop to reconcile soon; kicks coalesce.
func (n *Node) kickReconcile() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// reconcile, on the leader, makes the Raft configuration follow the gossip
// pool: live servers of the region become voters. Servers that leave
// gracefully ask the leader to remove them (Leave). Failed servers stay: a
// crashed node is expected back, and removing it would shrink the quorum
// behind the operator's back.
func (n *Node) reconcile() {
	if !n.IsLeader() {
		return
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return
	}
	inRaft := map[raft.ServerID]raft.Server{}
	for _, s := range f.Configuration().Servers {
		inRaft[s.ID] = s
	}
	n.leavingMu.Lock()
	leaving := maps.Clone(n.leaving)
	n.leavingMu.Unlock()
	for _, m := range n.members() {
		if leaving[m.ID] {
			continue
		}
		s, ok := inRaft[raft.ServerID(m.ID)]
		if ok && s.Address == raft.ServerAddress(m.RaftAddr) && s.Suffrage == raft.Voter {
			continue
		}
		n.logger.Info("adding voter", "id", m.ID, "address", m.RaftAddr)
		if err := n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, n.cfg.RequestTimeout).Error(); err != nil {
			n.logger.Warn("add voter failed", "id", m.ID, "error", err)
		}
	}
}
