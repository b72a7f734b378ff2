package fsm

import (
	"slices"
	"testing"
)

// Every table must be either wiped or kept by ResetRegion: a table added
// without a decision fails here.
func TestResetRegion_ClassifiesEveryTable(t *testing.T) {
	for name := range schema().Tables {
		wiped, kept := slices.Contains(resetTables, name), slices.Contains(keptTables, name)
		if wiped == kept {
			t.Errorf("table %q: wiped by ResetRegion=%v, kept=%v; add it to exactly one of resetTables and keptTables (fsm/apply_reset.go)", name, wiped, kept)
		}
	}
	for _, name := range slices.Concat(resetTables, keptTables) {
		if _, ok := schema().Tables[name]; !ok {
			t.Errorf("apply_reset.go names table %q, which the schema does not have", name)
		}
	}
}
