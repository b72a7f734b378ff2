package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/cofferhq/coffer/tlsutil"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// The cluster port carries Raft, Coffer's internal RPC and the
// replication calls between regions. With TLS (every server outside
// --insecure-plaintext), a connection is mutual TLS from its first byte:
// the listener completes the handshake and checks that the peer's
// certificate, from a CA it trusts, names a Coffer server before it reads
// anything else, so a peer without one never gets a byte read. Inside the connection (or at once, in
// plaintext), the dialer writes one byte; the listener reads it and hands
// the connection to the right consumer.
//
// Servers of other regions (with a certificate of a CA this node trusts)
// complete the handshake too, but are served only on muxReplication: a
// connection of theirs with any other first byte is closed, and logged.
const (
	muxRaft        byte = 'R'
	muxRPC         byte = 'C'
	muxReplication byte = 'X'
)

// RemotePeer is who is at the other end of a cluster connection, as its
// certificate names it ("" in plaintext, where nothing is checked).
type RemotePeer struct {
	Node, Region string
}

// mux accepts cluster connections and demultiplexes them by first byte.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	// tls is nil in plaintext (dev, tests of the plaintext path); region
	// is the only region whose servers it accepts.
	tls       TLS
	region    string
	bindIP    net.IP
	logger    hclog.Logger
	raftConns chan *raftConn
	rpc       func(net.Conn)
	// replication serves muxReplication connections (HandleReplication);
	// nil closes them.
	replMu      sync.RWMutex
	replication func(net.Conn, RemotePeer)

	closeOnce sync.Once
	closed    chan struct{}
	// open holds the accepted connections still being served. Closing the
	// listener does not close them, and a peer's pooled RPC connection to a
	// node that shut down in-process would otherwise go on being answered
	// by the stopped node (a cancelled context, no Raft) after a new node
	// took over its address; close ends them all.
	openMu sync.Mutex
	open   map[net.Conn]struct{}
	// raftServed counts the connections handed to Raft's transport that
	// it has not closed yet. Its handler may be applying a heartbeat to
	// the log and stable stores; the node waits for them (waitRaft)
	// before it closes the stores, or Raft panics writing to a closed one.
	raftServed sync.WaitGroup
}

// TLS is the cluster port's TLS material; *tlsutil.Reloader is the real
// one, which picks up certificates reloaded on SIGHUP for new connections.
type TLS interface {
	// ServerConfig accepts a connection: it requires and verifies the
	// client's certificate against the region's CA.
	ServerConfig() *tls.Config
	// ClientConfig dials a peer that must present a certificate for
	// serverName from the region's CA, and presents this node's.
	ClientConfig(serverName string) *tls.Config
}

func newMux(ln net.Listener, advertise net.Addr, t TLS, region string, logger hclog.Logger) *mux {
	m := &mux{ln: ln, advertise: advertise, tls: t, region: region, logger: logger,
		raftConns: make(chan *raftConn, 16), closed: make(chan struct{}), open: map[net.Conn]struct{}{}}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsUnspecified() {
		m.bindIP = tcp.IP
	}
	return m
}

// serve runs the accept loop until the listener closes.
func (m *mux) serve() {
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.logger.Warn("accept failed", "error", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !m.track(conn) {
			conn.Close()
			return
		}
		go func() {
			if !m.route(conn) {
				m.untrack(conn)
			}
		}()
	}
}

// route serves an accepted connection; it reports whether the connection
// was handed to Raft's transport, which closes it (and so untracks it).
func (m *mux) route(conn net.Conn) (toRaft bool) {
	raw := conn
	// A peer that connects and sends nothing must not hold a goroutine forever.
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var peer RemotePeer
	if m.tls != nil {
		tc, p, err := m.accept(conn)
		if err != nil {
			m.logger.Warn("refused cluster connection", "remote", conn.RemoteAddr(), "error", err)
			conn.Close()
			return false
		}
		conn, peer = tc, p
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		conn.Close()
		return false
	}
	if m.tls != nil && peer.Region != m.region && b[0] != muxReplication {
		// Other regions' servers get the replication calls only, never
		// Raft or the region's own RPC.
		m.logger.Warn("refused cluster connection", "remote", conn.RemoteAddr(),
			"error", fmt.Sprintf("node %s of region %s may make replication calls only, not %q", peer.Node, peer.Region, b[0]))
		conn.Close()
		return false
	}
	conn.SetDeadline(time.Time{})
	switch b[0] {
	case muxRaft:
		m.raftServed.Add(1)
		rc := &raftConn{Conn: conn, raw: raw, m: m}
		select {
		case m.raftConns <- rc:
		case <-m.closed:
			rc.Close()
		}
		return true
	case muxRPC:
		m.rpc(conn)
	case muxReplication:
		m.replMu.RLock()
		h := m.replication
		m.replMu.RUnlock()
		if h == nil {
			m.logger.Warn("replication connection, but this node serves no replication; closing", "remote", conn.RemoteAddr(), "region", peer.Region)
			conn.Close()
			return false
		}
		h(conn, peer)
	default:
		m.logger.Warn("unknown connection type; closing", "byte", b[0], "remote", conn.RemoteAddr())
		conn.Close()
	}
	return false
}

func (m *mux) close() {
	m.closeOnce.Do(func() {
		close(m.closed)
		m.ln.Close()
		m.openMu.Lock()
		for c := range m.open {
			c.Close()
		}
		m.open = nil
		m.openMu.Unlock()
		// Raft connections accepted but never taken by the transport.
		for {
			select {
			case c := <-m.raftConns:
				c.Close()
			default:
				return
			}
		}
	})
}

// waitRaft waits, at most timeout, until Raft's transport has closed
// every connection it was handed: after close, each handler returns once
// the request it is serving is done.
func (m *mux) waitRaft(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() {
		m.raftServed.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// raftConn is a connection served by Raft's transport; its Close, which
// the transport's handler defers, marks the handler done.
type raftConn struct {
	net.Conn
	raw  net.Conn // as accepted, the key of mux.open
	m    *mux
	once sync.Once
}

func (c *raftConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.m.untrack(c.raw)
		c.m.raftServed.Done()
	})
	return err
}

// track records an accepted connection until it is served: until route
// returns, or for a Raft connection until the transport closes it.
// false: the mux is closed.
func (m *mux) track(c net.Conn) bool {
	m.openMu.Lock()
	defer m.openMu.Unlock()
	if m.open == nil {
		return false
	}
	m.open[c] = struct{}{}
	return true
}

func (m *mux) untrack(c net.Conn) {
	m.openMu.Lock()
	delete(m.open, c)
	m.openMu.Unlock()
}

// accept completes the server side of the TLS handshake (the client must
// present a certificate of a CA this node trusts) and returns who the
// peer is; route decides what a peer of another region may do.
func (m *mux) accept(conn net.Conn) (net.Conn, RemotePeer, error) {
	tc := tls.Server(conn, m.tls.ServerConfig())
	if err := tc.Handshake(); err != nil {
		return nil, RemotePeer{}, fmt.Errorf("TLS handshake: %w", err)
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, RemotePeer{}, errors.New("no client certificate")
	}
	node, region, err := tlsutil.PeerIdentity(certs[0])
	if err != nil {
		return nil, RemotePeer{}, err
	}
	return tc, RemotePeer{Node: node, Region: region}, nil
}

// dial opens a cluster connection of the given type, from the bind IP so a
// peer (or a fault-injecting proxy) sees where it came from. With TLS, the
// peer must present a server certificate of this region
// (server.<region>.coffer) from the region's CA.
func (m *mux) dial(addr string, kind byte, timeout time.Duration) (net.Conn, error) {
	return m.dialRegion(addr, m.region, kind, timeout)
}

// dialRegion is dial to a server of region, whose certificate must name
// server.<region>.coffer.
func (m *mux) dialRegion(addr, region string, kind byte, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if m.bindIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: m.bindIP}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(timeout))
	if m.tls != nil {
		tc := tls.Client(conn, m.tls.ClientConfig(tlsutil.ServerName(region)))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	if _, err := conn.Write([]byte{kind}); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// raftLayer adapts the mux to raft.StreamLayer.
type raftLayer struct{ m *mux }

var _ raft.StreamLayer = raftLayer{}

func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftConns:
		return c, nil
	case <-l.m.closed:
		return nil, net.ErrClosed
	}
}

func (l raftLayer) Close() error { l.m.close(); return nil }

func (l raftLayer) Addr() net.Addr { return l.m.advertise }

func (l raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.m.dial(string(addr), muxRaft, timeout)
}

// HandleReplication serves the replication calls of other regions'
// servers (and of this region's) on the cluster port: h gets each
// connection after its first byte, with the peer its certificate names,
// and owns it. Until it is set, such connections are closed.
func (n *Node) HandleReplication(h func(conn net.Conn, peer RemotePeer)) {
	n.mux.replMu.Lock()
	defer n.mux.replMu.Unlock()
	n.mux.replication = h
}

// DialReplication opens a replication connection to a server of region
// at its cluster address: mutual TLS, the server's certificate must name
// a server of that region (from a CA this node trusts), and this node's
// names it.
func (n *Node) DialReplication(addr, region string, timeout time.Duration) (net.Conn, error) {
	return n.mux.dialRegion(addr, region, muxReplication, timeout)
}
