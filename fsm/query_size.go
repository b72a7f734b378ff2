package fsm

import "github.com/hashicorp/go-memdb"

// StateSize is how much a region's state holds, for the metrics.
type StateSize struct {
	Secrets    int // secrets in the table, scheduled deletions included
	Deleted    int // of which scheduled for deletion
	Versions   int // versions of all secrets, unlabeled ones included
	Tombstones int // secrets removed for good, kept for the change feed
}

// Size counts the state in txn. It walks the secrets table (the versions
// live inside the secrets), so it costs time in proportion to the state:
// a scrape of a million secrets takes tens of milliseconds, on a read
// transaction that never blocks Apply.
func Size(txn *memdb.Txn) StateSize {
	var n StateSize
	it, err := txn.Get(tableSecrets, "id")
	if err != nil {
		return n
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		s := raw.(*Secret)
		n.Secrets++
		n.Versions += len(s.Versions)
		if s.Scheduled() {
			n.Deleted++
		}
	}
	if it, err := txn.Get(tableTombstones, "id"); err == nil {
		for raw := it.Next(); raw != nil; raw = it.Next() {
			n.Tombstones++
		}
	}
	return n
}
