package fsm

import (
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// deletionIndex indexes the secrets scheduled for deletion by DeletionDate,
// so the purge finds the expired ones without scanning the table. Active
// secrets are not in the index at all.
type deletionIndex struct{}

var _ memdb.SingleIndexer = deletionIndex{}

func (deletionIndex) FromObject(obj any) (bool, []byte, error) {
	s, ok := obj.(*Secret)
	if !ok {
		return false, nil, fmt.Errorf("deletion index: %T is not a *Secret", obj)
	}
	if !s.Scheduled() || s.IsReplica() {
		// A replica is removed by its primary region, never purged here.
		return false, nil, nil
	}
	return true, deletionKey(s.DeletionDate), nil
}

func (deletionIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("deletion index: want one argument, got %d", len(args))
	}
	d, ok := args[0].(int64)
	if !ok {
		return nil, fmt.Errorf("deletion index: argument %T is not an int64", args[0])
	}
	return deletionKey(d), nil
}

// deletionKey encodes a date so that byte order is numeric order, negative
// dates included.
func deletionKey(d int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(d)^(1<<63))
	return b[:]
}

// ExpiredSecrets returns up to limit ARNs of secrets scheduled for deletion
// whose recovery window ended at or before now, earliest first. It walks
// the deletion index and stops at the first secret not yet due, so it
// costs O(expired), not O(table).
func ExpiredSecrets(txn *memdb.Txn, now int64, limit int) ([]string, error) {
	it, err := txn.Get(tableSecrets, "deletion")
	if err != nil {
		return nil, err
	}
	var out []string
	for obj := it.Next(); obj != nil && len(out) < limit; obj = it.Next() {
		s := obj.(*Secret)
		if s.DeletionDate > now {
			break
		}
		out = append(out, s.ARN)
	}
	return out, nil
}
