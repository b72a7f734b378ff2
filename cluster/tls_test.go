package cluster

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/cofferhq/coffer/tlsutil/tlstest"
	"github.com/hashicorp/go-hclog"
)

// The cluster port of a TLS node answers only servers of its own region
// with a certificate of the region's CA. Each intruder below asks the
// leader to remove a follower (opRemoveServer) and, over raw Raft, to
// accept entries; none gets a byte read, and the configuration stays.
func TestTLS_ClusterPortRefusesPeersWithoutARegionCertificate(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	victim := c.follower()
	voters := leader.voterCount()

	otherCA, err := tlstest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	intruders := map[string]TLS{
		"plaintext (the old RPC path)":    nil,
		"a certificate of another CA":     otherCA.Node(t, "n9", "us-east-1"),
		"a certificate of another region": tlstest.Shared().Node(t, "n9", "eu-west-1"),
		"no client certificate":           noClientCert{tlstest.Shared().Node(t, "n9", "us-east-1")},
	}
	for name, material := range intruders {
		t.Run(name, func(t *testing.T) {
			// The dialer expects the leader's region, so only the
			// listener's checks decide.
			m := &mux{tls: material, region: "us-east-1", logger: hclog.NewNullLogger()}
			conn, err := m.dial(leader.ClusterAddr(), muxRPC, 2*time.Second)
			if err == nil {
				rc := newRPCConn(conn)
				rc.enc.Encode(&rpcRequest{Op: opRemoveServer, Data: []byte(victim.cfg.NodeID)})
				rc.w.Flush()
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				var resp rpcResponse
				if err := rc.dec.Decode(&resp); err == nil {
					t.Fatalf("the leader answered the intruder: %+v", resp)
				}
				conn.Close()
			}
			if got := leader.voterCount(); got != voters {
				t.Fatalf("voters changed from %d to %d", voters, got)
			}
		})
	}
	// A node of the region is served: the same request shape gets an
	// answer (opHasState changes nothing).
	m := &mux{tls: tlstest.Shared().Node(t, "n9", "us-east-1"), region: "us-east-1", logger: hclog.NewNullLogger()}
	conn, err := m.dial(leader.ClusterAddr(), muxRPC, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pool := &rpcPool{idle: map[string][]*rpcConn{}, limit: 1,
		dial: func(string, time.Duration) (net.Conn, error) { return conn, nil }}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := pool.call(ctx, leader.ClusterAddr(), &rpcRequest{Op: opHasState}); err != nil {
		t.Fatalf("a server of the region was not answered: %v", err)
	}
}

// noClientCert dials with the CA trusted but presents no certificate.
type noClientCert struct{ TLS }

func (n noClientCert) ClientConfig(serverName string) *tls.Config {
	cfg := n.TLS.ClientConfig(serverName)
	cfg.GetClientCertificate = nil
	return cfg
}

// A server of another region (a certificate of the same CA) is served on
// the replication calls, with its identity, and on nothing else; a
// replication dial checks that the server names the region it meant.
func TestTLS_OtherRegionsOnlyOnReplication(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	got := make(chan RemotePeer, 1)
	leader.HandleReplication(func(conn net.Conn, peer RemotePeer) {
		defer conn.Close()
		got <- peer
		conn.Write([]byte("hello " + peer.Region))
	})
	west := &mux{tls: tlstest.Shared().Node(t, "w1", "eu-west-1"), region: "eu-west-1", logger: hclog.NewNullLogger()}
	conn, err := west.dialRegion(leader.ClusterAddr(), "us-east-1", muxReplication, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "hello eu-west-1" {
		t.Fatalf("replication answer %q, %v", buf[:n], err)
	}
	if p := <-got; p.Node != "w1" || p.Region != "eu-west-1" {
		t.Fatalf("the handler saw %+v", p)
	}
	// Dialed as another region than the one it serves, the server is
	// refused by the dialer.
	if _, err := west.dialRegion(leader.ClusterAddr(), "eu-west-1", muxReplication, 2*time.Second); err == nil {
		t.Fatal("a us-east-1 server was accepted as eu-west-1")
	}
	// The node's own DialReplication reaches a server of its region too.
	peerConn, err := c.follower().DialReplication(leader.ClusterAddr(), "us-east-1", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	peerConn.Close()
	if p := <-got; p.Region != "us-east-1" {
		t.Fatalf("the handler saw %+v", p)
	}
}
