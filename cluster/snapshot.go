package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/raft"
)

// SaveSnapshot takes a Raft snapshot on this node (any node: a follower's
// state is as good as the leader's, at its applied index) and copies it to
// w; when nothing was applied since the last snapshot, it copies that
// one. The stream holds the state as the FSM snapshots it: values, data
// keys and the keyring only as ciphertext.
func (n *Node) SaveSnapshot(w io.Writer) (raft.SnapshotMeta, error) {
	f := n.raft.Snapshot()
	err := f.Error()
	var meta *raft.SnapshotMeta
	var rc io.ReadCloser
	switch {
	case err == nil:
		meta, rc, err = f.Open()
	case errors.Is(err, raft.ErrNothingNewToSnapshot):
		var list []*raft.SnapshotMeta
		if list, err = n.snaps.List(); err == nil {
			if len(list) == 0 {
				return raft.SnapshotMeta{}, errors.New("no snapshot to save: the node has applied nothing")
			}
			meta, rc, err = n.snaps.Open(list[0].ID) // newest first
		}
	}
	if err != nil {
		return raft.SnapshotMeta{}, fmt.Errorf("snapshot: %w", err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return raft.SnapshotMeta{}, fmt.Errorf("copy snapshot: %w", err)
	}
	return *meta, nil
}

// restoreTimeout bounds a whole restore: sending the state to the leader,
// raft.Restore writing and loading it, and the no-op after. A large state
// takes longer than one ordinary request.
const restoreTimeout = 5 * time.Minute

// RestoreSnapshot replaces the region's state with state (a stream as
// SaveSnapshot writes it) on every node: any node takes it and sends it to
// the leader. The leader alone checks it, with Config.CheckSnapshot (raft panics
// if the FSM cannot load a snapshot it was handed, so nothing reaches raft
// unchecked), hands it to raft.Restore, which files it under a new index
// past a hole in the log so that followers are sent the snapshot, then
// commits a no-op so a quorum holds the restored state before the call
// returns, and restarts the leader-only work, which must not carry on from
// positions in the state it replaced. It returns the no-op's index.
func (n *Node) RestoreSnapshot(ctx context.Context, state []byte) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		_, index, err := n.toLeader(ctx, func(ctx context.Context) (*fsm.Result, uint64, error) {
			i, err := n.restoreLocal(ctx, state)
			return nil, i, err
		}, &rpcRequest{Op: opRestoreSnapshot, Data: state})
		// raft.Restore lets the leader take the state before its followers
		// have it. If it loses leadership before its no-op commits, a
		// follower without the state may lead, and the old leader's state
		// then differs from the others'. Restoring again settles it:
		// the new leader sends the snapshot to every follower, and a
		// restore is idempotent (the state after is the snapshot's either
		// way).
		var ue *UnavailableError
		if err == nil || !errors.As(err, &ue) || ue.Outcome != OutcomeUnknown || attempt == restoreAttempts || ctx.Err() != nil {
			return index, err
		}
		n.logger.Warn("operator: the restore's outcome is unknown; restoring again", "attempt", attempt, "error", ue.Reason)
	}
}

// restoreAttempts bounds the restores RestoreSnapshot tries while their
// outcome is unknown.
const restoreAttempts = 3

func (n *Node) checkSnapshot(state []byte) error {
	if n.cfg.CheckSnapshot == nil {
		return errors.New("this node cannot check a snapshot (no CheckSnapshot)")
	}
	return n.cfg.CheckSnapshot(state)
}

// restoreLocal restores on this node, which must be the leader.
func (n *Node) restoreLocal(ctx context.Context, state []byte) (uint64, error) {
	if !n.IsLeader() {
		return 0, errNotLeader
	}
	if err := n.checkSnapshot(state); err != nil {
		return 0, err
	}
	// One restore at a time: a second would race the first's no-op.
	n.restoreMu.Lock()
	defer n.restoreMu.Unlock()
	timeout := restoreTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	n.logger.Warn("operator: restoring the region's state from a snapshot", "bytes", len(state))
	for attempt := 1; ; attempt++ {
		meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(state))}
		err := n.raft.Restore(meta, bytes.NewReader(state), timeout)
		if err == nil {
			break
		}
		if errors.Is(err, raft.ErrNotLeader) {
			return 0, errNotLeader
		}
		// Raft refuses while a configuration change (a server joining or
		// leaving) is uncommitted; a barrier waits for it to commit.
		if strings.Contains(err.Error(), "cannot restore snapshot now") && attempt < 10 && ctx.Err() == nil {
			if err := n.await(n.raft.Barrier(n.cfg.RequestTimeout)); err != nil {
				return 0, raftErr(err)
			}
			continue
		}
		// Raft checks what it can before it changes anything (leadership,
		// a pending configuration change) and panics rather than return
		// once the FSM has been touched, so an error here changed nothing.
		return 0, unavailable("restore: "+err.Error(), OutcomeNotApplied)
	}
	n.logger.Warn("operator: snapshot restored; committing a no-op so the followers load it")
	cmd, err := fsm.Encode(fsm.CmdNoop, &fsm.Noop{Term: n.raft.CurrentTerm()})
	if err != nil {
		return 0, err
	}
	_, index, err := n.applyLocal(ctx, cmd)
	if err != nil {
		return 0, unavailable("the snapshot was restored on the leader, but the no-op after it did not commit: "+errText(err), OutcomeUnknown)
	}
	// Leader-only work (purge, shippers, rotation) keeps positions in the
	// old state; start it again on the restored one.
	select {
	case n.relead <- struct{}{}:
	default:
	}
	return index, nil
}

func errText(err error) string {
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return ue.Reason
	}
	return err.Error()
}
