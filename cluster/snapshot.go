package cluster

import (
	"errors"
	"fmt"
	"io"

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
