package fsm

import "github.com/hashicorp/go-memdb"

// Table names.
const (
	tableSecrets    = "secrets"
	tableAccessKeys = "access_keys"
	tableRegion     = "region"
	tableMeta       = "meta"
)

// meta is the FSM's own bookkeeping, written in the same transaction as the
// state it describes, so a read transaction sees the index its state is at.
type meta struct {
	ID    string // always "applied"
	Index uint64
}

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableSecrets: {
			Name: tableSecrets,
			Indexes: map[string]*memdb.IndexSchema{
				"id":   {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ARN"}},
				"name": {Name: "name", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
				"list": {Name: "list", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ListKey"}},
				// changed and accessed order ListSecrets by LastChangedDate
				// and LastAccessedDate, ties broken by ARN (query_list.go);
				// "list" orders by CreatedDate and "name" by Name.
				"changed":  {Name: "changed", Unique: true, Indexer: dateIndex{func(s *Secret) int64 { return s.LastChangedDate }}},
				"accessed": {Name: "accessed", Unique: true, Indexer: dateIndex{func(s *Secret) int64 { return s.LastAccessedDate }}},
				// deletion orders the secrets scheduled for deletion by the
				// end of their recovery window, for the purge.
				"deletion": {Name: "deletion", AllowMissing: true, Indexer: deletionIndex{}},
			},
		},
		tableAccessKeys: {
			Name: tableAccessKeys,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "AccessKeyID"}},
			},
		},
		tableRegion: {
			Name: tableRegion,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			},
		},
		tableMeta: {
			Name: tableMeta,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			},
		},
	}}
}
