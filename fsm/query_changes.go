package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/hashicorp/go-memdb"
)

// The change feed: what changed after log index N.
//
// Every apply that inserts or changes a secret sets its ModifyIndex to the
// command's log index (CreateIndex too, on creation); every apply that
// removes a secret for good leaves a Tombstone at its DeleteIndex. The
// secrets table is indexed by ModifyIndex and the tombstones table by
// DeleteIndex, so ChangesAfter walks both from a cursor with LowerBound
// and costs O(page), not O(table). Replication shippers and a watch API
// read the feed; FSM.WaitApplied is the waiter:
//
//	cursor := N // from a full read at index N, or a saved cursor
//	for {
//		txn, _ := f.ReadTxn()
//		page, err := fsm.ChangesAfter(txn, cursor, 100)
//		// errors.Is(err, fsm.ErrCompacted): read the full state again
//		... consume page.Items in order ...
//		cursor = page.Next
//		if !page.More {
//			f.WaitApplied(ctx, cursor+1)
//		}
//	}

// ErrCompacted means a CompactTombstones removed tombstones after the
// cursor: the removals the consumer missed can no longer be listed. It
// must read the full state again (ListSecrets and friends in one read
// transaction at index N) and follow the feed from N.
var ErrCompacted = errors.New("fsm: the change feed was compacted after this index; read the full state and follow from its index")

// Change is one entry of the change feed: a secret as it is now, changed
// at Index, or a tombstone of a secret removed at Index. Exactly one of
// Secret and Tombstone is set.
type Change struct {
	Index     uint64
	Secret    *Secret
	Tombstone *Tombstone
}

// Changes is a page of the change feed.
type Changes struct {
	// Items are in index order; at one index, tombstones come before
	// secrets, each by ARN.
	Items []Change
	// Next is the cursor to pass as after for the following page. When
	// More is false every change up to the transaction's index has been
	// listed, so Next is that index (or after, if greater): the consumer
	// waits for Next+1 to be applied.
	Next uint64
	// More reports that the page stopped at limit and more changes follow.
	More bool
}

// ChangesAfter returns the changes with index > after, in index order, up
// to limit of them, from a read transaction (FSM.ReadTxn).
//
// A secret changed twice after the cursor appears once, at its latest
// ModifyIndex, in its latest state: the feed lists what is, not each step
// that led there, so a consumer that resumes from its last cursor never
// misses the latest state of anything (it may see a state newer than the
// cursor it is about to store; applying it again is harmless). A removed
// secret appears as its tombstone, which keeps its name and ARN.
//
// A page never ends inside one index: the changes of one command (a
// PurgeSecrets or a ResetRegion removes many secrets at one index) come
// together, so a page may hold more than limit items when the command at
// its end changed several secrets; the cursor is a plain log index.
//
// Secrets carry index 0 when they were restored from a snapshot written
// before the feed existed and not changed since; they are not in the feed
// (index 0 is not after any cursor) until they change. A consumer that
// starts with nothing reads the full state at index N first and follows
// from N, as after ErrCompacted.
//
// It returns ErrCompacted when tombstones with an index after the cursor
// were compacted (after+1 < TombstonesCompactedBefore), and an error for a
// limit below 1.
func ChangesAfter(txn *memdb.Txn, after uint64, limit int) (Changes, error) {
	if limit < 1 {
		return Changes{}, fmt.Errorf("changes: limit %d, want at least 1", limit)
	}
	if after < math.MaxUint64 && after+1 < TombstonesCompactedBefore(txn) {
		return Changes{}, ErrCompacted
	}
	page := Changes{Next: max(after, txnIndex(txn))}
	if after == math.MaxUint64 {
		return page, nil
	}
	secrets, err := txn.LowerBound(tableSecrets, "modify", after+1)
	if err != nil {
		return Changes{}, err
	}
	tombs, err := txn.LowerBound(tableTombstones, "index", after+1)
	if err != nil {
		return Changes{}, err
	}
	nextSecret := func() *Secret {
		if obj := secrets.Next(); obj != nil {
			return obj.(*Secret)
		}
		return nil
	}
	nextTomb := func() *Tombstone {
		if obj := tombs.Next(); obj != nil {
			return obj.(*Tombstone)
		}
		return nil
	}
	s, t := nextSecret(), nextTomb()
	for s != nil || t != nil {
		var c Change
		if t != nil && (s == nil || t.DeleteIndex <= s.ModifyIndex) {
			c, t = Change{Index: t.DeleteIndex, Tombstone: t}, nextTomb()
		} else {
			c, s = Change{Index: s.ModifyIndex, Secret: s}, nextSecret()
		}
		if n := len(page.Items); n >= limit && c.Index != page.Items[n-1].Index {
			page.More, page.Next = true, page.Items[n-1].Index
			return page, nil
		}
		page.Items = append(page.Items, c)
	}
	return page, nil
}

// TombstonesCompactedBefore returns the Before of the CompactTombstones
// commands applied so far (their maximum; 0 if none): every tombstone with
// a DeleteIndex below it is gone, so a cursor below it minus one gets
// ErrCompacted.
func TombstonesCompactedBefore(txn *memdb.Txn) uint64 {
	return getMeta(txn, metaCompacted)
}

// TombstonesBefore is how the leader picks a CompactTombstones: it returns
// the Before that removes the tombstones dated (Tombstone.Date, the
// removing command's date) before date, and how many it would remove; n
// == 0 means there is nothing to compact (before is then 0). Typically
// date = now - retention.
//
// It walks the tombstones in index order and stops at the first one dated
// date or later, so it costs O(n). Dates come from the nodes' clocks and
// may not follow the log exactly: a tombstone dated before date that
// follows a younger one in the log is kept until a later compaction, which
// errs on the side of keeping. All tombstones of one index share a date
// (one command), so a compaction never splits a command's removals.
func TombstonesBefore(txn *memdb.Txn, date int64) (before uint64, n int, err error) {
	it, err := txn.Get(tableTombstones, "index")
	if err != nil {
		return 0, 0, err
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		t := obj.(*Tombstone)
		if t.Date >= date {
			break
		}
		before, n = t.DeleteIndex+1, n+1
	}
	return before, n, nil
}

// TombstoneByARN returns the tombstone of the secret with this ARN, or nil.
func TombstoneByARN(txn *memdb.Txn, arn string) *Tombstone {
	raw, err := txn.First(tableTombstones, "id", arn)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*Tombstone)
}

// logIndex indexes the records of a table by a Raft log index, then ARN
// (unique). The argument of a lookup is a uint64 log index: LowerBound
// with it finds the first record at or after that index.
type logIndex[T any] struct {
	key func(*T) (uint64, string)
}

var _ memdb.SingleIndexer = logIndex[Secret]{}

func (x logIndex[T]) FromObject(obj any) (bool, []byte, error) {
	o, ok := obj.(*T)
	if !ok {
		return false, nil, fmt.Errorf("log index: %T is not a %T", obj, new(T))
	}
	index, arn := x.key(o)
	b := make([]byte, 8, 8+len(arn))
	binary.BigEndian.PutUint64(b, index)
	return true, append(b, arn...), nil
}

func (logIndex[T]) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("log index: want one argument, got %d", len(args))
	}
	index, ok := args[0].(uint64)
	if !ok {
		return nil, fmt.Errorf("log index: argument %T is not a uint64", args[0])
	}
	return binary.BigEndian.AppendUint64(nil, index), nil
}
