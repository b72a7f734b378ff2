package region

import (
	"cmp"
	"context"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
)

// PromoteReplica turns the replica id names into a primary secret of this
// region (StopReplicationToReplica) and tells its old primary region, so
// it stops replicating to it, through the function OnPromote registered
// (best effort: the old primary also learns at its next shipment).
func (r *Region) PromoteReplica(ctx context.Context, id string) (*fsm.Result, uint64, error) {
	var primary string
	res, index, err := r.WriteSecret(ctx, id, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		if !s.IsReplica() {
			return 0, nil, apierr.Newf(apierr.InvalidRequest,
				"The secret %s is not a replica: there is no replication to stop. Call StopReplicationToReplica in the replica's region.", s.ARN)
		}
		primary = s.PrimaryRegion
		return fsm.CmdPromoteReplica, &fsm.PromoteReplica{ARN: s.ARN, Date: r.Now().UnixMilli()}, nil
	})
	if err == nil {
		if f := r.onPromote.Load(); f != nil {
			(*f)(primary, res.ARN)
		}
	}
	return res, index, err
}

// OnPromote registers what PromoteReplica calls after a promotion, with
// the old primary region and the promoted secret's ARN (replication's
// notice to the old primary). f must not block.
func (r *Region) OnPromote(f func(primaryRegion, arn string)) { r.onPromote.Store(&f) }

// WaitReplicated returns once no change up to index, of a secret
// replicated to another region, waits for that region to acknowledge it
// (fsm.ReplicationPending), in this node's state: coffer dev answers a
// write only then. It returns ctx's error when ctx ends first.
func (r *Region) WaitReplicated(ctx context.Context, index uint64) error {
	for {
		txn, applied := r.fsm.ReadTxn()
		if !fsm.ReplicationPending(txn, index) {
			return nil
		}
		if err := r.fsm.WaitApplied(ctx, applied+1); err != nil {
			return err
		}
	}
}

// ReplicaStatus is one replica region as this, its primary region, sees
// it (`coffer region status`, GET /v1/replication/status).
type ReplicaStatus struct {
	Region string `json:"region"`
	// AckedIndex is this region's log index up to which the replica
	// region has applied every replicated change; Index is the index the
	// figures were read at.
	AckedIndex uint64    `json:"acked_index"`
	Index      uint64    `json:"index"`
	LastAck    time.Time `json:"last_ack,omitzero"`
	// Pending counts the replicated secrets changed since (and replicas
	// still to delete): the lag in changes.
	Pending int `json:"pending_changes"`
	// LagSeconds is 0 when nothing waits; otherwise the time since the
	// replica region was last known to hold everything: the RPO, what a
	// loss of this region now would lose at most.
	LagSeconds float64   `json:"lag_seconds"`
	Error      string    `json:"error,omitempty"`
	ErrorSince time.Time `json:"error_since,omitzero"`
}

// SourceStatus is one primary region this region holds replicas of.
type SourceStatus struct {
	Region       string    `json:"region"`
	AppliedIndex uint64    `json:"applied_index"`
	LastApplied  time.Time `json:"last_applied,omitzero"`
}

// ReplicationStatus reports, on a linearizable read (or local state if
// stale), the replica regions this region ships to and the primary
// regions it receives from.
func (r *Region) ReplicationStatus(ctx context.Context, stale bool) ([]ReplicaStatus, []SourceStatus, uint64, error) {
	txn, index, err := r.Read(ctx, stale)
	if err != nil {
		return nil, nil, index, err
	}
	now := r.Now()
	targets := []ReplicaStatus{}
	for _, t := range fsm.ReplTargets(txn) {
		st := ReplicaStatus{Region: t.Region, AckedIndex: t.Acked, Index: index, LastAck: millis(t.AckedDate),
			Error: t.Error, ErrorSince: millis(t.ErrorSince)}
		var oldest int64
		st.Pending, oldest = fsm.PendingFor(txn, t)
		if st.Pending > 0 {
			since := cmp.Or(t.AckedAsOf, oldest)
			st.LagSeconds = max(0, now.Sub(time.UnixMilli(since)).Seconds())
		}
		targets = append(targets, st)
	}
	sources := []SourceStatus{}
	for _, s := range fsm.ReplSources(txn) {
		sources = append(sources, SourceStatus{Region: s.Region, AppliedIndex: s.Applied, LastApplied: millis(s.Date)})
	}
	return targets, sources, index, nil
}

func millis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// PromoteRegion promotes this region (coffer region promote): its replica
// secrets (of primary region from, if not "") become primaries at a higher
// fencing epoch, and its demoted secrets writable again. It returns how
// many secrets changed.
func (r *Region) PromoteRegion(ctx context.Context, from string) (int, uint64, error) {
	res, index, err := r.Apply(ctx, fsm.CmdPromoteRegion, &fsm.PromoteRegion{From: from, Date: r.Now().UnixMilli()})
	if err != nil {
		return 0, index, err
	}
	return res.Count, index, nil
}

// DemoteRegion makes this region's replicated primary secrets read-only
// to clients (coffer region demote) and returns how many.
func (r *Region) DemoteRegion(ctx context.Context) (int, uint64, error) {
	res, index, err := r.Apply(ctx, fsm.CmdDemoteRegion, &fsm.DemoteRegion{Date: r.Now().UnixMilli()})
	if err != nil {
		return 0, index, err
	}
	return res.Count, index, nil
}

// ConflictStatus is one conflict version (coffer region conflicts).
type ConflictStatus struct {
	ARN         string    `json:"arn"`
	Name        string    `json:"name"`
	VersionID   string    `json:"version_id"`
	CreatedDate time.Time `json:"created_date"`
	// Region wrote the version as the secret's primary at Epoch; Found is
	// when it learned another region had been promoted over it.
	Region string    `json:"region"`
	Epoch  uint64    `json:"epoch"`
	Found  time.Time `json:"found"`
}

// Conflicts lists the conflict versions this region holds.
func (r *Region) Conflicts(ctx context.Context, stale bool) ([]ConflictStatus, uint64, error) {
	txn, index, err := r.Read(ctx, stale)
	if err != nil {
		return nil, index, err
	}
	out := []ConflictStatus{}
	for _, c := range fsm.Conflicts(txn) {
		out = append(out, ConflictStatus{ARN: c.ARN, Name: c.Name, VersionID: c.VersionID, CreatedDate: millis(c.CreatedDate),
			Region: c.Conflict.Region, Epoch: c.Conflict.Epoch, Found: millis(c.Conflict.Date)})
	}
	return out, index, nil
}

// DismissConflict removes a conflict version of the secret id names from
// this region for good (coffer region conflicts dismiss), once an operator
// has written its value again where it belongs or decided it is not
// needed. Other regions keep their copies until dismissed there.
func (r *Region) DismissConflict(ctx context.Context, id, versionID string) (*fsm.Result, uint64, error) {
	return r.WriteSecret(ctx, id, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		return fsm.CmdDismissConflict, &fsm.DismissConflict{ARN: s.ARN, VersionID: versionID, Date: r.Now().UnixMilli()}, nil
	})
}
