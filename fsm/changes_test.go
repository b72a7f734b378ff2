package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-memdb"
)

// indexes returns a secret's CreateIndex and ModifyIndex.
func (h *harness) indexes(arn string) (create, modify uint64) {
	h.t.Helper()
	s := h.secret(arn)
	return s.CreateIndex, s.ModifyIndex
}

// Every command that changes a secret sets its ModifyIndex to the
// command's log index, and CreateIndex only on creation; a command that
// succeeds without changing anything, and a refused one, leave both.
func TestFSM_ChangeIndexes_EachCommand(t *testing.T) {
	h := newHarness(t)
	resetTestRegion(h)
	a := arnOf("a", "aaaaaa")
	h.ok(fsm.CmdCreateSecret, createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0))
	created := h.index()
	if c, m := h.indexes(a); c != created || m != created {
		t.Fatalf("after CreateSecret at %d: CreateIndex %d, ModifyIndex %d", created, c, m)
	}

	changes := []struct {
		name string
		ct   fsm.CommandType
		cmd  any
	}{
		{"PutSecretValue", fsm.CmdPutSecretValue, putCmd(a, "v2", nil, t0+1)},
		{"PutSecretValue pending", fsm.CmdPutSecretValue, putCmd(a, "v3", L{pend}, t0+2)},
		{"UpdateSecretVersionStage", fsm.CmdUpdateSecretVersionStage, stageCmd(a, cur, "v2", "v3", t0+3)},
		{"UpdateSecret metadata", fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: a, Description: sp("d"), Date: t0 + 4}},
		{"UpdateSecret value", fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: a, Version: strVersionPtr("v4", "y"), Date: t0 + 5}},
		{"UpdateSecret value and metadata", fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: a, KmsKeyID: sp("k"), Version: strVersionPtr("v5", "z"), Date: t0 + 6}},
		{"TagResource", fsm.CmdTagResource, &fsm.TagResource{ARN: a, Tags: []fsm.Tag{{Key: "k", Value: "v"}}, Date: t0 + 7}},
		{"UntagResource", fsm.CmdUntagResource, &fsm.UntagResource{ARN: a, Keys: []string{"k"}, Date: t0 + 8}},
		{"PutResourcePolicy", fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: a, Policy: "{}", Date: t0 + 9}},
		{"DeleteResourcePolicy", fsm.CmdDeleteResourcePolicy, &fsm.DeleteResourcePolicy{ARN: a, Date: t0 + 10}},
		{"DeleteSecret with a window", fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: a, DeletionDate: t0 + 7*day, Date: t0 + 11}},
		{"RestoreSecret", fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: a, Date: t0 + 12}},
	}
	for _, c := range changes {
		h.ok(c.ct, c.cmd)
		if cr, m := h.indexes(a); cr != created || m != h.index() {
			t.Fatalf("%s at %d: CreateIndex %d, ModifyIndex %d; want %d, %d", c.name, h.index(), cr, m, created, h.index())
		}
		if fsm.TombstoneByARN(h.txn(), a) != nil {
			t.Fatalf("%s left a tombstone", c.name)
		}
	}

	// Successes that change nothing, and refusals, move no index.
	_, last := h.indexes(a)
	for _, c := range []struct {
		name string
		ct   fsm.CommandType
		cmd  any
		ok   bool
	}{
		{"PutSecretValue retry", fsm.CmdPutSecretValue, putCmd(a, "v5", nil, t0+20), false}, // refused: other value, same token
		{"TagResource, nothing new", fsm.CmdTagResource, &fsm.TagResource{ARN: a, Date: t0 + 21}, true},
		{"UntagResource, absent key", fsm.CmdUntagResource, &fsm.UntagResource{ARN: a, Keys: []string{"none"}, Date: t0 + 22}, true},
		{"RestoreSecret, not scheduled", fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: a, Date: t0 + 23}, true},
		{"DeleteResourcePolicy, none", fsm.CmdDeleteResourcePolicy, &fsm.DeleteResourcePolicy{ARN: a, Date: t0 + 24}, true},
		{"UpdateSecretVersionStage, already there", fsm.CmdUpdateSecretVersionStage, stageCmd(a, cur, "", "v5", t0+25), true},
		{"CreateSecret, name taken", fsm.CmdCreateSecret, createCmd("a", "bbbbbb", nil, t0+26), false},
	} {
		if _, ok := h.apply(c.ct, c.cmd).(*fsm.Result); ok != c.ok {
			t.Fatalf("%s: success %v, want %v", c.name, ok, c.ok)
		}
		h.assertLastChangedNothing()
		if cr, m := h.indexes(a); cr != created || m != last {
			t.Fatalf("%s: CreateIndex %d, ModifyIndex %d; want %d, %d", c.name, cr, m, created, last)
		}
	}

	// A forced delete removes the secret and leaves a tombstone; the name
	// re-created is a new secret with a new CreateIndex.
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: a, Force: true, Date: t0 + 30})
	want := fsm.Tombstone{ARN: a, Name: "a", DeleteIndex: h.index(), Date: t0 + 30}
	if tb := fsm.TombstoneByARN(h.txn(), a); tb == nil || *tb != want {
		t.Fatalf("tombstone %+v, want %+v", tb, want)
	}
	a2 := arnOf("a", "a2a2a2")
	h.ok(fsm.CmdCreateSecret, createCmd("a", "a2a2a2", nil, t0+31))
	if c, m := h.indexes(a2); c != h.index() || m != h.index() {
		t.Fatalf("re-created a: CreateIndex %d, ModifyIndex %d, want %d", c, m, h.index())
	}

	// PurgeSecrets: a tombstone dated Now for each secret it removes, at
	// one index; the one not due keeps its indexes.
	b, c := arnOf("b", "bbbbbb"), arnOf("c", "cccccc")
	h.ok(fsm.CmdCreateSecret, createCmd("b", "bbbbbb", nil, t0+32))
	h.ok(fsm.CmdCreateSecret, createCmd("c", "cccccc", nil, t0+33))
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: b, DeletionDate: t0 + 40, Date: t0 + 34})
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: a2, DeletionDate: t0 + 40, Date: t0 + 35})
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: c, DeletionDate: t0 + 9*day, Date: t0 + 36})
	_, cMod := h.indexes(c)
	h.ok(fsm.CmdPurgeSecrets, &fsm.PurgeSecrets{ARNs: []string{b, a2, c}, Now: t0 + 50})
	for _, s := range []struct{ arn, name string }{{b, "b"}, {a2, "a"}} {
		want := fsm.Tombstone{ARN: s.arn, Name: s.name, DeleteIndex: h.index(), Date: t0 + 50}
		if tb := fsm.TombstoneByARN(h.txn(), s.arn); tb == nil || *tb != want {
			t.Fatalf("purge tombstone %+v, want %+v", tb, want)
		}
	}
	if _, m := h.indexes(c); m != cMod || fsm.TombstoneByARN(h.txn(), c) != nil {
		t.Fatal("the purge touched a secret that was not due")
	}

	// ResetRegion: a tombstone dated Date for every secret, at one index.
	h.ok(fsm.CmdResetRegion, &fsm.ResetRegion{Region: testRegion, Date: t0 + 60})
	want = fsm.Tombstone{ARN: c, Name: "c", DeleteIndex: h.index(), Date: t0 + 60}
	if tb := fsm.TombstoneByARN(h.txn(), c); tb == nil || *tb != want {
		t.Fatalf("reset tombstone %+v, want %+v", tb, want)
	}
	// Earlier tombstones stay as they were.
	if tb := fsm.TombstoneByARN(h.txn(), b); tb == nil || tb.Date != t0+50 {
		t.Fatalf("b's purge tombstone after the reset: %+v", tb)
	}
}

// Recording an access is a read, not a change: ModifyIndex stays and the
// feed does not list the secret, though LastAccessedDate moves.
func TestFSM_RecordAccess_NotAChange(t *testing.T) {
	h, arn := newSecretWithVersions(t)
	_, before := h.indexes(arn)
	from := h.index()
	h.ok(fsm.CmdRecordAccess, &fsm.RecordAccess{Day: t0 - t0%day + day, Secrets: []fsm.AccessedSecret{{ARN: arn, VersionIDs: []string{"v1", "v2"}}}})
	s := h.secret(arn)
	if s.LastAccessedDate != t0-t0%day+day {
		t.Fatalf("LastAccessedDate %d: the access was not recorded", s.LastAccessedDate)
	}
	if s.ModifyIndex != before {
		t.Fatalf("RecordAccess moved ModifyIndex from %d to %d", before, s.ModifyIndex)
	}
	page, err := fsm.ChangesAfter(h.txn(), from, 10)
	if err != nil || len(page.Items) != 0 || page.Next != h.index() || page.More {
		t.Fatalf("ChangesAfter(%d) after RecordAccess: %+v, %v; want no changes, next %d", from, page, err, h.index())
	}
}

// feedEntry is a Change reduced to what a test compares.
type feedEntry struct {
	Index   uint64
	ARN     string
	Removed bool
}

func entries(items []fsm.Change) []feedEntry {
	out := make([]feedEntry, 0, len(items))
	for _, c := range items {
		if c.Tombstone != nil {
			out = append(out, feedEntry{c.Index, c.Tombstone.ARN, true})
		} else {
			out = append(out, feedEntry{c.Index, c.Secret.ARN, false})
		}
	}
	return out
}

// follow reads the whole feed after a cursor from one transaction, page by
// page, checking each page against the limit (a page ends at the end of an
// index, so it may pass the limit only with changes of one index).
func follow(t *testing.T, txn *memdb.Txn, after uint64, limit int) (all []fsm.Change, next uint64, pages int) {
	t.Helper()
	for {
		page, err := fsm.ChangesAfter(txn, after, limit)
		if err != nil {
			t.Fatalf("ChangesAfter(%d, %d): %v", after, limit, err)
		}
		pages++
		if n := len(page.Items); n > limit {
			if page.Items[limit-1].Index != page.Items[n-1].Index {
				t.Fatalf("page of %d (limit %d) spans several indexes past the limit: %v", n, limit, entries(page.Items))
			}
		}
		if page.More && (len(page.Items) == 0 || page.Next != page.Items[len(page.Items)-1].Index) {
			t.Fatalf("page with More: next %d, items %v", page.Next, entries(page.Items))
		}
		all = append(all, page.Items...)
		if page.Next < after {
			t.Fatalf("cursor moved back from %d to %d", after, page.Next)
		}
		after = page.Next
		if !page.More {
			return all, after, pages
		}
		if pages > 10000 {
			t.Fatal("the feed does not end")
		}
	}
}

// buildFeedHistory applies a history of creates, puts, tags, schedules,
// a forced delete, an access, a purge and a re-created name (the reset is
// in TestChangesAfter_OneIndexIsOnePage and the snapshot test).
func buildFeedHistory(h *harness) {
	h.t.Helper()
	resetTestRegion(h)
	a, b, c, d, e := arnOf("a", "aaaaaa"), arnOf("b", "bbbbbb"), arnOf("c", "cccccc"), arnOf("d", "dddddd"), arnOf("e", "eeeeee")
	h.ok(fsm.CmdCreateSecret, createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0))
	h.ok(fsm.CmdCreateSecret, createCmd("b", "bbbbbb", nil, t0+1))
	h.ok(fsm.CmdCreateSecret, createCmd("c", "cccccc", strVersionPtr("v1", "y"), t0+2))
	h.ok(fsm.CmdPutSecretValue, putCmd(a, "v2", nil, t0+3))
	h.ok(fsm.CmdNoop, &fsm.Noop{})
	h.ok(fsm.CmdCreateSecret, createCmd("d", "dddddd", nil, t0+4))
	h.ok(fsm.CmdTagResource, &fsm.TagResource{ARN: b, Tags: []fsm.Tag{{Key: "k", Value: "v"}}, Date: t0 + 5})
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: d, Force: true, Date: t0 + 6})
	h.ok(fsm.CmdPutSecretValue, putCmd(a, "v3", nil, t0+7))
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: c, DeletionDate: t0 + 20, Date: t0 + 8})
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: b, DeletionDate: t0 + 20, Date: t0 + 9})
	h.ok(fsm.CmdCreateSecret, createCmd("e", "eeeeee", nil, t0+10))
	h.ok(fsm.CmdRecordAccess, &fsm.RecordAccess{Day: t0 - t0%day, Secrets: []fsm.AccessedSecret{{ARN: e}}})
	h.ok(fsm.CmdPurgeSecrets, &fsm.PurgeSecrets{ARNs: []string{b, c}, Now: t0 + 30})
	h.ok(fsm.CmdCreateSecret, createCmd("d", "d2d2d2", nil, t0+31)) // d again, another ARN
	h.ok(fsm.CmdPutSecretValue, putCmd(e, "e1", nil, t0+32))
	h.ok(fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: a, Policy: "{}", Date: t0 + 33})
}

// expectedFeed is the feed after a cursor computed from the state: each
// secret changed after it at its ModifyIndex, each tombstone after it.
func expectedFeed(t *testing.T, txn *memdb.Txn, after uint64) []feedEntry {
	t.Helper()
	all, _, err := fsm.ListSecrets(txn, "", 1<<30, true)
	if err != nil {
		t.Fatal(err)
	}
	var want []feedEntry
	for _, s := range all {
		if s.ModifyIndex > after {
			want = append(want, feedEntry{s.ModifyIndex, s.ARN, false})
		}
	}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		for _, suffix := range []string{"aaaaaa", "bbbbbb", "cccccc", "dddddd", "eeeeee", "d2d2d2"} {
			if tb := fsm.TombstoneByARN(txn, arnOf(name, suffix)); tb != nil && tb.DeleteIndex > after {
				want = append(want, feedEntry{tb.DeleteIndex, tb.ARN, true})
			}
		}
	}
	slices.SortFunc(want, func(x, y feedEntry) int {
		switch {
		case x.Index != y.Index:
			return int(x.Index) - int(y.Index)
		case x.Removed != y.Removed:
			if x.Removed {
				return -1
			}
			return 1
		case x.ARN < y.ARN:
			return -1
		case x.ARN > y.ARN:
			return 1
		}
		return 0
	})
	return want
}

// ChangesAfter over a mixed history: each changed secret once at its
// latest index, the tombstones of the removed ones, in index order, the
// same whatever the page size and wherever the cursor starts.
func TestChangesAfter_MixedHistory(t *testing.T) {
	h := newHarness(t)
	buildFeedHistory(h)
	txn := h.txn()
	a, b, c, d, d2, e := arnOf("a", "aaaaaa"), arnOf("b", "bbbbbb"), arnOf("c", "cccccc"), arnOf("d", "dddddd"), arnOf("d", "d2d2d2"), arnOf("e", "eeeeee")

	// The whole feed, written out: a was created at 2 and changed at 5, 10
	// and 18, so it appears once, at 18; e's access at 14 is no change.
	want := []feedEntry{
		{9, d, true},
		{15, b, true}, {15, c, true},
		{16, d2, false},
		{17, e, false},
		{18, a, false},
	}
	if got, next, _ := follow(t, txn, 0, 100); !slices.Equal(entries(got), want) || next != h.index() {
		t.Fatalf("feed after 0:\n got %v (next %d)\nwant %v (next %d)", entries(got), next, want, h.index())
	}
	if !reflect.DeepEqual(expectedFeed(t, txn, 0), want) {
		t.Fatal("expectedFeed disagrees with the written-out feed")
	}
	for after := uint64(0); after <= h.index()+1; after++ {
		want := expectedFeed(t, txn, after)
		for _, limit := range []int{1, 2, 3, 5, 1000} {
			got, next, pages := follow(t, txn, after, limit)
			if !slices.Equal(entries(got), want) {
				t.Fatalf("after %d, limit %d:\n got %v\nwant %v", after, limit, entries(got), want)
			}
			if next != max(after, h.index()) {
				t.Fatalf("after %d, limit %d: final cursor %d, want %d", after, limit, next, max(after, h.index()))
			}
			// Five indexes carry changes; the purge's two tombstones
			// share a page.
			if limit == 1 && after == 0 && pages != 5 {
				t.Fatalf("after 0, limit 1: %d pages, want 5", pages)
			}
		}
	}
	// The items are the state itself, not copies.
	page, _ := fsm.ChangesAfter(txn, 17, 10)
	if len(page.Items) != 1 || page.Items[0].Secret != fsm.SecretByARN(txn, a) {
		t.Fatal("the feed's secret is not the one in the state")
	}
	if _, err := fsm.ChangesAfter(txn, 0, 0); err == nil {
		t.Fatal("limit 0 accepted")
	}
}

// consumer mirrors the secrets through the change feed, as a replication
// shipper or a watch client would.
type consumer struct {
	cursor  uint64
	secrets map[string]*fsm.Secret
}

func (c *consumer) poll(t *testing.T, txn *memdb.Txn, limit int) {
	t.Helper()
	page, err := fsm.ChangesAfter(txn, c.cursor, limit)
	if err != nil {
		t.Fatalf("ChangesAfter(%d): %v", c.cursor, err)
	}
	for _, ch := range page.Items {
		if ch.Tombstone != nil {
			delete(c.secrets, ch.Tombstone.ARN)
		} else {
			c.secrets[ch.Secret.ARN] = ch.Secret
		}
	}
	c.cursor = page.Next
}

// A consumer that polls one page between entries, whatever the page size,
// ends with the final state: the same secrets, each at its last change.
func TestChangesAfter_ConsumerSeesFinalState(t *testing.T) {
	for _, limit := range []int{1, 2, 3, 100} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			src := newHarness(t)
			buildFeedHistory(src)
			src.ok(fsm.CmdResetRegion, &fsm.ResetRegion{Region: testRegion, Date: t0 + 40})
			src.ok(fsm.CmdCreateSecret, createCmd("a", "a3a3a3", nil, t0+41))
			src.ok(fsm.CmdPutSecretValue, putCmd(arnOf("a", "a3a3a3"), "v1", nil, t0+42))
			// The same log again, one page polled after each entry.
			h := newHarness(t)
			con := &consumer{secrets: map[string]*fsm.Secret{}}
			for _, l := range src.log {
				h.applyRaw(l.Data)
				con.poll(t, h.txn(), limit)
			}
			// Then catch up.
			for range 100 {
				con.poll(t, h.txn(), limit)
			}
			if con.cursor != h.index() {
				t.Fatalf("cursor %d, state at %d", con.cursor, h.index())
			}
			all, _, _ := fsm.ListSecrets(h.txn(), "", 1000, true)
			if len(con.secrets) != len(all) {
				t.Fatalf("consumer has %d secrets, the state %d", len(con.secrets), len(all))
			}
			for _, s := range all {
				if got := con.secrets[s.ARN]; got == nil || got.ModifyIndex != s.ModifyIndex || !reflect.DeepEqual(got, s) {
					t.Fatalf("consumer's %s: %+v\nstate: %+v", s.ARN, got, s)
				}
			}
		})
	}
}

// A page never splits the changes of one index: a reset of many secrets
// comes whole, even past the limit.
func TestChangesAfter_OneIndexIsOnePage(t *testing.T) {
	h := newHarness(t)
	resetTestRegion(h)
	for i := range 5 {
		h.ok(fsm.CmdCreateSecret, createCmd(fmt.Sprint("s", i), "ssssss", nil, t0+int64(i)))
	}
	h.ok(fsm.CmdResetRegion, &fsm.ResetRegion{Region: testRegion, Date: t0 + 10})
	h.ok(fsm.CmdCreateSecret, createCmd("after", "aaaaaa", nil, t0+11))
	before := h.index() - 2
	page, err := fsm.ChangesAfter(h.txn(), before, 2)
	if err != nil || len(page.Items) != 5 || !page.More || page.Next != before+1 {
		t.Fatalf("page %v more %v next %d, %v; want the reset's 5 tombstones, more, next %d", entries(page.Items), page.More, page.Next, err, before+1)
	}
	for _, c := range page.Items {
		if c.Tombstone == nil || c.Index != before+1 || c.Tombstone.Date != t0+10 {
			t.Fatalf("reset page item %+v", c)
		}
	}
	page, err = fsm.ChangesAfter(h.txn(), page.Next, 2)
	if err != nil || len(page.Items) != 1 || page.Items[0].Secret == nil || page.More || page.Next != h.index() {
		t.Fatalf("next page %v more %v next %d, %v", entries(page.Items), page.More, page.Next, err)
	}
}

// Compaction removes only the tombstones below Before; cursors below it
// get ErrCompacted; TombstonesBefore picks Before from a date.
func TestFSM_CompactTombstones(t *testing.T) {
	h := newHarness(t)
	resetTestRegion(h)
	var removedAt []uint64 // index of each forced delete; date t0 + i*day
	for i := range 4 {
		name := fmt.Sprint("s", i)
		h.ok(fsm.CmdCreateSecret, createCmd(name, "ssssss", nil, t0))
		h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf(name, "ssssss"), Force: true, Date: t0 + int64(i)*day})
		removedAt = append(removedAt, h.index())
	}
	h.ok(fsm.CmdCreateSecret, createCmd("live", "llllll", nil, t0))
	txn := h.txn()

	for _, tc := range []struct {
		date   int64
		before uint64
		n      int
	}{
		{t0, 0, 0},
		{t0 + 1, removedAt[0] + 1, 1},
		{t0 + 2*day, removedAt[1] + 1, 2},
		{t0 + 2*day + 1, removedAt[2] + 1, 3},
		{t0 + 100*day, removedAt[3] + 1, 4},
	} {
		before, n, err := fsm.TombstonesBefore(txn, tc.date)
		if err != nil || before != tc.before || n != tc.n {
			t.Fatalf("TombstonesBefore(t0%+d) = %d, %d, %v; want %d, %d", tc.date-t0, before, n, err, tc.before, tc.n)
		}
	}
	if fsm.TombstonesCompactedBefore(txn) != 0 {
		t.Fatal("compaction mark set before any compaction")
	}

	// Before beyond the command's own index: refused, nothing changes.
	h.fail(fsm.CmdCompactTombstones, &fsm.CompactTombstones{Before: h.index() + 2}, apierr.InvalidParameter,
		fmt.Sprintf("CompactTombstones: Before %d is beyond the command's own index %d", h.index()+2, h.index()+1))

	before, _, _ := fsm.TombstonesBefore(h.txn(), t0+2*day)
	h.ok(fsm.CmdCompactTombstones, &fsm.CompactTombstones{Before: before})
	txn = h.txn()
	for i, at := range removedAt {
		tb := fsm.TombstoneByARN(txn, arnOf(fmt.Sprint("s", i), "ssssss"))
		if gone := at < before; gone != (tb == nil) {
			t.Fatalf("tombstone of s%d at %d after compacting before %d: %+v", i, at, before, tb)
		}
	}
	if fsm.TombstonesCompactedBefore(txn) != before {
		t.Fatalf("compaction mark %d, want %d", fsm.TombstonesCompactedBefore(txn), before)
	}
	for after := uint64(0); after < before-1; after++ {
		if _, err := fsm.ChangesAfter(txn, after, 10); !errors.Is(err, fsm.ErrCompacted) {
			t.Fatalf("ChangesAfter(%d) after compacting before %d: %v, want ErrCompacted", after, before, err)
		}
	}
	got, _, _ := follow(t, txn, before-1, 10)
	want := []feedEntry{{removedAt[2], arnOf("s2", "ssssss"), true}, {removedAt[3], arnOf("s3", "ssssss"), true}, {removedAt[3] + 1, arnOf("live", "llllll"), false}}
	if !slices.Equal(entries(got), want) {
		t.Fatalf("feed after the compaction mark:\n got %v\nwant %v", entries(got), want)
	}

	// An older or equal Before removes nothing and keeps the mark.
	h.ok(fsm.CmdCompactTombstones, &fsm.CompactTombstones{Before: before - 1})
	h.assertLastChangedNothing()
	h.ok(fsm.CmdCompactTombstones, &fsm.CompactTombstones{Before: before})
	h.assertLastChangedNothing()
	if fsm.TombstonesCompactedBefore(h.txn()) != before {
		t.Fatal("an older compaction moved the mark back")
	}

	// Compacting everything leaves the live secret alone.
	last, n, _ := fsm.TombstonesBefore(h.txn(), t0+100*day)
	if n != 2 {
		t.Fatalf("%d tombstones left to compact, want 2", n)
	}
	h.ok(fsm.CmdCompactTombstones, &fsm.CompactTombstones{Before: last})
	if _, n, _ := fsm.TombstonesBefore(h.txn(), t0+100*day); n != 0 {
		t.Fatalf("%d tombstones left", n)
	}
	if h.secret(arnOf("live", "llllll")) == nil {
		t.Fatal("compaction removed a secret")
	}
}

// A snapshot carries the indexes, the tombstones and the compaction mark:
// the restored node answers the feed as the original, has the same digest
// and the same snapshot bytes, and the two stay in step.
func TestFSM_SnapshotRestore_ChangeFeed(t *testing.T) {
	h := newHarness(t)
	buildFeedHistory(h)
	h.ok(fsm.CmdCompactTombstones, &fsm.CompactTombstones{Before: 10}) // removes d's tombstone (9)
	data := snapshotBytes(t, h.f)

	g := fsm.New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if digestOf(t, g) != digestOf(t, h.f) {
		t.Fatal("restored digest differs")
	}
	if !bytes.Equal(snapshotBytes(t, g), data) {
		t.Fatal("a snapshot of the restored state differs")
	}
	gtxn, _ := g.ReadTxn()
	htxn := h.txn()
	if fsm.TombstonesCompactedBefore(gtxn) != 10 {
		t.Fatalf("restored compaction mark %d", fsm.TombstonesCompactedBefore(gtxn))
	}
	if _, err := fsm.ChangesAfter(gtxn, 8, 10); !errors.Is(err, fsm.ErrCompacted) {
		t.Fatalf("restored node: ChangesAfter(8) = %v, want ErrCompacted", err)
	}
	for after := uint64(9); after <= h.index(); after++ {
		want, wantNext, _ := follow(t, htxn, after, 2)
		got, gotNext, _ := follow(t, gtxn, after, 2)
		if !reflect.DeepEqual(got, want) || gotNext != wantNext {
			t.Fatalf("after %d: restored feed %v (next %d), original %v (next %d)", after, entries(got), gotNext, entries(want), wantNext)
		}
	}
	for _, arn := range []string{arnOf("a", "aaaaaa"), arnOf("e", "eeeeee"), arnOf("d", "d2d2d2")} {
		hs, gs := fsm.SecretByARN(htxn, arn), fsm.SecretByARN(gtxn, arn)
		if gs == nil || gs.CreateIndex == 0 || gs.CreateIndex != hs.CreateIndex || gs.ModifyIndex != hs.ModifyIndex {
			t.Fatalf("%s restored with indexes %+v, want %d/%d", arn, gs, hs.CreateIndex, hs.ModifyIndex)
		}
	}

	// Both nodes apply the same entries and stay equal.
	gh := &harness{t: t, f: g, log: slices.Clone(h.log), check: true}
	for _, e := range [][]byte{
		encode(t, fsm.CmdPutSecretValue, putCmd(arnOf("a", "aaaaaa"), "v9", nil, t0+100)),
		encode(t, fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf("e", "eeeeee"), Force: true, Date: t0 + 101}),
		encode(t, fsm.CmdCompactTombstones, &fsm.CompactTombstones{Before: 16}),
		encode(t, fsm.CmdResetRegion, &fsm.ResetRegion{Region: testRegion, Date: t0 + 102}),
	} {
		r1, r2 := h.applyRaw(e), gh.applyRaw(e)
		if !reflect.DeepEqual(r1, r2) {
			t.Fatalf("answers differ: %#v vs %#v", r1, r2)
		}
		if _, failed := r1.(*apierr.Error); failed {
			t.Fatalf("entry refused: %v", r1)
		}
		if digestOf(t, h.f) != digestOf(t, g) {
			t.Fatal("digests differ after the same entry")
		}
	}
}
