package cluster

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
)

// A peer that forwards a write to a node that is still starting must get an
// answer that proves nothing was applied, never crash the node. Before the
// fix the cluster port served RPCs before Raft existed, and a forwarded
// write that arrived in that window dereferenced a nil *raft.Raft (issue
// 16, seen in jepsen's kill-leader). The window is held open here: the
// node's Raft store is locked by another handle for a moment, so New waits
// for it (BoltDB's open timeout) while the RPC is already sent.
func TestNode_RPCDuringStartupIsAnsweredNotPanicked(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := bolt.Open(filepath.Join(dir, "raft", "raft.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			lock.Close()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cfg := DefaultConfig()
	cfg.NodeID, cfg.Region, cfg.DataDir = "n1", "us-east-1", dir
	cfg.ClusterAddr, cfg.GossipAddr, cfg.GossipLocal = addr, "127.0.0.1:0", true
	type started struct {
		n   *Node
		err error
	}
	done := make(chan started, 1)
	go func() {
		n, err := New(cfg, fsm.New(hclog.NewNullLogger()))
		done <- started{n, err}
	}()

	// Send a forwarded write as soon as the port takes connections.
	var conn net.Conn
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if conn, err = net.Dial("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster port never listened: %v", err)
		}
	}
	defer conn.Close()
	if _, err := conn.Write([]byte{muxRPC}); err != nil {
		t.Fatal(err)
	}
	rc := newRPCConn(conn)
	if err := rc.enc.Encode(&rpcRequest{Op: opApply, Data: []byte{byte(fsm.CmdNoop)}}); err != nil {
		t.Fatal(err)
	}
	if err := rc.w.Flush(); err != nil {
		t.Fatal(err)
	}
	// The request is on its way while the node still waits for its store.
	time.Sleep(200 * time.Millisecond)
	select {
	case s := <-done:
		t.Fatalf("New returned before its store was free: %v", s.err)
	default:
	}
	lock.Close()
	locked = false

	s := <-done
	if s.err != nil {
		t.Fatalf("New: %v", s.err)
	}
	defer s.n.Shutdown()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var resp rpcResponse
	if err := rc.dec.Decode(&resp); err != nil {
		t.Fatalf("no answer to the RPC sent during startup: %v", err)
	}
	// The node has no configuration yet, so it cannot lead: the answer
	// says so, which tells the sender nothing was applied.
	if !resp.NotLeader {
		t.Fatalf("answer %+v, want NotLeader", resp)
	}
	if s.n.raft.State().String() == "" {
		t.Fatal("raft not running")
	}
}
