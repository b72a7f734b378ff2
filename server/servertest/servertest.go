// Package servertest starts real Coffer regions in one process for tests
// and benchmarks: N nodes on 127.0.0.1 with OS-assigned ports, real Raft
// over TCP, real gossip, BoltDB stores in temporary directories, and the
// HTTP API, with AWS SDK clients pointed at any node. Logs go to t.Log so
// passing tests stay quiet. Helpers poll; none sleeps a fixed time.
package servertest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/cofferhq/coffer/tlsutil"
	"github.com/cofferhq/coffer/tlsutil/tlstest"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/audit"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/rotation"
	"github.com/cofferhq/coffer/server"
	"github.com/hashicorp/go-hclog"
)

// Credentials is the root key pair every test region bootstraps with.
var Credentials = region.Credentials{AccessKeyID: "AKIATESTTESTTESTTEST", SecretAccessKey: "test/secret/key/for/coffer/tests/0123456"}

// Region is the region test clusters serve.
const Region = "us-east-1"

// Options tune a test cluster.
type Options struct {
	// Tune changes each node's cluster config before it starts.
	Tune func(*cluster.Config)
	// TuneRegion changes each node's region config before it starts
	// (e.g. a short purge or access-flush interval, or a skewed Clock:
	// the node's HTTP server uses the same clock, rc.Cluster.NodeID says
	// which node it is).
	TuneRegion func(*region.Config)
	// Plaintext runs every port in the clear, as --insecure-plaintext
	// does (benchmarks of what TLS costs); otherwise the cluster port is
	// mutual TLS, gossip is encrypted and the API is HTTPS.
	Plaintext bool
	// Region names the region (default Region, us-east-1).
	Region string
	// TuneRotation changes each node's rotation scheduler config (a
	// short Tick or Retry, a Builder with an exec directory).
	TuneRotation func(*rotation.Config)
	// WAN joins every node to a WAN pool shared by the clusters given the
	// same WAN, so their regions replicate to each other (NewWAN).
	WAN *WAN
}

// WAN is a WAN pool shared by the test clusters of several regions: each
// node joins it with a member of its own, as --wan-gossip-addr and
// --wan-join do.
type WAN struct {
	mu    sync.Mutex
	addrs []string
	cut   map[[2]string]bool
}

// Cut breaks replication between regions a and b, both ways: every
// connection one opens to the other is refused, as a network partition
// between them would (gossip goes on). Heal mends every cut.
func (w *WAN) Cut(a, b string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cut == nil {
		w.cut = map[[2]string]bool{}
	}
	w.cut[[2]string{a, b}], w.cut[[2]string{b, a}] = true, true
}

// Heal mends every Cut.
func (w *WAN) Heal() {
	w.mu.Lock()
	w.cut = nil
	w.mu.Unlock()
}

// gate is replication.Config.Gate for a node of region from.
func (w *WAN) gate(from string) func(string) error {
	return func(to string) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.cut[[2]string{from, to}] {
			return fmt.Errorf("the link between regions %s and %s is cut (test partition)", from, to)
		}
		return nil
	}
}

// NewWAN returns an empty WAN pool for the clusters of one test.
func NewWAN() *WAN { return &WAN{} }

func (w *WAN) join() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.addrs...)
}

func (w *WAN) add(addr string) {
	w.mu.Lock()
	w.addrs = append(w.addrs, addr)
	w.mu.Unlock()
}

// Node is one node of a test cluster.
type Node struct {
	ID string
	// AccountID is the account the node is configured with (default
	// 000000000000); set it before Restart to change it.
	AccountID string
	DataDir   string
	Region    *region.Region
	Server    *server.Server
	// Replication is the node's replication service; Pool its WAN
	// member (nil without Options.WAN).
	Replication *replication.Service
	Pool        *replication.Pool
	Endpoint    string // https://127.0.0.1:port (tlstest's shared CA)
	// AuditDir is the node's audit log directory (<DataDir>/audit);
	// Audit the log while the node runs.
	AuditDir string
	Audit    *audit.Log
	running  bool
	cfg      cluster.Config
	apiAddr  string
	tls      *tlsutil.Reloader
}

// gossipKey encrypts the test clusters' gossip.
var gossipKey = []byte("coffer-test-gossip-key-32-bytes!")

// The clusters serve HTTPS with certificates of tlstest's shared CA. The
// process's default HTTP transport trusts it, so tests' plain http.Get and
// http.DefaultClient calls reach them as the SDK clients (NewClient) do.
func init() {
	http.DefaultTransport.(*http.Transport).TLSClientConfig = tlstest.Shared().ClientConfig()
}

// Cluster is a set of nodes of one region.
type Cluster struct {
	// Name is the region's name.
	Name    string
	t       testing.TB
	Nodes   []*Node
	RootKey []byte
	opts    Options
	logOut  *testWriter
	base    string
}

// New starts n nodes that find each other through gossip
// (--bootstrap-expect n) and waits until the region serves.
func New(t testing.TB, n int, opts ...Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, RootKey: crypto.RandomKey(), logOut: &testWriter{t: t}}
	if len(opts) > 0 {
		c.opts = opts[0]
	}
	c.Name = cmp.Or(c.opts.Region, Region)
	// TempDir before Cleanup: cleanups run last-in first-out, and the nodes
	// must stop before their data directories are removed.
	base := t.TempDir()
	t.Cleanup(c.Shutdown)
	c.base = base
	for range n {
		c.addNode(n)
	}
	c.WaitServing()
	return c
}

// addNode starts one more node that joins the first node's gossip pool.
// expect is its --bootstrap-expect (0 for a node joining a running region).
func (c *Cluster) addNode(expect int) *Node {
	c.t.Helper()
	id := fmt.Sprintf("n%d", len(c.Nodes)+1)
	node := &Node{ID: id, DataDir: filepath.Join(c.base, id), apiAddr: "127.0.0.1:0"}
	cfg := cluster.DefaultConfig()
	cfg.NodeID, cfg.Region, cfg.DataDir = node.ID, c.Name, node.DataDir
	cfg.ClusterAddr, cfg.GossipAddr, cfg.GossipLocal = "127.0.0.1:0", "127.0.0.1:0", true
	cfg.BootstrapExpect = expect
	// As a server runs: mutual TLS on the cluster port, encrypted gossip,
	// HTTPS on the API (start).
	if !c.opts.Plaintext {
		node.tls = tlstest.Shared().Node(c.t, node.ID, c.Name)
		cfg.TLS, cfg.GossipKey = node.tls, gossipKey
	}
	// Raft timings stay at the production defaults (1s, 1s, 500ms):
	// tighter ones make leaders step down spuriously under -race on a
	// loaded 2-core machine.
	cfg.RequestTimeout = 5 * time.Second
	for _, o := range c.Nodes {
		if o.running {
			cfg.Join = append(cfg.Join, o.cfg.GossipAddr)
		}
	}
	if c.opts.Tune != nil {
		c.opts.Tune(&cfg)
	}
	node.cfg = cfg
	c.Nodes = append(c.Nodes, node)
	c.start(node)
	return node
}

// Join starts a new node that joins the running region through gossip,
// as `coffer server --join` without --bootstrap-expect does, and returns
// its index.
func (c *Cluster) Join() int {
	c.t.Helper()
	c.addNode(0)
	return len(c.Nodes) - 1
}

func (c *Cluster) start(node *Node) {
	c.t.Helper()
	if err := os.MkdirAll(node.DataDir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	name := node.ID
	if c.opts.WAN != nil {
		name = node.ID + "." + c.Name
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Info, Output: c.logOut})
	creds := Credentials
	rc := region.Config{Cluster: node.cfg, AccountID: node.AccountID, RootKey: c.RootKey, Bootstrap: &creds, Logger: logger}
	if c.opts.TuneRegion != nil {
		c.opts.TuneRegion(&rc)
	}
	r, err := region.New(rc)
	if err != nil {
		c.t.Fatalf("start %s: %v", node.ID, err)
	}
	repCfg := replication.Config{Region: r, Logger: logger.Named("replication")}
	if c.opts.WAN != nil {
		repCfg.Gate = c.opts.WAN.gate(r.Name())
	}
	repl := replication.New(repCfg)
	rotCfg := rotation.Config{Region: r, Logger: logger.Named("rotation")}
	if c.opts.TuneRotation != nil {
		c.opts.TuneRotation(&rotCfg)
	}
	sched := rotation.New(rotCfg)
	if err := r.Start(); err != nil {
		c.t.Fatalf("start %s: %v", node.ID, err)
	}
	repl.Serve()
	node.AuditDir = filepath.Join(node.DataDir, "audit")
	alog, err := audit.Open(node.AuditDir, audit.Options{})
	if err != nil {
		r.Shutdown()
		c.t.Fatalf("start %s audit log: %v", node.ID, err)
	}
	node.Audit = alog
	sc := server.Config{APIAddr: node.apiAddr, Logger: logger, Clock: rc.Clock, Audit: alog, NodeID: node.ID}
	var pool *replication.Pool
	if c.opts.WAN != nil {
		var key []byte
		if !c.opts.Plaintext {
			key = gossipKey
		}
		apiAddr := node.apiAddr
		pool, err = replication.StartPool(replication.PoolConfig{BindAddr: "127.0.0.1:0", Join: c.opts.WAN.join(), GossipKey: key,
			Local: true, Logger: logger.Named("wan"), Self: func() replication.Node { return replication.Self(r, apiAddr) }})
		if err != nil {
			r.Shutdown()
			c.t.Fatalf("start %s WAN member: %v", node.ID, err)
		}
		c.opts.WAN.add(pool.Addr())
		repl.SetPeers(pool.Members)
		sc.Regions = pool.Members
	}
	scheme := "http://"
	if node.tls != nil {
		sc.TLS, scheme = node.tls.APIConfig(), "https://"
	}
	srv, err := server.New(sc, r)
	if err == nil {
		sched.SetAPI(srv.Caller(r.Name()))
		err = srv.Start()
	}
	if err != nil {
		if pool != nil {
			pool.Leave(time.Second)
		}
		r.Shutdown()
		alog.Close()
		c.t.Fatalf("start %s API: %v", node.ID, err)
	}
	// Pin the addresses the OS chose, so a restart comes back on them and
	// the peers' Raft configuration still points at this node.
	node.cfg.ClusterAddr = r.Node().ClusterAddr()
	node.cfg.GossipAddr = r.Node().GossipAddr()
	node.apiAddr = srv.Addr()
	node.Region, node.Server, node.Endpoint, node.running = r, srv, scheme+srv.Addr(), true
	node.Replication, node.Pool = repl, pool
}

// leaveWAN takes a stopping node out of the WAN pool.
func (n *Node) leaveWAN() {
	if n.Pool != nil {
		n.Pool.Leave(time.Second)
		n.Pool = nil
	}
}

// Kill stops a node abruptly: no leadership transfer, no gossip leave, as
// if the process died. Its data stays for Restart.
func (c *Cluster) Kill(i int) {
	n := c.Nodes[i]
	if !n.running {
		return
	}
	n.running = false
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n.Server.Shutdown(ctx)
	n.leaveWAN()
	n.Region.Shutdown()
	n.Audit.Close()
}

// Stop stops a node gracefully, as SIGTERM does.
func (c *Cluster) Stop(i int) {
	n := c.Nodes[i]
	if !n.running {
		return
	}
	n.running = false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.Server.Shutdown(ctx)
	n.leaveWAN()
	n.Region.Leave(5 * time.Second)
	n.Region.Shutdown()
	n.Audit.Close()
}

// Restart starts a stopped node again on the same addresses and data.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	if n.running {
		c.t.Fatalf("%s is running", n.ID)
	}
	n.cfg.Join = nil
	for _, o := range c.Nodes {
		if o != n {
			n.cfg.Join = append(n.cfg.Join, o.cfg.GossipAddr)
		}
	}
	c.start(n)
}

// Replace starts a fresh node in place of stopped node i, as an operator
// does after losing a machine: a new node id (an id is never reused once
// its data is gone), an empty data dir, the old node's cluster address and
// the same --bootstrap-expect as the original nodes. It returns the new
// node's index.
func (c *Cluster) Replace(i int, expect int) int {
	c.t.Helper()
	old := c.Nodes[i]
	if old.running {
		c.t.Fatalf("%s is running", old.ID)
	}
	id := fmt.Sprintf("n%d", len(c.Nodes)+1)
	node := &Node{ID: id, DataDir: filepath.Join(c.base, id), apiAddr: "127.0.0.1:0", AccountID: old.AccountID}
	cfg := old.cfg
	cfg.NodeID, cfg.DataDir, cfg.BootstrapExpect = id, node.DataDir, expect
	cfg.GossipAddr, cfg.Join = "127.0.0.1:0", nil
	if !c.opts.Plaintext {
		node.tls = tlstest.Shared().Node(c.t, id, c.Name)
		cfg.TLS = node.tls
	}
	for _, o := range c.Nodes {
		if o.running {
			cfg.Join = append(cfg.Join, o.cfg.GossipAddr)
		}
	}
	node.cfg = cfg
	c.Nodes = append(c.Nodes, node)
	c.start(node)
	return len(c.Nodes) - 1
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for i := range c.Nodes {
		c.Kill(i)
	}
	c.logOut.stop()
}

// Running returns the indexes of running nodes.
func (c *Cluster) Running() []int {
	var out []int
	for i, n := range c.Nodes {
		if n.running {
			out = append(out, i)
		}
	}
	return out
}

// Leader waits for a running node to lead with an open keyring and
// returns its index.
func (c *Cluster) Leader() int {
	c.t.Helper()
	var leader int
	c.Eventually(30*time.Second, "a leader", func() bool {
		for _, i := range c.Running() {
			r := c.Nodes[i].Region
			if r.Node().IsLeader() && !r.Sealed() {
				leader = i
				return true
			}
		}
		return false
	})
	return leader
}

// Followers returns the indexes of running nodes that are not the leader.
func (c *Cluster) Followers() []int {
	l := c.Leader()
	var out []int
	for _, i := range c.Running() {
		if i != l {
			out = append(out, i)
		}
	}
	return out
}

// WaitServing waits until there is a leader and every running node is
// unsealed and knows it.
func (c *Cluster) WaitServing() {
	c.t.Helper()
	c.Leader()
	c.Eventually(30*time.Second, "all nodes serving", func() bool {
		for _, i := range c.Running() {
			st := c.Nodes[i].Region.Node().Status()
			if st.LeaderID == "" || c.Nodes[i].Region.Sealed() {
				return false
			}
		}
		return true
	})
}

// Eventually polls cond until it holds or the timeout passes.
func (c *Cluster) Eventually(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Client returns an AWS SDK client for node i, signed with the root
// credentials. Retries are off so tests see each answer as it is.
func (c *Cluster) Client(i int) *secretsmanager.Client {
	return NewClient(c.Nodes[i].Endpoint, c.Name, Credentials, 0)
}

// NewClient returns an SDK client for an endpoint. maxAttempts 0 disables
// retries.
func NewClient(endpoint, region string, creds region.Credentials, maxAttempts int) *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
		// Keep connections for many concurrent callers (benchmarks run 64).
		HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns, t.MaxIdleConnsPerHost = 256, 128
			t.TLSClientConfig = tlstest.Shared().ClientConfig()
		}),
		Retryer: func() aws.Retryer {
			if maxAttempts <= 1 {
				return closedConnRetryer()
			}
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = maxAttempts })
		}(),
	})
}

// closedConnRetryer retries only a request whose connection the client's
// own transport closed under it (net.ErrClosed), as the SDK's default
// retryer does since aws/aws-sdk-go-v2#2949 (issue #2737): that is a
// client-side race, not an answer from Coffer. Every answer from the
// server, error or not, reaches the test as it is.
func closedConnRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 3
		o.RateLimiter = ratelimit.None
		o.Retryables = []retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if errors.Is(err, net.ErrClosed) {
				return aws.TrueTernary
			}
			return aws.FalseTernary
		})}
	})
}

// testWriter sends log lines to t.Log until the test ends: t.Log after the
// end of a test panics, and Raft goroutines may still log during shutdown.
type testWriter struct {
	mu      sync.Mutex
	t       testing.TB
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

var _ io.Writer = (*testWriter)(nil)
