package region

import (
	"context"
	"sync"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/raft"
)

// local is the in-memory Consensus of Config.Local: a region of one node
// that is always the leader, with no log, no disk and no network. Apply
// runs fsm.Apply on the caller's goroutine, serialized by a mutex, with
// increasing indexes, so once Apply returns every later read sees the
// write; ReadIndex therefore has nothing to wait for and returns the
// applied index. It lets the layers above a region (server's handlers) be
// tested without Raft; it is never a server's.
type local struct {
	nodeID, region string
	fsm            *fsm.FSM

	// mu serializes Apply, as Raft's single FSM goroutine does.
	mu     sync.Mutex
	index  uint64
	closed bool
}

var _ Consensus = (*local)(nil)

func newLocal(nodeID, region string, f *fsm.FSM) *local {
	if nodeID == "" {
		nodeID = "local"
	}
	return &local{nodeID: nodeID, region: region, fsm: f}
}

func errShutDown() error {
	return &cluster.UnavailableError{Reason: "the region is shut down", Outcome: cluster.OutcomeNotApplied}
}

// Apply applies cmd to the state at the next index.
func (l *local) Apply(ctx context.Context, cmd []byte) (*fsm.Result, uint64, error) {
	if ctx.Err() != nil {
		return nil, 0, &cluster.UnavailableError{Reason: "the request ended before the command was applied", Outcome: cluster.OutcomeNotApplied}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, 0, errShutDown()
	}
	l.index++
	resp := l.fsm.Apply(&raft.Log{Index: l.index, Term: 1, Type: raft.LogCommand, Data: cmd})
	switch r := resp.(type) {
	case *fsm.Result:
		return r, l.index, nil
	case *apierr.Error:
		return nil, l.index, r
	}
	return nil, l.index, apierr.Newf(apierr.InternalServiceError, "unexpected apply response %T", resp)
}

// ReadIndex returns the applied index: every acknowledged Apply is in it.
func (l *local) ReadIndex(context.Context) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, errShutDown()
	}
	return l.fsm.AppliedIndex(), nil
}

// IsLeader is true until Shutdown.
func (l *local) IsLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed
}

// Status is a one-voter group led by this node.
func (l *local) Status() cluster.Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := cluster.Status{NodeID: l.nodeID, Region: l.region, State: "leader", LeaderID: l.nodeID,
		LeaderAddr: "local", Term: 1, CommitIndex: l.index, AppliedIndex: l.fsm.AppliedIndex(),
		LastContact: time.Now(), Voters: []cluster.Peer{{ID: l.nodeID, Address: "local", Suffrage: "Voter"}}}
	if l.closed {
		st.State, st.LeaderID, st.LeaderAddr = "shutdown", "", ""
	}
	return st
}

// LastContact is zero: the node is its own leader.
func (l *local) LastContact() time.Duration { return 0 }

// Leave has no peers to hand over to.
func (l *local) Leave(time.Duration) error { return nil }

// Shutdown refuses every later call.
func (l *local) Shutdown() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}
