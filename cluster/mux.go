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

// The cluster port carries Raft and Coffer's internal RPC. With TLS (every
// server outside --insecure-plaintext), a connection is mutual TLS from its
// first byte: the listener completes the handshake and checks that the
// peer's certificate, issued by the region's CA, names a server of this
// region before it reads anything else, so a peer without one never gets a
// byte of Raft or RPC read. Inside the connection (or at once, in
// plaintext), the dialer writes one byte; the listener reads it and hands
// the connection to the right consumer.
const (
	muxRaft byte = 'R'
	muxRPC  byte = 'C'
)

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
	raftConns chan net.Conn
	rpc       func(net.Conn)

	closeOnce sync.Once
	closed    chan struct{}
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
		raftConns: make(chan net.Conn, 16), closed: make(chan struct{})}
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
		go m.route(conn)
	}
}

func (m *mux) route(conn net.Conn) {
	// A peer that connects and sends nothing must not hold a goroutine forever.
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if m.tls != nil {
		tc, err := m.accept(conn)
		if err != nil {
			m.logger.Warn("refused cluster connection", "remote", conn.RemoteAddr(), "error", err)
			conn.Close()
			return
		}
		conn = tc
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	switch b[0] {
	case muxRaft:
		select {
		case m.raftConns <- conn:
		case <-m.closed:
			conn.Close()
		}
	case muxRPC:
		m.rpc(conn)
	default:
		m.logger.Warn("unknown connection type; closing", "byte", b[0], "remote", conn.RemoteAddr())
		conn.Close()
	}
}

func (m *mux) close() {
	m.closeOnce.Do(func() {
		close(m.closed)
		m.ln.Close()
	})
}

// accept completes the server side of the TLS handshake (the client must
// present a certificate of the region's CA) and checks that the peer is a
// server of this region.
func (m *mux) accept(conn net.Conn) (net.Conn, error) {
	tc := tls.Server(conn, m.tls.ServerConfig())
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no client certificate")
	}
	node, region, err := tlsutil.PeerIdentity(certs[0])
	if err != nil {
		return nil, err
	}
	if region != m.region {
		// Other regions' servers will be accepted on the replication
		// calls only, never on Raft or the region's own RPC.
		return nil, fmt.Errorf("certificate of node %s names region %s, not %s", node, region, m.region)
	}
	return tc, nil
}

// dial opens a cluster connection of the given type, from the bind IP so a
// peer (or a fault-injecting proxy) sees where it came from. With TLS, the
// peer must present a server certificate of this region
// (server.<region>.coffer) from the region's CA.
func (m *mux) dial(addr string, kind byte, timeout time.Duration) (net.Conn, error) {
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
		tc := tls.Client(conn, m.tls.ClientConfig(tlsutil.ServerName(m.region)))
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
