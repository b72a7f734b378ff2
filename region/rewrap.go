package region

import (
	"context"
	"time"

	"github.com/cofferhq/coffer/fsm"
)

// The re-wrap (KEK rotation, docs/security.md): after a key gains a
// version, the leader moves every data key wrapped by an older version of
// that key under the current one, a batch per Raft entry, so writes go on
// between batches. It keeps no progress of its own: what remains is in
// the state (the data keys not on their key's current version), so a new
// leader simply carries on, and `coffer key describe` shows how many are
// left. Each item applies only if the version is still wrapped as it was
// read (fsm.RewrapKeys), so a concurrent write or UpdateSecret wins.

const (
	// rewrapBatch bounds the data keys one RewrapKeys carries.
	rewrapBatch = 256
	// rewrapPoll is how often the leader looks for stale data keys when
	// no rotation on this node woke it.
	rewrapPoll = 10 * time.Second
	// rewrapRecheck is the next look after a pass that re-wrapped.
	rewrapRecheck = time.Second
)

// kickRewrap wakes the re-wrap if this node leads.
func (r *Region) kickRewrap() {
	select {
	case r.rewrapKick <- struct{}{}:
	default:
	}
}

// rewrapLoop runs on the leader until leadership ends.
func (r *Region) rewrapLoop(ctx context.Context) {
	// Versions whose data key did not unwrap (a damaged value, logged)
	// are not tried again this term.
	bad := map[[2]string]bool{}
	skip := func(arn, versionID string) bool { return bad[[2]string{arn, versionID}] }
	after := ""
	moved := false // this pass re-wrapped something
	for {
		n, next, err := r.rewrapBatch(ctx, after, skip, bad)
		if err != nil && ctx.Err() == nil {
			r.logger.Warn("re-wrap of data keys paused", "error", err)
		}
		after = next
		moved = moved || n > 0
		if err == nil && (n > 0 || after != "") {
			continue // the next batch, or the rest of the pass, at once
		}
		// A pass ended (or failed). After a pass that re-wrapped, look
		// again soon: a write that chose its KEK just before a rotation
		// applied may land after the pass went by.
		wait := rewrapPoll
		if moved || err != nil {
			wait = rewrapRecheck
		}
		moved = false
		if !r.rewrapWait(ctx, wait) {
			return
		}
	}
}

// rewrapWait waits up to wait for a reason to look again: a rotation on
// this node, or a keyring change applied from another (a rotation sent
// to a follower). false when leadership ended.
func (r *Region) rewrapWait(ctx context.Context, wait time.Duration) bool {
	gen := r.keyringGen()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(rewrapRecheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-r.rewrapKick:
			return true
		case <-deadline.C:
			return true
		case <-tick.C:
			if r.keyringGen() != gen {
				return true
			}
		}
	}
}

func (r *Region) keyringGen() uint64 {
	txn, _ := r.fsm.ReadTxn()
	if rec := fsm.RegionRecord(txn); rec != nil {
		return rec.KeyringGen
	}
	return 0
}

// rewrapBatch re-wraps one batch of stale data keys found after ARN
// after, returning how many it sent and where to continue.
func (r *Region) rewrapBatch(ctx context.Context, after string, skip func(string, string) bool, bad map[[2]string]bool) (int, string, error) {
	kr, err := r.Keyring()
	if err != nil {
		return 0, after, err
	}
	txn, _ := r.fsm.ReadTxn()
	stale, next := fsm.StaleDataKeys(txn, after, rewrapBatch, skip)
	if len(stale) == 0 {
		return 0, next, nil
	}
	cmd := &fsm.RewrapKeys{Items: make([]fsm.Rewrap, 0, len(stale))}
	for _, d := range stale {
		env, err := r.rewrap(kr, d.Secret, d.Version, d.To)
		if err != nil {
			bad[[2]string{d.Secret.ARN, d.Version.VersionID}] = true
			continue
		}
		cmd.Items = append(cmd.Items, fsm.Rewrap{ARN: d.Secret.ARN, VersionID: d.Version.VersionID,
			From: d.Version.Value.KEKID, KEKID: d.To, WrappedKey: env.WrappedKey})
	}
	if len(cmd.Items) == 0 {
		return 0, next, nil
	}
	res, _, err := r.Apply(ctx, fsm.CmdRewrapKeys, cmd)
	if err != nil {
		return 0, after, err
	}
	// Items a concurrent change moved first were skipped; the next pass
	// finds them again if they are still stale.
	return res.Count, next, nil
}
