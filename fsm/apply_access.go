package fsm

import (
	"slices"

	"github.com/hashicorp/go-memdb"
)

// Command types applied here (command.go: the log format; never
// renumber or reuse one).
const (
	CmdRecordAccess CommandType = 15
)

// RecordAccess sets LastAccessedDate to Day (midnight UTC, milliseconds) on
// the secrets and versions read that day. Nodes batch the reads they
// served and send one such command now and then; a read never writes.
type RecordAccess struct {
	Day     int64
	Secrets []AccessedSecret
}

// AccessedSecret is a secret and the versions of it that were read.
type AccessedSecret struct {
	ARN        string
	VersionIDs []string
}

func init() {
	register(CmdRecordAccess, "RecordAccess", applyRecordAccess)
}

// applyRecordAccess moves LastAccessedDate forward to c.Day on each listed
// secret and version. It never moves a date back, so batches may arrive in
// any order and more than once; a secret or version that is gone is
// skipped. Reading is not a change: LastChangedDate and ModifyIndex stay.
func applyRecordAccess(txn *memdb.Txn, index uint64, c *RecordAccess) any {
	for _, a := range c.Secrets {
		raw, err := txn.First(tableSecrets, "id", a.ARN)
		if err != nil {
			return internal(err)
		}
		if raw == nil {
			continue
		}
		cur := raw.(*Secret)
		due := cur.LastAccessedDate < c.Day
		for _, v := range cur.Versions {
			due = due || (v.LastAccessedDate < c.Day && slices.Contains(a.VersionIDs, v.VersionID))
		}
		if !due {
			continue // already marked for this day: no write at all
		}
		s := cur.clone()
		s.LastAccessedDate = max(s.LastAccessedDate, c.Day)
		for _, v := range s.Versions {
			if slices.Contains(a.VersionIDs, v.VersionID) {
				v.LastAccessedDate = max(v.LastAccessedDate, c.Day)
			}
		}
		// A plain insert, not putSecret: reading is not a change, so
		// ModifyIndex stays and the change feed does not list the secret.
		if err := txn.Insert(tableSecrets, s); err != nil {
			return internal(err)
		}
	}
	return &Result{}
}
