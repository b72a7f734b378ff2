package fsm

import (
	"github.com/cofferhq/coffer/apierr"
	"github.com/hashicorp/go-memdb"
)

// Command types applied here (command.go: the log format; never
// renumber or reuse one).
const (
	CmdResetRegion CommandType = 7
)

// ResetRegion empties a region: every secret goes, in one transaction;
// the region record (keyring, account) and the access keys stay. Only
// `coffer dev` writes it (POST /v1/dev/reset); Region must name the region
// it is applied to.
type ResetRegion struct {
	Region string
	Date   int64
}

func init() {
	register(CmdResetRegion, "ResetRegion", applyResetRegion)
}

// Every table is either wiped by ResetRegion or kept by it; a test fails
// when a table is in neither list, so a new table gets a decision. Wipe
// what belongs to secrets (their versions, labels, tags, and later their
// rotation and replication state); keep what makes the region and its
// callers: the keyring, the account, the access keys and the IAM users,
// groups and policies. The tombstones stay
// too: the reset adds one per secret, so the change feed reports it.
var (
	resetTables = []string{tableSecrets, tableReplTargets, tableReplSources, tableReplDrops}
	keptTables  = []string{tableRegion, tableAccessKeys, tableMeta, tableTombstones, tableKeys, tableAliases, tableRotators,
		tableUsers, tableGroups, tablePolicies}
)

// applyResetRegion empties the region in the command's transaction, so a
// reader sees the state before or after, never part of it. It refuses a
// region that has not bootstrapped or whose name differs from the one the
// command was built for.
func applyResetRegion(txn *memdb.Txn, index uint64, c *ResetRegion) any {
	raw, err := txn.First(tableRegion, "id", regionID)
	if err != nil {
		return internal(err)
	}
	if raw == nil {
		return apierr.New(apierr.InvalidRequest, "the region is not initialized")
	}
	if name := raw.(*Region).Name; name != c.Region {
		return apierr.Newf(apierr.InvalidRequest, "a reset of region %q cannot apply to region %q", c.Region, name)
	}
	// Every secret leaves a tombstone. Collected first: a write
	// transaction's iterator does not survive changes.
	var gone []*Secret
	it, err := txn.Get(tableSecrets, "id")
	if err != nil {
		return internal(err)
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		gone = append(gone, obj.(*Secret))
	}
	for _, s := range gone {
		if e := leaveTombstone(txn, index, s, c.Date); e != nil {
			return e
		}
	}
	for _, table := range resetTables {
		if _, err := txn.DeleteAll(table, "id"); err != nil {
			return internal(err)
		}
	}
	return &Result{}
}
