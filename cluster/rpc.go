package cluster

import (
	"bufio"
	"context"
	"errors"
	"github.com/hashicorp/raft"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Internal RPC: a node forwards writes and read-index requests to the
// leader. One request at a time per connection; concurrency comes from a
// pool of connections, which also keeps the leader's Apply calls
// concurrent so Raft can batch them.

type rpcOp uint8

const (
	opApply     rpcOp = 1
	opReadIndex rpcOp = 2
	// opRemoveServer: a server leaving gracefully asks the leader to
	// remove it (Data is its node id).
	opRemoveServer rpcOp = 3
	// opAddServer: a server asks to be a voter (Data is "id\x00address").
	// Any node accepts it and forwards it to the leader.
	opAddServer rpcOp = 4
	// opHasState: does the peer have Raft state (a log, or a known
	// leader)? Index is nonzero if so. A node about to bootstrap asks its
	// peers first (gossip.go maybeBootstrap).
	opHasState rpcOp = 5
	// opRemovePeer and opTransferLeader: an operator's RemovePeer and
	// TransferLeader, sent to the leader (Data is the node id).
	opRemovePeer     rpcOp = 6
	opTransferLeader rpcOp = 7
	// opRestoreSnapshot: an operator's RestoreSnapshot, sent to the
	// leader (Data is the state stream).
	opRestoreSnapshot rpcOp = 8
)

type rpcRequest struct {
	Op   rpcOp
	Data []byte
	// Size is the length of a raw payload that follows the request on
	// the connection and becomes Data (a restore's state). Large payloads
	// go raw because msgpack decodes a long byte string in chunks that it
	// copies again at each one: quadratic, seconds for a few megabytes.
	Size int64 `codec:",omitempty"`
}

// maxRPCPayload bounds a raw payload a node accepts (Size).
const maxRPCPayload = 2 << 30

// rpcResponse carries a result or a typed error, never a string to parse.
type rpcResponse struct {
	Index  uint64
	Result *fsm.Result
	// Code and Message are set for an AWS-typed error from Apply.
	Code    string
	Message string
	// Unavailable is set when the leader could not serve: Reason says why
	// and Outcome whether the command may have been applied.
	Unavailable string
	Outcome     Outcome
	NotLeader   bool
}

var rpcHandle = &codec.MsgpackHandle{}

type rpcConn struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	enc  *codec.Encoder
	dec  *codec.Decoder
}

func newRPCConn(c net.Conn) *rpcConn {
	rc := &rpcConn{conn: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
	rc.enc = codec.NewEncoder(rc.w, rpcHandle)
	rc.dec = codec.NewDecoder(rc.r, rpcHandle)
	return rc
}

// rpcPool keeps idle connections per leader address.
type rpcPool struct {
	mu    sync.Mutex
	idle  map[string][]*rpcConn
	dial  func(addr string, timeout time.Duration) (net.Conn, error)
	limit int
}

func (p *rpcPool) get(addr string, timeout time.Duration) (*rpcConn, error) {
	p.mu.Lock()
	if conns := p.idle[addr]; len(conns) > 0 {
		c := conns[len(conns)-1]
		p.idle[addr] = conns[:len(conns)-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	c, err := p.dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	return newRPCConn(c), nil
}

func (p *rpcPool) put(addr string, c *rpcConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle[addr]) >= p.limit {
		c.conn.Close()
		return
	}
	p.idle[addr] = append(p.idle[addr], c)
}

func (p *rpcPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, conns := range p.idle {
		for _, c := range conns {
			c.conn.Close()
		}
		delete(p.idle, addr)
	}
}

// errSendFailed means the request never reached the peer: nothing applied.
type errSendFailed struct{ err error }

func (e errSendFailed) Error() string { return "send: " + e.err.Error() }

// call sends one request and waits for its response within ctx.
func (p *rpcPool) call(ctx context.Context, addr string, req *rpcRequest) (*rpcResponse, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	// A restore's state goes raw after the request (rpcRequest.Size), on
	// a connection that is closed after: it is not worth keeping.
	var payload []byte
	stream := req.Op == opRestoreSnapshot
	if stream {
		r := *req
		payload, r.Data, r.Size = req.Data, nil, int64(len(req.Data))
		req = &r
	}
	c, err := p.get(addr, time.Until(deadline))
	if err != nil {
		return nil, errSendFailed{err}
	}
	c.conn.SetDeadline(deadline)
	if err := c.enc.Encode(req); err == nil {
		if _, err = c.w.Write(payload); err != nil {
			c.conn.Close()
			return nil, errSendFailed{err}
		}
		err = c.w.Flush()
		if err != nil {
			c.conn.Close()
			return nil, errSendFailed{err}
		}
	} else {
		c.conn.Close()
		return nil, errSendFailed{err}
	}
	// Closing the connection is the only way to abandon a blocked read when
	// ctx ends before the deadline.
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	var resp rpcResponse
	err = c.dec.Decode(&resp)
	stopped := stop()
	if err != nil || !stopped {
		c.conn.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	if stream {
		c.conn.Close()
		return &resp, nil
	}
	c.conn.SetDeadline(time.Time{})
	p.put(addr, c)
	return &resp, nil
}

// serveRPC answers requests on one inbound connection until it closes.
func (n *Node) serveRPC(conn net.Conn) {
	defer conn.Close()
	rc := newRPCConn(conn)
	for {
		var req rpcRequest
		if err := rc.dec.Decode(&req); err != nil {
			return
		}
		if req.Size > 0 {
			if req.Size > maxRPCPayload {
				return
			}
			req.Data = make([]byte, req.Size)
			if _, err := io.ReadFull(rc.r, req.Data); err != nil {
				return
			}
		}
		timeout := n.cfg.RequestTimeout
		if req.Op == opRestoreSnapshot {
			timeout = restoreTimeout
		}
		ctx, cancel := context.WithTimeout(n.shutdownCtx, timeout)
		resp := n.handleRPC(ctx, &req)
		cancel()
		if err := rc.enc.Encode(resp); err != nil {
			return
		}
		if err := rc.w.Flush(); err != nil {
			return
		}
	}
}

func (n *Node) handleRPC(ctx context.Context, req *rpcRequest) *rpcResponse {
	switch req.Op {
	case opApply:
		if !n.IsLeader() {
			return &rpcResponse{NotLeader: true}
		}
		res, index, err := n.applyLocal(ctx, req.Data)
		return toResponse(res, index, err)
	case opReadIndex:
		index, err := n.leaderReadIndex(ctx)
		return toResponse(nil, index, err)
	case opAddServer:
		id, addr, ok := strings.Cut(string(req.Data), "\x00")
		if !ok || id == "" || addr == "" {
			return &rpcResponse{Unavailable: "malformed membership request", Outcome: OutcomeNotApplied}
		}
		_, index, err := n.toLeader(ctx, func(context.Context) (*fsm.Result, uint64, error) {
			i, err := n.addVoter(raft.ServerID(id), raft.ServerAddress(addr))
			return nil, i, err
		}, req)
		return toResponse(nil, index, err)
	case opRemoveServer:
		if !n.IsLeader() {
			return &rpcResponse{NotLeader: true}
		}
		id := raft.ServerID(req.Data)
		n.logger.Info("removing server that is leaving", "id", id)
		f := n.raft.RemoveServer(id, 0, n.cfg.RequestTimeout)
		if err := n.await(f); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				return &rpcResponse{NotLeader: true}
			}
			return &rpcResponse{Unavailable: err.Error(), Outcome: OutcomeUnknown}
		}
		return &rpcResponse{Index: f.Index()}
	case opHasState:
		return &rpcResponse{Index: n.stateMark()}
	case opRemovePeer:
		index, err := n.removePeer(string(req.Data))
		return toResponse(nil, index, err)
	case opTransferLeader:
		return toResponse(nil, 0, n.transferLeader(string(req.Data)))
	case opRestoreSnapshot:
		index, err := n.restoreLocal(ctx, req.Data)
		return toResponse(nil, index, err)
	}
	return &rpcResponse{Unavailable: "unknown internal RPC", Outcome: OutcomeNotApplied}
}
