package fsm

import (
	"github.com/hashicorp/go-memdb"
)

// Command types applied here (command.go: the log format; never
// renumber or reuse one).
const (
	CmdPurgeSecrets CommandType = 14
)

// PurgeSecrets removes for good the secrets with these ARNs whose recovery
// window ended at or before Now. The leader's purge loop writes it; Apply
// re-checks each secret against Now and skips any that is not due (restored,
// re-scheduled, already gone).
type PurgeSecrets struct {
	ARNs []string
	Now  int64
}

func init() {
	register(CmdPurgeSecrets, "PurgeSecrets", applyPurgeSecrets)
}

// applyPurgeSecrets removes the listed secrets whose recovery window ended
// at or before c.Now. Each one is re-checked here, against the state the
// command applies to: a secret restored, force-deleted or re-created under
// the same name since the leader picked it is left alone. The answer's
// VersionStages lists the ARNs actually removed.
func applyPurgeSecrets(txn *memdb.Txn, index uint64, c *PurgeSecrets) any {
	res := &Result{}
	for _, arn := range c.ARNs {
		raw, err := txn.First(tableSecrets, "id", arn)
		if err != nil {
			return internal(err)
		}
		if raw == nil {
			continue
		}
		s := raw.(*Secret)
		if !s.Scheduled() || s.DeletionDate > c.Now {
			continue
		}
		if e := removeSecret(txn, index, s, c.Now); e != nil {
			return e
		}
		res.Purged = append(res.Purged, arn)
	}
	return res
}
