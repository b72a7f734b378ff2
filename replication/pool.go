// Package replication is replication between regions (docs/replication.md):
// how regions find each other (the WAN pool), and, as it lands, the
// shipper, the receiver and promotion.
package replication

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// The WAN pool: one memberlist pool of every server of every region, as
// Consul's WAN pool joins its datacenters. Each server publishes its
// region, its API and cluster addresses, whether it leads its region and
// can serve, and its region's replication public key; every server so
// knows every region, its leader and its key.

// Node is one server of one region as the WAN pool knows it.
type Node struct {
	Name        string `json:"name"`
	Region      string `json:"region"`
	APIAddr     string `json:"api,omitempty"`
	ClusterAddr string `json:"cluster,omitempty"`
	// PublicKey is the region's replication public key (nil until the
	// region has one).
	PublicKey []byte `json:"key,omitempty"`
	Leader    bool   `json:"leader,omitempty"`
	Serving   bool   `json:"serving,omitempty"`
}

// PoolConfig configures this server's member of the WAN pool.
type PoolConfig struct {
	// BindAddr is the WAN gossip address (TCP and UDP); Advertise is the
	// address other servers dial, when it differs.
	BindAddr, Advertise string
	// Join lists WAN gossip addresses of servers of any region.
	Join []string
	// GossipKey encrypts the pool's traffic (every server of every region
	// must have it); nil only with --insecure-plaintext or in dev.
	GossipKey []byte
	// Local tunes memberlist for loopback (tests, coffer dev).
	Local bool
	// Self is what this server publishes; the pool asks it every
	// refreshInterval and gossips a change.
	Self   func() Node
	Logger hclog.Logger
}

// refreshInterval is how often a member re-reads what it publishes;
// pushPullInterval how often it syncs the whole pool state with another.
const (
	refreshInterval  = time.Second
	pushPullInterval = 5 * time.Second
)

// Pool is this server's membership in the WAN pool.
type Pool struct {
	ml      *memberlist.Memberlist
	meta    *metaDelegate
	members *memberEvents
	cfg     PoolConfig
	stop    chan struct{}
	done    chan struct{}
}

// memberEvents keeps the pool's members as memberlist reports them. The
// metadata is read in the event callbacks, which memberlist calls under
// its own lock: a *memberlist.Node from Members() is updated in place by
// memberlist and cannot be read safely.
type memberEvents struct {
	mu    sync.Mutex
	nodes map[string]Node
}

func (e *memberEvents) set(n *memberlist.Node) {
	var node Node
	if json.Unmarshal(n.Meta, &node) != nil || node.Region == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nodes[n.Name] = node
}

func (e *memberEvents) NotifyJoin(n *memberlist.Node)   { e.set(n) }
func (e *memberEvents) NotifyUpdate(n *memberlist.Node) { e.set(n) }
func (e *memberEvents) NotifyLeave(n *memberlist.Node) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.nodes, n.Name)
}

type metaDelegate struct {
	mu   sync.Mutex
	meta []byte
}

func (d *metaDelegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}
func (d *metaDelegate) NotifyMsg([]byte)                {}
func (d *metaDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d *metaDelegate) LocalState(bool) []byte          { return nil }
func (d *metaDelegate) MergeRemoteState([]byte, bool)   {}

// memberName is a server's name in the WAN pool: node ids are unique
// only within their region.
func memberName(n Node) string { return n.Name + "." + n.Region }

// StartPool starts this server's member of the WAN pool and joins the
// Join addresses in the background (servers start in any order).
func StartPool(cfg PoolConfig) (*Pool, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	mc := memberlist.DefaultWANConfig()
	if cfg.Local {
		mc = memberlist.DefaultLocalConfig()
	}
	// Metadata changes (a new leader, a region's key) travel by gossip,
	// which may be lost; the full state sync repairs that. memberlist's
	// WAN default (60 s, first sync after up to twice that) left a region
	// unseen for over a minute in CI. A pool is a few servers per region,
	// so a sync every few seconds costs little.
	mc.PushPullInterval = pushPullInterval
	self := cfg.Self()
	mc.Name = memberName(self)
	host, port, err := cluster.SplitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("WAN gossip address: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	if cfg.Advertise != "" {
		ah, ap, err := cluster.SplitHostPort(cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("WAN gossip advertise address: %w", err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	}
	p := &Pool{meta: &metaDelegate{}, members: &memberEvents{nodes: map[string]Node{}}, cfg: cfg,
		stop: make(chan struct{}), done: make(chan struct{})}
	p.meta.meta, err = json.Marshal(self)
	if err != nil {
		return nil, err
	}
	mc.Delegate = p.meta
	mc.Events = p.members
	if cfg.GossipKey != nil {
		mc.SecretKey = cfg.GossipKey
	}
	mc.Logger = nil
	mc.LogOutput = cfg.Logger.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})
	if p.ml, err = memberlist.Create(mc); err != nil {
		return nil, fmt.Errorf("start WAN gossip: %w", err)
	}
	go p.run()
	return p, nil
}

// Addr is the address other servers join this one at.
func (p *Pool) Addr() string {
	n := p.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// run joins the pool and keeps this member's metadata current.
func (p *Pool) run() {
	defer close(p.done)
	joined := len(p.cfg.Join) == 0
	t := time.NewTicker(refreshInterval)
	defer t.Stop()
	for {
		if !joined {
			if n, err := p.ml.Join(p.cfg.Join); err == nil {
				p.cfg.Logger.Info("joined the WAN pool", "contacted", n, "members", p.ml.NumMembers())
				joined = true
			} else {
				p.cfg.Logger.Debug("WAN join failed; retrying", "error", err)
			}
		}
		p.refresh()
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

// refresh gossips this member's metadata if it changed.
func (p *Pool) refresh() {
	meta, err := json.Marshal(p.cfg.Self())
	if err != nil {
		return
	}
	p.meta.mu.Lock()
	changed := !bytes.Equal(meta, p.meta.meta)
	p.meta.meta = meta
	p.meta.mu.Unlock()
	if changed {
		if err := p.ml.UpdateNode(5 * time.Second); err != nil {
			p.cfg.Logger.Debug("WAN metadata update", "error", err)
		}
	}
}

// Members is every live server of every region, this one included, by
// region then name.
func (p *Pool) Members() []Node {
	p.members.mu.Lock()
	out := make([]Node, 0, len(p.members.nodes))
	for _, n := range p.members.nodes {
		out = append(out, n)
	}
	p.members.mu.Unlock()
	slices.SortFunc(out, func(a, b Node) int {
		return cmp.Or(cmp.Compare(a.Region, b.Region), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// Leave leaves the pool gracefully and stops the member.
func (p *Pool) Leave(timeout time.Duration) error {
	close(p.stop)
	<-p.done
	err := p.ml.Leave(timeout)
	if serr := p.ml.Shutdown(); err == nil {
		err = serr
	}
	return err
}

// Region summarizes one region from its servers in the pool.
type Region struct {
	Name   string `json:"region"`
	Leader string `json:"leader,omitempty"`
	// LeaderAPI is the leader's API address.
	LeaderAPI string `json:"leader_api,omitempty"`
	Servers   int    `json:"servers"`
	Serving   int    `json:"serving"`
	// Fingerprint identifies the region's replication public key
	// (crypto.KeyFingerprint); servers that publish different keys (one
	// not caught up yet) are flagged by KeyMismatch.
	Fingerprint string `json:"key_fingerprint,omitempty"`
	KeyMismatch bool   `json:"key_mismatch,omitempty"`
	Nodes       []Node `json:"nodes"`
}

// Regions groups servers into regions, by name.
func Regions(nodes []Node) []Region {
	var out []Region
	for _, n := range nodes {
		if len(out) == 0 || out[len(out)-1].Name != n.Region {
			out = append(out, Region{Name: n.Region})
		}
		r := &out[len(out)-1]
		r.Servers++
		r.Nodes = append(r.Nodes, n)
		if n.Serving {
			r.Serving++
		}
		if n.Leader {
			r.Leader, r.LeaderAPI = n.Name, n.APIAddr
		}
		if n.PublicKey != nil {
			fp := crypto.KeyFingerprint(n.PublicKey)
			if r.Fingerprint != "" && r.Fingerprint != fp {
				r.KeyMismatch = true
			}
			if r.Fingerprint == "" {
				r.Fingerprint = fp
			}
		}
	}
	return out
}

// Hosted is what replication needs of a region this process serves.
type Hosted interface {
	Name() string
	Status() cluster.Status
	Sealed() bool
	ReplicationPublicKey() (keyID string, pub []byte)
}

// Self is what a server of region r publishes in the WAN pool; apiAddr
// and clusterAddr are the addresses other regions dial ("" if unknown).
func Self(r Hosted, apiAddr string) Node {
	st := r.Status()
	_, pub := r.ReplicationPublicKey()
	n := Node{Name: st.NodeID, Region: r.Name(), APIAddr: apiAddr, PublicKey: pub,
		Leader: st.State == "leader", Serving: !r.Sealed() && st.LeaderID != ""}
	for _, v := range st.Voters {
		if v.ID == st.NodeID {
			n.ClusterAddr = v.Address
		}
	}
	return n
}
