package region

import (
	"context"
	"time"

	"github.com/cofferhq/coffer/fsm"
)

// Tombstone compaction (fsm's change feed, docs/architecture.md). A secret
// removed from the table leaves a tombstone, so a consumer of the feed (a
// replication shipper, a watch) that follows it learns of the removal.
// Tombstones are kept for Config.TombstoneRetention; then the leader
// compacts them through Raft (CompactTombstones). A consumer whose cursor
// falls behind a compaction gets fsm.ErrCompacted and must re-read the
// whole state, so the retention is the longest a consumer may be away and
// still catch up from its cursor.

const (
	defaultTombstoneRetention = 72 * time.Hour
	defaultCompactInterval    = 10 * time.Minute
)

// compactLoop runs on the leader until leadership ends.
func (r *Region) compactLoop(ctx context.Context) {
	interval := r.cfg.CompactInterval
	if interval <= 0 {
		interval = defaultCompactInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if _, err := r.CompactTombstones(ctx, r.Now()); err != nil && ctx.Err() == nil {
			r.logger.Warn("compacting tombstones failed; retrying at the next tick", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// CompactTombstones removes, through Raft, the tombstones older than the
// retention at now, and returns how many it removed.
func (r *Region) CompactTombstones(ctx context.Context, now time.Time) (int, error) {
	retention := r.cfg.TombstoneRetention
	if retention <= 0 {
		retention = defaultTombstoneRetention
	}
	txn, _ := r.fsm.ReadTxn()
	before, n, err := fsm.TombstonesBefore(txn, now.Add(-retention).UnixMilli())
	if err != nil || n == 0 {
		return 0, err
	}
	if _, _, err := r.Apply(ctx, fsm.CmdCompactTombstones, &fsm.CompactTombstones{Before: before}); err != nil {
		return 0, err
	}
	r.logger.Info("compacted tombstones", "count", n, "before_index", before)
	return n, nil
}
