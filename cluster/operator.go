package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/raft"
)

// Operator changes of the Raft configuration (`coffer operator raft …`),
// Consul's remove-peer and transfer-leader. Any node takes them and sends
// them to the leader, which checks them against its configuration: an
// unknown id, the last voter or a non-voter as the new leader is refused
// with the reason, and nothing changes.

// RemovePeer removes server id from the Raft configuration (a server that
// is gone for good). It returns the index of the configuration change.
func (n *Node) RemovePeer(ctx context.Context, id string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	_, index, err := n.toLeader(ctx, func(context.Context) (*fsm.Result, uint64, error) {
		i, err := n.removePeer(id)
		return nil, i, err
	}, &rpcRequest{Op: opRemovePeer, Data: []byte(id)})
	return index, err
}

func (n *Node) removePeer(id string) (uint64, error) {
	if !n.IsLeader() {
		return 0, errNotLeader
	}
	cfg, err := n.configuration()
	if err != nil {
		return 0, err
	}
	var found *raft.Server
	voters := 0
	for i, s := range cfg.Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
		if string(s.ID) == id {
			found = &cfg.Servers[i]
		}
	}
	switch {
	case found == nil:
		return 0, apierr.Newf(apierr.InvalidParameter, "no server %q in the Raft configuration (coffer operator raft list-peers)", id)
	case found.Suffrage == raft.Voter && voters == 1:
		return 0, apierr.Newf(apierr.InvalidParameter, "%s is the last voter: removing it would leave the region without a quorum", id)
	}
	n.logger.Info("operator: removing server from the Raft configuration", "id", id)
	f := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.RequestTimeout)
	if err := n.await(f); err != nil {
		return 0, raftErr(err)
	}
	return f.Index(), nil
}

// TransferLeader hands leadership to server id, or to the most up to date
// voter when id is "". It returns the id of the leader after.
func (n *Node) TransferLeader(ctx context.Context, id string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	_, before := n.raft.LeaderWithID()
	if id != "" && string(before) == id {
		return id, nil // already the leader
	}
	_, _, err := n.toLeader(ctx, func(context.Context) (*fsm.Result, uint64, error) {
		return nil, 0, n.transferLeader(id)
	}, &rpcRequest{Op: opTransferLeader, Data: []byte(id)})
	if err != nil {
		return "", err
	}
	// Wait until this node sees the new leader, so the answer names it.
	for {
		_, leader := n.raft.LeaderWithID()
		if leader != "" && leader != before && (id == "" || string(leader) == id) {
			return string(leader), nil
		}
		select {
		case <-ctx.Done():
			return "", unavailable("leadership was transferred, but this node has not seen the new leader yet", OutcomeUnknown)
		case <-n.shutdownCtx.Done():
			return "", unavailable("node is shutting down", OutcomeUnknown)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (n *Node) transferLeader(id string) error {
	if !n.IsLeader() {
		return errNotLeader
	}
	cfg, err := n.configuration()
	if err != nil {
		return err
	}
	voters := 0
	var target *raft.Server
	for i, s := range cfg.Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
		if string(s.ID) == id {
			target = &cfg.Servers[i]
		}
	}
	var f raft.Future
	switch {
	case voters < 2:
		return apierr.New(apierr.InvalidParameter, "this region has no other voter to hand leadership to")
	case id == "":
		f = n.raft.LeadershipTransfer()
	case target == nil:
		return apierr.Newf(apierr.InvalidParameter, "no server %q in the Raft configuration (coffer operator raft list-peers)", id)
	case target.Suffrage != raft.Voter:
		return apierr.Newf(apierr.InvalidParameter, "%s is not a voter: only a voter can lead", id)
	case id == n.cfg.NodeID:
		return nil // already the leader
	default:
		f = n.raft.LeadershipTransferToServer(target.ID, target.Address)
	}
	n.logger.Info("operator: transferring leadership", "to", id)
	if err := f.Error(); err != nil {
		return unavailable("leadership transfer failed: "+err.Error(), OutcomeUnknown)
	}
	return nil
}

func (n *Node) configuration() (raft.Configuration, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, unavailable("reading the Raft configuration: "+err.Error(), OutcomeNotApplied)
	}
	return f.Configuration(), nil
}

// raftErr maps a failed configuration change: "not the leader" proves
// nothing was applied, so the caller retries with the leader there is;
// anything else may or may not have been.
func raftErr(err error) error {
	if errors.Is(err, raft.ErrNotLeader) {
		return errNotLeader
	}
	return unavailable(err.Error(), OutcomeUnknown)
}
