package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// The network namespace mode (--net netns, root only; research §4.2):
// every node runs in its own namespace cj-n<i> with one veth into a bridge
// cj-br0 in the harness's namespace, on a private /24 that exists only on
// that bridge, so no packet leaves the machine. Unlike the proxy, a cut
// here stops every packet between two nodes — Raft, internal RPC and
// memberlist gossip (TCP and UDP) alike — so gossip sees the cut-off nodes
// fail, as it would on real machines. A cut is a pair of blackhole routes,
// one in each node's namespace (no nftables needed); the harness's own
// address is never in one, so clients and status polls always pass.

// The harness's namespaces and subnet; tests use their own, so a test run
// never touches a harness run's namespaces.
const (
	netnsPrefix = "cj-"
	netnsSubnet = "10.213.0." // a /24: the harness is .1, node i is .(11+i)
)

// network is how the nemesis cuts links between nodes: the TCP proxy or
// network namespaces.
type network interface {
	grudge(cuts [][2]int) // cut exactly these links, heal every other
	isolate(i, n int)     // cut every link of node i
	healAll()
	close()
}

type netnsNet struct {
	prefix string // of every name: <prefix>n<i>, <prefix>v<i>, <prefix>br0
	subnet string // first three octets and a dot
	n      int
	mu     sync.Mutex
	cut    map[[2]int]bool
}

func (m *netnsNet) nsName(i int) string { return fmt.Sprintf("%sn%d", m.prefix, i+1) }
func (m *netnsNet) nsIP(i int) string   { return fmt.Sprintf("%s%d", m.subnet, 11+i) }
func (m *netnsNet) bridge() string      { return m.prefix + "br0" }

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// netnsAvailable says why namespace mode cannot run here, or nil.
func netnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("netns mode needs root; use --net proxy")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("netns mode needs the ip command (iproute2); use --net proxy")
	}
	return nil
}

// cleanup deletes what an earlier run may have left: namespaces named
// <prefix>n<digits> and the bridge. Deleting a namespace deletes its veth
// and with it the peer on the bridge.
func (m *netnsNet) cleanup() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, m.prefix+"n")
		if ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			exec.Command("ip", "netns", "del", name).Run()
		}
	}
	exec.Command("ip", "link", "del", m.bridge()).Run()
}

// startNetns creates the bridge and n namespaces (names from prefix,
// addresses in subnet, e.g. "10.213.0."). It refuses to run when the
// subnet is already routed here (something else uses it).
func startNetns(prefix, subnet string, n int) (*netnsNet, error) {
	if err := netnsAvailable(); err != nil {
		return nil, err
	}
	m := &netnsNet{prefix: prefix, subnet: subnet, n: n, cut: map[[2]int]bool{}}
	m.cleanup()
	if out, _ := exec.Command("ip", "route", "show", subnet+"0/24").Output(); len(strings.TrimSpace(string(out))) > 0 {
		return nil, fmt.Errorf("%s0/24 is already routed on this machine (%s); not touching it", subnet, strings.TrimSpace(string(out)))
	}
	steps := [][]string{
		{"link", "add", m.bridge(), "type", "bridge"},
		{"addr", "add", subnet + "1/24", "dev", m.bridge()},
		{"link", "set", m.bridge(), "up"},
	}
	for i := range n {
		ns, veth := m.nsName(i), fmt.Sprintf("%sv%d", prefix, i+1)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"link", "set", veth, "master", m.bridge(), "up"},
			[]string{"-n", ns, "addr", "add", m.nsIP(i) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			m.cleanup()
			return nil, err
		}
	}
	return m, nil
}

// setCut adds or removes the blackhole routes between a and b. A local
// sender to a blackholed address gets an error and nothing leaves, in both
// directions, so the link is dead for TCP and UDP; established
// connections stall and time out as behind a firewall that drops.
func (m *netnsNet) setCut(a, b int, cut bool) {
	l := link(a, b)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cut[l] == cut {
		return
	}
	op := "del"
	if cut {
		op = "add"
	}
	for _, p := range [][2]int{{a, b}, {b, a}} {
		if err := ipCmd("-n", m.nsName(p[0]), "route", op, "blackhole", m.nsIP(p[1])+"/32"); err != nil {
			fmt.Fprintln(os.Stderr, "jepsen: netns:", err)
		}
	}
	m.cut[l] = cut
}

func (m *netnsNet) isolate(i, n int) {
	for j := range n {
		if j != i {
			m.setCut(i, j, true)
		}
	}
}

func (m *netnsNet) grudge(cuts [][2]int) {
	want := map[[2]int]bool{}
	for _, c := range cuts {
		want[link(c[0], c[1])] = true
	}
	for a := range m.n {
		for b := a + 1; b < m.n; b++ {
			m.setCut(a, b, want[link(a, b)])
		}
	}
}

func (m *netnsNet) healAll() { m.grudge(nil) }

// close removes the namespaces and the bridge. The nodes must be stopped
// first (a process keeps its namespace's network alive, not its name).
func (m *netnsNet) close() { m.cleanup() }

// addrs are node i's addresses in namespace mode: fixed ports on its own
// address.
func (m *netnsNet) addrs(i int) (ip, api, cluster, gossip string) {
	ip = m.nsIP(i)
	return ip, net.JoinHostPort(ip, "8200"), net.JoinHostPort(ip, "8201"), net.JoinHostPort(ip, "8301")
}
