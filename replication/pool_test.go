package replication

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// member is a test server: what it publishes can change.
type member struct {
	mu   sync.Mutex
	node Node
}

func (m *member) self() Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.node
}

func (m *member) set(f func(*Node)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.node)
}

func startMember(t *testing.T, n Node, key []byte, join ...string) (*Pool, *member) {
	t.Helper()
	m := &member{node: n}
	p, err := StartPool(PoolConfig{BindAddr: "127.0.0.1:0", Join: join, GossipKey: key, Local: true, Self: m.self})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Leave(time.Second) })
	return p, m
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Servers of two regions find each other through any one address: every
// server sees every region, its leader and its replication key, and a
// change (a new leader) reaches the others; a server without the pool's
// gossip key is not let in.
func TestPool_RegionsFindEachOther(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	east, west := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	p1, _ := startMember(t, Node{Name: "n1", Region: "us-east-1", APIAddr: "10.0.0.1:8201", PublicKey: east, Leader: true, Serving: true}, key)
	_, m2 := startMember(t, Node{Name: "n2", Region: "us-east-1", PublicKey: east, Serving: true}, key, p1.Addr())
	p3, m3 := startMember(t, Node{Name: "n1", Region: "eu-west-1", APIAddr: "10.1.0.1:8201", PublicKey: west}, key, p1.Addr())
	eventually(t, "three members everywhere", func() bool { return len(p3.Members()) == 3 && len(p1.Members()) == 3 })
	regions := Regions(p3.Members())
	if len(regions) != 2 || regions[0].Name != "eu-west-1" || regions[1].Name != "us-east-1" {
		t.Fatalf("regions: %+v", regions)
	}
	if us := regions[1]; us.Leader != "n1" || us.LeaderAPI != "10.0.0.1:8201" || us.Servers != 2 || us.Serving != 2 || us.KeyMismatch || us.Fingerprint == "" {
		t.Fatalf("us-east-1: %+v", us)
	}
	if regions[0].Fingerprint == regions[1].Fingerprint {
		t.Fatal("two regions with different keys show the same fingerprint")
	}
	// A change is gossiped: eu-west-1 gets a leader, n2 takes over us-east-1.
	m3.set(func(n *Node) { n.Leader, n.Serving = true, true })
	m2.set(func(n *Node) { n.Leader = true })
	eventually(t, "the changes to reach n1.us-east-1", func() bool {
		r := Regions(p1.Members())
		return len(r) == 2 && r[0].Leader == "n1" && r[0].Serving == 1 && r[1].Servers == 2
	})
	// A server of the pool with the wrong key joins nothing.
	stranger, err := StartPool(PoolConfig{BindAddr: "127.0.0.1:0", GossipKey: bytes.Repeat([]byte{9}, 32), Local: true,
		Self: func() Node { return Node{Name: "x", Region: "ap-south-1"} }})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Leave(time.Second)
	if _, err := stranger.ml.Join([]string{p1.Addr()}); err == nil {
		t.Fatal("a member with another gossip key joined")
	}
	time.Sleep(200 * time.Millisecond)
	for _, n := range p1.Members() {
		if n.Region == "ap-south-1" {
			t.Fatal("a member with another gossip key is in the pool")
		}
	}
}
