package fsm

import (
	"github.com/cofferhq/coffer/apierr"
	"github.com/hashicorp/go-memdb"
)

// Command types applied here (command.go: the log format; never
// renumber or reuse one).
const (
	CmdCompactTombstones CommandType = 16
)

func init() {
	register(CmdCompactTombstones, "CompactTombstones", applyCompactTombstones)
}

// CompactTombstones removes the tombstones whose DeleteIndex is below
// Before. The leader writes it, with a Before from TombstonesBefore and a
// retention window; from then on ChangesAfter answers ErrCompacted to a
// cursor below Before-1.
type CompactTombstones struct {
	Before uint64
}

// applyCompactTombstones refuses a Before beyond its own index (no
// tombstone can be that new; it would only mark cursors as compacted for
// nothing). A Before at or below an earlier one removes nothing and leaves
// the compaction mark where it was.
func applyCompactTombstones(txn *memdb.Txn, index uint64, c *CompactTombstones) any {
	if c.Before > index {
		return apierr.Newf(apierr.InvalidParameter,
			"CompactTombstones: Before %d is beyond the command's own index %d", c.Before, index)
	}
	if c.Before <= getMeta(txn, metaCompacted) {
		return &Result{}
	}
	it, err := txn.Get(tableTombstones, "index")
	if err != nil {
		return internal(err)
	}
	var old []*Tombstone
	for obj := it.Next(); obj != nil; obj = it.Next() {
		t := obj.(*Tombstone)
		if t.DeleteIndex >= c.Before {
			break
		}
		old = append(old, t)
	}
	// Deleted after the walk: a write transaction's iterator does not
	// survive changes to its table.
	for _, t := range old {
		if err := txn.Delete(tableTombstones, t); err != nil {
			return internal(err)
		}
	}
	setMeta(txn, metaCompacted, c.Before)
	return &Result{}
}

// putSecret writes a secret changed (or created) by the command at index:
// its ModifyIndex becomes index, which puts it in the change feed. Every
// apply that changes a secret writes it through here; RecordAccess alone
// inserts directly, because recording a read is not a change.
func putSecret(txn *memdb.Txn, index uint64, s *Secret) *apierr.Error {
	s.ModifyIndex = index
	if err := txn.Insert(tableSecrets, s); err != nil {
		return internal(err)
	}
	return nil
}

// changeSecret writes a change the command at index dated date made to
// s: LastChangedDate moves forward to date (never back: dates follow the
// log, docs/architecture.md) and the secret is written by putSecret.
func changeSecret(txn *memdb.Txn, index uint64, s *Secret, date int64) *apierr.Error {
	s.LastChangedDate = max(s.LastChangedDate, date)
	return putSecret(txn, index, s)
}

// removeSecret deletes a secret for good, for the command at index dated
// date, and leaves its tombstone. Every apply that removes a secret from
// the table goes through here (or leaveTombstone, for ResetRegion's bulk
// delete).
func removeSecret(txn *memdb.Txn, index uint64, s *Secret, date int64) *apierr.Error {
	if err := txn.Delete(tableSecrets, s); err != nil {
		return internal(err)
	}
	return leaveTombstone(txn, index, s, date)
}

// leaveTombstone records that the secret s was removed at index. A
// tombstone of an earlier secret with the same ARN is replaced.
func leaveTombstone(txn *memdb.Txn, index uint64, s *Secret, date int64) *apierr.Error {
	if err := txn.Insert(tableTombstones, &Tombstone{ARN: s.ARN, Name: s.Name, DeleteIndex: index, Date: date}); err != nil {
		return internal(err)
	}
	return nil
}
