package fsm

import (
	"slices"
	"testing"
)

// Every table of the schema is either carried by snapshots (snapshotTables)
// or deliberately not (unsnapshotted): a table added without a decision
// fails here. Record types are unique and never 0 (recordEnd).
func TestSnapshotTables_CoverSchema(t *testing.T) {
	tables := schema().Tables
	seenRecord := map[recordType]string{}
	seenTable := map[string]bool{}
	for _, tbl := range snapshotTables {
		if _, ok := tables[tbl.table]; !ok {
			t.Errorf("snapshotTables names table %q, which the schema does not have", tbl.table)
		}
		if tbl.record == recordEnd {
			t.Errorf("table %q has record type 0, which ends a snapshot", tbl.table)
		}
		if other, dup := seenRecord[tbl.record]; dup {
			t.Errorf("record type %d used by %q and %q", tbl.record, other, tbl.table)
		}
		seenRecord[tbl.record] = tbl.table
		if seenTable[tbl.table] {
			t.Errorf("table %q listed twice", tbl.table)
		}
		seenTable[tbl.table] = true
		if tbl.new() == nil {
			t.Errorf("table %q: new() returned nil", tbl.table)
		}
	}
	for name := range tables {
		if seenTable[name] == slices.Contains(unsnapshotted, name) {
			t.Errorf("table %q: in snapshotTables=%v, unsnapshotted=%v; add it to exactly one (fsm/schema.go)",
				name, seenTable[name], slices.Contains(unsnapshotted, name))
		}
	}
	// The record types of the tables that existed before the list are the
	// snapshot format: they never change.
	for table, want := range map[string]recordType{tableRegion: 1, tableAccessKeys: 2, tableSecrets: 3} {
		i := slices.IndexFunc(snapshotTables, func(s snapshotTable) bool { return s.table == table })
		if i < 0 || snapshotTables[i].record != want {
			t.Errorf("table %q: record type changed, want %d", table, want)
		}
	}
}
