package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// node is one `coffer server` process with its addresses. The node binds
// its cluster port on its own loopback address (127.0.0.(10+i)), so its
// outbound cluster connections come from that address, and advertises
// the address of its inbound proxy; API and gossip stay on 127.0.0.1.
type node struct {
	id        string
	idx       int
	region    string // region the node serves
	ip        string // own loopback address, identifies it to the proxies
	api       string // 127.0.0.1:port
	cluster   string // real cluster listener ip:port
	advertise string // the proxy in front of cluster
	gossip    string
	wan       string // WAN gossip address (region-failover)
	dataDir   string
	logPath   string
	clockFile string // --faults-clock-file; "" without a faults build
	netns     string // network namespace the node runs in (--net netns)
	gen       int    // incarnation: 1, then +1 each time the node is replaced
	args      []string
	// newCert makes a certificate for the node's current id (makeNodeCert).
	newCert func(nd *node) (string, error)

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	running bool
	paused  bool
}

type nodes struct {
	bin   string
	list  []*node
	creds rootCreds
}

type rootCreds struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
}

// freePort returns a port free for TCP (and UDP, for gossip) on ip.
func freePort(ip string, udp bool) (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if udp {
			u, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				continue
			}
			u.Close()
		}
		return port, nil
	}
	return 0, errors.New("no free port")
}

// handedOut holds every address freeAddr returned in this process: the
// probe listener is closed at once, so the OS may offer the same port
// again before its user binds it (a CI run once gave a node's API and its
// proxy the same port).
var (
	handedOutMu sync.Mutex
	handedOut   = map[string]bool{}
)

func freeAddr(ip string, udp bool) (string, error) {
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for range 100 {
		p, err := freePort(ip, udp)
		if err != nil {
			return "", err
		}
		a := net.JoinHostPort(ip, strconv.Itoa(p))
		if !handedOut[a] {
			handedOut[a] = true
			return a, nil
		}
	}
	return "", errors.New("no free port not handed out already")
}

// buildBinary builds ./cmd/coffer (with the given build tags) into dir.
func buildBinary(dir, tags string) (string, error) {
	bin := filepath.Join(dir, "coffer")
	args := []string{"build", "-o", bin}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, "./cmd/coffer")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/coffer: %v\n%s", err, out)
	}
	return bin, nil
}

// setupNodes prepares n nodes under dir (addresses, root key, credentials)
// without starting them. extra is appended to every node's arguments.
// faults says bin is a faults build: nodes then get a clock offset file.
// netns puts node i in namespace cj-n<i+1> (startNetns made them) on
// fixed ports of its own address; otherwise it gets loopback addresses
// and a proxy address to advertise.
func setupNodes(bin, dir string, n int, creds rootCreds, extra []string, faults bool, netns *netnsNet) (*nodes, error) {
	pki, err := setupPKI(bin, dir, creds)
	if err != nil {
		return nil, err
	}
	keyFile := filepath.Join(dir, "root.key")
	if err := genRootKey(bin, keyFile); err != nil {
		return nil, err
	}
	return setupRegion(bin, dir, regionSpec{name: region, prefix: "n", ipBase: 11, n: n, keyFile: keyFile, proxied: true},
		pki, creds, extra, faults, netns)
}

// runPKI is what every node of a run shares, whatever its region: the
// CA that signs every node certificate, the gossip key (LAN and WAN
// pools) and the root credentials file each region bootstraps with.
type runPKI struct {
	caFile, gossipKey, credFile string
}

// setupPKI makes the run's CA (and makes the clients trust it), gossip
// key and credentials file under dir.
func setupPKI(bin, dir string, creds rootCreds) (runPKI, error) {
	var p runPKI
	var err error
	if p.caFile, err = makeCA(bin, dir); err != nil {
		return p, err
	}
	p.gossipKey = filepath.Join(dir, "gossip.key")
	key, err := exec.Command(bin, "operator", "gossip", "keygen").Output()
	if err != nil {
		return p, fmt.Errorf("gossip keygen: %v", err)
	}
	if err := os.WriteFile(p.gossipKey, key, 0o600); err != nil {
		return p, err
	}
	p.credFile = filepath.Join(dir, "credentials.json")
	b, _ := json.Marshal(creds)
	if err := os.WriteFile(p.credFile, b, 0o600); err != nil {
		return p, err
	}
	return p, nil
}

// genRootKey writes a new root key to path (each region has its own).
func genRootKey(bin, path string) error {
	if out, err := exec.Command(bin, "operator", "root-key", "generate", "--out", path).CombinedOutput(); err != nil {
		return fmt.Errorf("root-key generate: %v: %s", err, out)
	}
	return nil
}

// regionSpec names one region's nodes: region name, node id prefix
// (node i is prefix+(i+1)), the first loopback address of their cluster
// ports (127.0.0.ipBase), how many, the region's root key file, and
// whether each advertises a proxy address in front of its cluster port
// (otherwise the cluster address itself).
type regionSpec struct {
	name, prefix string
	ipBase, n    int
	keyFile      string
	proxied      bool
}

// setupRegion prepares the nodes of one region (see setupNodes).
func setupRegion(bin, dir string, rs regionSpec, pki runPKI, creds rootCreds, extra []string, faults bool, netns *netnsNet) (*nodes, error) {
	ns := &nodes{bin: bin, creds: creds}
	for i := range rs.n {
		nd := &node{id: fmt.Sprintf("%s%d", rs.prefix, i+1), idx: i, region: rs.name, ip: fmt.Sprintf("127.0.0.%d", rs.ipBase+i), gen: 1}
		var err error
		switch {
		case netns != nil:
			nd.netns = netns.nsName(i)
			nd.ip, nd.api, nd.cluster, nd.gossip = netns.addrs(i)
			nd.advertise = nd.cluster
		default:
			if nd.api, err = freeAddr("127.0.0.1", false); err != nil {
				return nil, err
			}
			if nd.cluster, err = freeAddr(nd.ip, false); err != nil {
				return nil, err
			}
			nd.advertise = nd.cluster
			if rs.proxied {
				if nd.advertise, err = freeAddr("127.0.0.1", false); err != nil {
					return nil, err
				}
			}
			if nd.gossip, err = freeAddr("127.0.0.1", true); err != nil {
				return nil, err
			}
		}
		nd.dataDir = filepath.Join(dir, "nodes", nd.id, "data")
		nd.logPath = filepath.Join(dir, "nodes", nd.id, "coffer.log")
		if faults {
			nd.clockFile = filepath.Join(dir, "nodes", nd.id, "clock-offset")
		}
		if err := os.MkdirAll(nd.dataDir, 0o700); err != nil {
			return nil, err
		}
		ns.list = append(ns.list, nd)
	}
	for _, nd := range ns.list {
		var join []string
		for _, o := range ns.list {
			if o != nd {
				join = append(join, o.gossip)
			}
		}
		nd.args = []string{"server", "--node-id", nd.id, "--region", nd.region, "--data-dir", nd.dataDir,
			"--api-addr", nd.api, "--cluster-addr", nd.cluster, "--cluster-advertise", nd.advertise,
			"--gossip-addr", nd.gossip, "--join", joinList(join), "--bootstrap-expect", strconv.Itoa(rs.n),
			"--root-key-file", rs.keyFile, "--bootstrap-credentials-file", pki.credFile,
			"--gossip-key-file", pki.gossipKey, "--tls-ca-file", pki.caFile}
		// Every port encrypted, as in production: the node's certificate
		// names it and the API address the clients dial. The proxy passes
		// the TLS bytes through unchanged.
		nd.newCert = func(nd *node) (string, error) { return makeNodeCert(bin, dir, nd) }
		cert, err := nd.newCert(nd)
		if err != nil {
			return nil, err
		}
		nd.args = append(nd.args, "--tls-cert-file", cert+".pem", "--tls-key-file", cert+"-key.pem")
		if nd.clockFile != "" {
			nd.args = append(nd.args, "--faults-clock-file", nd.clockFile)
		}
		// extra goes last: the negative control drops its sticky timeouts
		// from the end of the arguments when it restarts the followers.
		nd.args = append(nd.args, extra...)
	}
	return ns, nil
}

// setClockOffset makes the node's clock run d off real time (the node
// re-reads the file every 100 ms). A node without a clock file (not a
// faults build) can only be at offset 0.
func (nd *node) setClockOffset(d time.Duration) error {
	if nd.clockFile == "" {
		if d == 0 {
			return nil
		}
		return errors.New("clock offsets need a faults build of coffer")
	}
	tmp := nd.clockFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(d.String()+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, nd.clockFile)
}

// replace turns a stopped node into a fresh machine at the same
// addresses: its data dir is emptied and it gets the next node id
// (n2, n2-g2, n2-g3, ...), as an operator replacing a lost server does.
func (nd *node) replace() error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.running {
		return errors.New("still running")
	}
	if err := os.RemoveAll(nd.dataDir); err != nil {
		return err
	}
	if err := os.MkdirAll(nd.dataDir, 0o700); err != nil {
		return err
	}
	nd.gen++
	nd.id = fmt.Sprintf("n%d-g%d", nd.idx+1, nd.gen)
	// A new machine gets a certificate of its own, naming its new id.
	cert, err := nd.newCert(nd)
	if err != nil {
		return err
	}
	for i := range nd.args[:len(nd.args)-1] {
		switch nd.args[i] {
		case "--node-id":
			nd.args[i+1] = nd.id
		case "--tls-cert-file":
			nd.args[i+1] = cert + ".pem"
		case "--tls-key-file":
			nd.args[i+1] = cert + "-key.pem"
		}
	}
	return nil
}

func joinList(xs []string) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// start launches the process (again, after a kill) with the same
// arguments and data dir; output is appended to its log.
func (nd *node) start(bin string) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.running {
		return nil
	}
	logf, err := os.OpenFile(nd.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== jepsen: start %s at %s\n", nd.id, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, nd.args...)
	if nd.netns != "" {
		// ip netns exec execs the binary: the pid is coffer's own.
		cmd = exec.Command("ip", append([]string{"netns", "exec", nd.netns, bin}, nd.args...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	nd.cmd, nd.done, nd.running, nd.paused = cmd, done, true, false
	return nil
}

func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if len(kv) < 7 || kv[:7] != "COFFER_" {
			env = append(env, kv)
		}
	}
	return env
}

// kill sends SIGKILL and waits for the process to exit.
func (nd *node) kill() {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if !nd.running {
		return
	}
	syscall.Kill(nd.cmd.Process.Pid, syscall.SIGKILL)
	<-nd.done
	nd.running, nd.paused = false, false
}

func (nd *node) signal(sig syscall.Signal) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if !nd.running {
		return
	}
	syscall.Kill(nd.cmd.Process.Pid, sig)
	nd.paused = sig == syscall.SIGSTOP
}

// stop resumes and terminates the process: SIGTERM, then SIGKILL.
func (nd *node) stop() {
	nd.mu.Lock()
	if !nd.running {
		nd.mu.Unlock()
		return
	}
	pid, done := nd.cmd.Process.Pid, nd.done
	syscall.Kill(pid, syscall.SIGCONT)
	syscall.Kill(pid, syscall.SIGTERM)
	nd.mu.Unlock()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	nd.kill()
	nd.mu.Lock()
	nd.running = false
	nd.mu.Unlock()
}

// name is the node's current id (member faults change it).
func (nd *node) name() string {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.id
}

func (nd *node) isRunning() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.running
}

// health is the part of /v1/health the harness uses.
type health struct {
	NodeID       string `json:"node_id"`
	State        string `json:"state"`
	LeaderID     string `json:"leader_id"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	Serving      bool   `json:"serving"`
}

var healthClient = &http.Client{Timeout: time.Second, Transport: apiTransport}

// apiTransport trusts the CA of the run (makeCA), for the API's HTTPS.
var apiTransport = http.DefaultTransport.(*http.Transport).Clone()

// makeCA makes the run's CA with the binary, as an operator would, and
// makes the clients trust it.
func makeCA(bin, dir string) (string, error) {
	if out, err := exec.Command(bin, "operator", "tls", "ca", "create", "--out-dir", dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("tls ca create: %v: %s", err, out)
	}
	caFile := filepath.Join(dir, "coffer-ca.pem")
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return "", errors.New("tls ca create wrote no certificate")
	}
	apiTransport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return caFile, nil
}

// makeNodeCert makes a node's certificate and key and returns their path
// without the .pem / -key.pem ending.
func makeNodeCert(bin, dir string, nd *node) (string, error) {
	host, _, _ := strings.Cut(nd.api, ":")
	out, err := exec.Command(bin, "operator", "tls", "cert", "create", "--node", nd.id, "--region", nd.region,
		"--ca", filepath.Join(dir, "coffer-ca.pem"), "--ca-key", filepath.Join(dir, "coffer-ca-key.pem"),
		"--out-dir", dir, "--additional-ipaddress", host).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("tls cert create: %v: %s", err, out)
	}
	return filepath.Join(dir, nd.region+"-server-"+nd.id), nil
}

func (nd *node) health(ctx context.Context) (health, error) {
	var h health
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+nd.api+"/v1/health", nil)
	if err != nil {
		return h, err
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&h)
	return h, err
}

// leader returns the node that reports itself leader with the highest
// term, or nil.
func (ns *nodes) leader(ctx context.Context) *node {
	var best *node
	var term uint64
	for _, nd := range ns.list {
		if !nd.isRunning() {
			continue
		}
		h, err := nd.health(ctx)
		if err == nil && h.State == "leader" && h.Term >= term {
			best, term = nd, h.Term
		}
	}
	return best
}

// waitLeader polls until some node leads.
// up starts every node and waits for a leader and for the nodes to
// converge: a scenario's cluster, ready for the workload.
func (ns *nodes) up(ctx context.Context, bin string) error {
	for _, nd := range ns.list {
		if err := nd.start(bin); err != nil {
			return err
		}
	}
	if ns.waitLeader(ctx, 60*time.Second) == nil {
		return errors.New("no leader within 60s of start (see nodes/*/coffer.log)")
	}
	_, err := ns.waitConverged(ctx, 60*time.Second)
	return err
}

// createFiles creates the run's record files in dir, by name; closeAll
// closes them all.
func createFiles(dir string, names ...string) (files map[string]*os.File, closeAll func(), err error) {
	files = map[string]*os.File{}
	closeAll = func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, name := range names {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		files[name] = f
	}
	return files, closeAll, nil
}

func (ns *nodes) waitLeader(ctx context.Context, timeout time.Duration) *node {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if l := ns.leader(ctx); l != nil {
			return l
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// waitConverged polls until every node serves and all report the same
// applied index (sampled twice, 200 ms apart, with no change).
func (ns *nodes) waitConverged(ctx context.Context, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var idx uint64
		same := true
		for i, nd := range ns.list {
			h, err := nd.health(ctx)
			if err != nil || !h.Serving {
				same = false
				break
			}
			if i == 0 {
				idx = h.AppliedIndex
			} else if h.AppliedIndex != idx {
				same = false
			}
		}
		if same {
			key := strconv.FormatUint(idx, 10)
			if key == last {
				return idx, nil
			}
			last = key
		} else {
			last = ""
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, errors.New("nodes did not converge on one applied index")
}
