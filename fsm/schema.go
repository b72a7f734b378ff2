package fsm

import (
	"maps"

	"github.com/hashicorp/go-memdb"
)

// Table names.
const (
	tableSecrets    = "secrets"
	tableAccessKeys = "access_keys"
	tableRegion     = "region"
	tableMeta       = "meta"
	tableTombstones = "tombstones"
	tableKeys       = "keys"
	tableAliases    = "aliases"
)

// meta is the FSM's own bookkeeping, written in the same transaction as the
// state it describes, so a read transaction sees the index its state is at.
type meta struct {
	ID    string // metaApplied or metaCompacted
	Index uint64
}

// Rows of the meta table.
const (
	// metaApplied: the index of the last log entry the state reflects.
	metaApplied = "applied"
	// metaCompacted: CompactTombstones removed every tombstone whose
	// DeleteIndex is below this (TombstonesCompactedBefore).
	metaCompacted = "compacted"
)

// snapshotTable is a table a snapshot carries: its records are written as
// record type record (append only: never reuse or renumber a record type;
// 0 ends a snapshot) and read back into new().
type snapshotTable struct {
	table  string
	record recordType
	new    func() any
}

// snapshotTables are the tables a snapshot carries, in the order it writes
// them (the state digest is a hash of that stream, so the order is part of
// it: append only). A new table is declared here and in schema, and
// nowhere else in the snapshot code; a test fails when a table of the
// schema is in neither snapshotTables nor unsnapshotted.
var snapshotTables = []snapshotTable{
	{tableRegion, 1, func() any { return new(Region) }},
	{tableAccessKeys, 2, func() any { return new(AccessKey) }},
	{tableSecrets, 3, func() any { return new(Secret) }},
	{tableTombstones, 4, func() any { return new(Tombstone) }},
	{tableKeys, 5, func() any { return new(Key) }},
	{tableAliases, 6, func() any { return new(Alias) }},
	{tableReplTargets, 7, func() any { return new(ReplTarget) }},
	{tableReplSources, 8, func() any { return new(ReplSource) }},
	{tableReplDrops, 9, func() any { return new(ReplDrop) }},
	{tableRotators, 10, func() any { return new(Rotator) }},
	{tableUsers, 11, func() any { return new(User) }},
	{tableGroups, 12, func() any { return new(Group) }},
	{tablePolicies, 13, func() any { return new(ManagedPolicy) }},
}

// unsnapshotted are the tables a snapshot does not carry as records: meta
// is the FSM's bookkeeping, which the snapshot header carries.
var unsnapshotted = []string{tableMeta}

func schema() *memdb.DBSchema {
	s := baseSchema()
	maps.Copy(s.Tables, replicationSchema())
	maps.Copy(s.Tables, rotationSchema())
	maps.Copy(s.Tables, iamSchema())
	s.Tables[tableAccessKeys].Indexes[accessKeyUserIndex.Name] = accessKeyUserIndex
	s.Tables[tableSecrets].Indexes[rotatingIndex.Name] = rotatingIndex
	return s
}

func baseSchema() *memdb.DBSchema {
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
				// modify orders the secrets by ModifyIndex, then ARN: the
				// change feed (ChangesAfter).
				"modify": {Name: "modify", Unique: true, Indexer: logIndex[Secret]{
					func(s *Secret) (uint64, string) { return s.ModifyIndex, s.ARN }}},
			},
		},
		tableTombstones: {
			Name: tableTombstones,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ARN"}},
				// index orders the tombstones by DeleteIndex, then ARN: the
				// change feed and compaction.
				"index": {Name: "index", Unique: true, Indexer: logIndex[Tombstone]{
					func(t *Tombstone) (uint64, string) { return t.DeleteIndex, t.ARN }}},
			},
		},
		tableAccessKeys: {
			Name: tableAccessKeys,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "AccessKeyID"}},
			},
		},
		tableKeys: {
			Name: tableKeys,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			},
		},
		tableAliases: {
			Name: tableAliases,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
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
