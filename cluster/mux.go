package cluster

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// The cluster port carries Raft and Coffer's internal RPC. The dialer
// writes one byte first; the listener reads it and hands the connection to
// the right consumer.
const (
	muxRaft byte = 'R'
	muxRPC  byte = 'C'
)

// mux accepts cluster connections and demultiplexes them by first byte.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	bindIP    net.IP
	logger    hclog.Logger
	raftConns chan net.Conn
	rpc       func(net.Conn)

	closeOnce sync.Once
	closed    chan struct{}
}

func newMux(ln net.Listener, advertise net.Addr, logger hclog.Logger) *mux {
	m := &mux{ln: ln, advertise: advertise, logger: logger,
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
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		conn.Close()
		return
	}
	conn.SetReadDeadline(time.Time{})
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

// dial opens a cluster connection of the given type, from the bind IP so a
// peer (or a fault-injecting proxy) sees where it came from.
func (m *mux) dial(addr string, kind byte, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if m.bindIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: m.bindIP}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte{kind}); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetWriteDeadline(time.Time{})
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
