package fsm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/raft"
)

// A bad entry is refused with InternalServiceError, changes nothing but the
// applied index, and does not stop the FSM. (An entry of a type this binary
// does not know is another matter: registry_test.go.)
func TestFSM_Apply_Undecodable(t *testing.T) {
	valid := encode(t, fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v1", "a"), t0))
	tests := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"type zero", []byte{0}},
		{"type byte only", []byte{byte(fsm.CmdCreateSecret)}},
		{"truncated msgpack", valid[:len(valid)/2]},
		{"truncated by one", valid[:len(valid)-1]},
		{"wrong msgpack type", []byte{byte(fsm.CmdPutSecretValue), 0xa3, 'a', 'b', 'c'}},
		{"huge array length", []byte{byte(fsm.CmdCreateSecret), 0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"huge bin length", []byte{byte(fsm.CmdInitRegion), 0x81, 0xad, 'S', 'e', 'a', 'l', 'e', 'd', 'K', 'e', 'y', 'r', 'i', 'n', 'g', 0xc6, 0x7f, 0xff, 0xff, 0xff}},
		{"deep nesting", append([]byte{byte(fsm.CmdNoop)}, bytes.Repeat([]byte{0x91}, 5000)...)},
		{"random bytes", []byte{0x02, 0x9f, 0x13, 0xc7, 0x44, 0xe1, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x7a}},
		{"text", []byte("\x03{\"ARN\":\"x\"}")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.ok(fsm.CmdCreateSecret, createCmd("other", "xyz789", strVersionPtr("v1", "b"), t0))
			resp := h.applyRaw(tc.data)
			e, isErr := resp.(*apierr.Error)
			if !isErr || e.Code != apierr.InternalServiceError || !strings.HasPrefix(e.Message, "undecodable command: ") {
				t.Fatalf("got %#v, want InternalServiceError undecodable command", resp)
			}
			h.assertLastChangedNothing()
			if h.f.AppliedIndex() != 2 {
				t.Fatalf("applied index %d, want 2", h.f.AppliedIndex())
			}
			// The next good entry applies normally.
			h.ok(fsm.CmdNoop, &fsm.Noop{Term: 2})
			if h.f.AppliedIndex() != 3 {
				t.Fatalf("applied index %d, want 3", h.f.AppliedIndex())
			}
		})
	}
}

func TestFSM_Apply_Noop(t *testing.T) {
	h := newHarness(t)
	if res := h.ok(fsm.CmdNoop, &fsm.Noop{Term: 7}); !reflect.DeepEqual(res, &fsm.Result{}) {
		t.Fatalf("result %+v", res)
	}
	h.assertLastChangedNothing()
}

func TestFSM_WaitApplied(t *testing.T) {
	h := newHarness(t)
	h.ok(fsm.CmdNoop, &fsm.Noop{})
	h.ok(fsm.CmdNoop, &fsm.Noop{})

	t.Run("reached", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a reached index wins over a done context
		for _, idx := range []uint64{0, 1, 2} {
			if err := h.f.WaitApplied(ctx, idx); err != nil {
				t.Fatalf("WaitApplied(%d) at 2: %v", idx, err)
			}
		}
	})

	t.Run("blocks until applied", func(t *testing.T) {
		done := make(chan error, 1)
		go func() { done <- h.f.WaitApplied(context.Background(), 4) }()
		select {
		case err := <-done:
			t.Fatalf("WaitApplied(4) returned %v at index 2", err)
		case <-time.After(50 * time.Millisecond):
		}
		h.ok(fsm.CmdNoop, &fsm.Noop{}) // 3: still short
		select {
		case err := <-done:
			t.Fatalf("WaitApplied(4) returned %v at index 3", err)
		case <-time.After(50 * time.Millisecond):
		}
		h.ok(fsm.CmdNoop, &fsm.Noop{}) // 4
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("WaitApplied(4) still blocked at index 4")
		}
	})

	t.Run("a refused entry counts", func(t *testing.T) {
		done := make(chan error, 1)
		go func() { done <- h.f.WaitApplied(context.Background(), 5) }()
		h.applyRaw([]byte{byte(fsm.CmdCreateSecret)})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.f.WaitApplied(ctx, 100) }()
		time.Sleep(20 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("WaitApplied ignored cancellation")
		}
	})

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := h.f.WaitApplied(ctx, 100); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want context.DeadlineExceeded", err)
		}
	})

	t.Run("many waiters", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		target := h.index() + 3
		for range 20 {
			wg.Go(func() { errs <- h.f.WaitApplied(context.Background(), target) })
		}
		for range 3 {
			h.ok(fsm.CmdNoop, &fsm.Noop{})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestFSM_StoreConfiguration(t *testing.T) {
	h := newHarness(t)
	h.ok(fsm.CmdNoop, &fsm.Noop{})
	done := make(chan error, 1)
	go func() { done <- h.f.WaitApplied(context.Background(), 2) }()

	cfg := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "n1", Address: "n1:7000"}}}
	h.f.StoreConfiguration(2, cfg)
	if got := h.f.AppliedIndex(); got != 2 {
		t.Fatalf("AppliedIndex %d after StoreConfiguration(2)", got)
	}
	if _, idx := h.f.ReadTxn(); idx != 2 {
		t.Fatalf("ReadTxn index %d after StoreConfiguration(2)", idx)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The index is part of the state: a snapshot taken now carries it.
	g := fsm.New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, h.f)))); err != nil {
		t.Fatal(err)
	}
	if g.AppliedIndex() != 2 {
		t.Fatalf("restored index %d", g.AppliedIndex())
	}
}

// buildMixedLog applies a bit of everything.
func buildMixedLog(h *harness) {
	h.t.Helper()
	h.ok(fsm.CmdInitRegion, &fsm.InitRegion{Region: testRegion, AccountID: testAccount, KEKID: "kek-1",
		SealedKeyring: []byte{1, 2, 3}, RootKey: fsm.AccessKey{AccessKeyID: "AKIAROOT", Identity: "root", SealedSecret: []byte{9}, CreatedDate: t0}, Date: t0})
	a, b, c := arnOf("a", "aaaaaa"), arnOf("b", "bbbbbb"), arnOf("c", "cccccc")
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: a, Name: "a", Description: "d", KmsKeyID: "k",
		Tags: []fsm.Tag{{Key: "z", Value: "1"}, {Key: "a", Value: ""}}, Version: strVersionPtr("v1", "x"), Date: t0 + 1})
	h.ok(fsm.CmdCreateSecret, createCmd("b", "bbbbbb", nil, t0+2))
	h.ok(fsm.CmdCreateSecret, createCmd("c", "cccccc", strVersionPtr("v1", "y"), t0+3))
	h.ok(fsm.CmdPutSecretValue, putCmd(a, "v2", nil, t0+4))
	h.ok(fsm.CmdPutSecretValue, putCmd(a, "v3", L{pend, "custom"}, t0+5))
	h.ok(fsm.CmdPutSecretValue, putCmd(a, "v4", nil, t0+6)) // leaves v3 [custom], v1 []
	h.ok(fsm.CmdPutSecretValue, &fsm.PutSecretValue{ARN: b, Version: binVersion("v1", "\x00bin"), Stages: L{"X"}, Date: t0 + 7})
	h.apply(fsm.CmdCreateSecret, createCmd("b", "other1", nil, t0+8)) // refused: name taken
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: c, DeletionDate: t0 + 30*day, Date: t0 + 9})
	h.ok(fsm.CmdCreateSecret, createCmd("d", "dddddd", nil, t0+10))
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf("d", "dddddd"), Force: true, Date: t0 + 11})
	h.ok(fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: a, Date: t0 + 12})
	buildSecretOpsLog(h)
	h.applyRaw([]byte{200, 1, 2}) // an unknown ignorable type: skipped
	h.ok(fsm.CmdNoop, &fsm.Noop{Term: 3})
	// The state carries a tombstone (d) and a compaction mark.
	h.ok(fsm.CmdCompactTombstones, &fsm.CompactTombstones{Before: 2})
}

func TestFSM_SnapshotRestore(t *testing.T) {
	h := newHarness(t)
	buildMixedLog(h)
	want, wantIndex, err := h.f.Digest()
	if err != nil {
		t.Fatal(err)
	}
	data := snapshotBytes(t, h.f)

	g := fsm.New(nil)
	// A restore replaces whatever the FSM had.
	g.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: encode(t, fsm.CmdCreateSecret, createCmd("stale", "ssssss", nil, 1))})
	if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	got, gotIndex, err := g.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if got != want || gotIndex != wantIndex || g.AppliedIndex() != h.f.AppliedIndex() || gotIndex != h.index() {
		t.Fatalf("restored digest %s@%d (applied %d), want %s@%d", got, gotIndex, g.AppliedIndex(), want, wantIndex)
	}
	txn, _ := g.ReadTxn()
	if fsm.SecretByName(txn, "stale") != nil {
		t.Fatal("state from before the restore survived it")
	}
	if fsm.RegionRecord(txn) == nil || fsm.LookupAccessKey(txn, "AKIAROOT") == nil {
		t.Fatal("region or access key lost")
	}
	checkInvariants(t, txn)
	if again := snapshotBytes(t, g); !bytes.Equal(again, data) {
		t.Fatal("a snapshot of the restored state differs from the original snapshot")
	}

	// A node restored from the snapshot and a node that applied the whole
	// log stay in step as the log goes on.
	gh := &harness{t: t, f: g, log: slices.Clone(h.log), check: true}
	// Values are encrypted with fresh nonces, so encode each entry once and
	// give both nodes the same bytes, as raft does.
	a := arnOf("a", "aaaaaa")
	for _, e := range [][]byte{
		encode(t, fsm.CmdPutSecretValue, putCmd(a, "v5", L{"custom"}, t0+20)),
		encode(t, fsm.CmdPutSecretValue, putCmd(a, "v6", nil, t0+21)),
		encode(t, fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: arnOf("c", "cccccc"), Date: t0 + 22}),
		encode(t, fsm.CmdPutSecretValue, &fsm.PutSecretValue{ARN: arnOf("b", "bbbbbb"), Version: strVersion("v2", "s"), Stages: L{}, Date: t0 + 23}),
		encode(t, fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: a, DeletionDate: t0 + 30*day, Date: t0 + 24}),
	} {
		r1, r2 := h.applyRaw(e), gh.applyRaw(e)
		if !reflect.DeepEqual(r1, r2) {
			t.Fatalf("restored node answered %#v, log node %#v", r2, r1)
		}
		if _, failed := r1.(*apierr.Error); failed {
			t.Fatalf("entry refused: %v", r1)
		}
	}
	if digestOf(t, h.f) != digestOf(t, g) {
		t.Fatal("restored node and log node diverged")
	}
}

// Persist streams the state as of Snapshot(), while Applys go on.
func TestFSM_Snapshot_ConcurrentApply(t *testing.T) {
	h := newHarness(t)
	h.check = false
	buildMixedLog(h)
	want := digestOf(t, h.f)
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &bufferSink{}
	done := make(chan error, 1)
	go func() { done <- snap.Persist(sink) }()
	a := arnOf("a", "aaaaaa")
	for i := range 50 {
		h.ok(fsm.CmdPutSecretValue, putCmd(a, "c"+string(rune('A'+i%26))+string(rune('a'+i/26)), nil, t0+100+int64(i)))
	}
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: a, Force: true, Date: t0 + 200})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	snap.Release()
	g := fsm.New(nil)
	if err := g.Restore(io.NopCloser(&sink.buf)); err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, g); got != want {
		t.Fatal("the snapshot does not reflect the state at Snapshot()")
	}
}

func TestFSM_Snapshot_PersistError(t *testing.T) {
	h := newHarness(t)
	buildMixedLog(h)
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &bufferSink{failWrite: true}
	if err := snap.Persist(sink); err == nil {
		t.Fatal("Persist into a failing sink succeeded")
	}
	if !sink.cancelled {
		t.Fatal("Persist did not cancel the failing sink")
	}
}

// A bad snapshot is an error and leaves the state as it was.
func TestFSM_Restore_Corrupt(t *testing.T) {
	h := newHarness(t)
	buildMixedLog(h)
	good := snapshotBytes(t, h.f)
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not a snapshot")},
		{"truncated", good[:len(good)/2]},
		{"no end record", good[:len(good)-1]},
		{"unknown version", func() []byte {
			// The header is a msgpack map {Index, Version}; flip the version.
			b := bytes.Clone(good)
			i := bytes.Index(b, []byte("Version"))
			b[i+len("Version")] = 0x7f
			return b
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := fsm.New(nil)
			gh := &harness{t: t, f: g, check: true}
			gh.ok(fsm.CmdCreateSecret, createCmd("kept", "kkkkkk", nil, t0))
			before := digestOf(t, g)
			if err := g.Restore(io.NopCloser(bytes.NewReader(tc.data))); err == nil {
				t.Fatal("corrupt snapshot restored")
			}
			if digestOf(t, g) != before || g.AppliedIndex() != 1 {
				t.Fatal("a failed restore changed the state")
			}
		})
	}
}

func TestFSM_Digest(t *testing.T) {
	h1, h2 := newHarness(t), newHarness(t)
	buildMixedLog(h1)
	// The second node applies the same log entries (same bytes).
	for _, l := range h1.log {
		h2.applyRaw(l.Data)
	}
	d1, i1, err := h1.f.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d2, i2, _ := h2.f.Digest()
	if d1 != d2 || i1 != i2 || i1 != h1.index() {
		t.Fatalf("same log, different digests: %s@%d vs %s@%d", d1, i1, d2, i2)
	}
	if d, _, _ := h1.f.Digest(); d != d1 {
		t.Fatal("Digest is not stable")
	}
	if len(d1) != 64 {
		t.Fatalf("digest %q is not hex SHA-256", d1)
	}

	h1.ok(fsm.CmdPutSecretValue, putCmd(arnOf("a", "aaaaaa"), "v9", nil, t0+50))
	if digestOf(t, h1.f) == d1 {
		t.Fatal("digest unchanged by a new version")
	}
	// The digest covers the applied index: a Noop changes it too.
	h2.ok(fsm.CmdNoop, &fsm.Noop{})
	d2b := digestOf(t, h2.f)
	if d2b == d2 || d2b == digestOf(t, h1.f) {
		t.Fatal("digest does not cover the index, or the value")
	}
	if digestOf(t, fsm.New(nil)) != digestOf(t, fsm.New(nil)) {
		t.Fatal("two empty FSMs differ")
	}
}

// Readers holding a transaction (or a *Secret from one) while Apply goes
// on see a stable state: Apply never mutates an object already in memdb.
// Run with -race.
func TestFSM_ConcurrentReads(t *testing.T) {
	h := newHarness(t)
	h.check = false
	arn := arnOf("s", "abc123")
	h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v0", "0"), t0))
	entries := make([][]byte, 0, 150)
	for i := 1; i <= 120; i++ {
		stages := [][]string{nil, {"A"}, {pend}, {"B", cur}, {pend, "A"}}[i%5]
		entries = append(entries, encode(t, fsm.CmdPutSecretValue, putCmd(arn, "v"+strconv.Itoa(i), stages, t0+int64(i)*day)))
		if i%40 == 0 {
			entries = append(entries,
				encode(t, fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, DeletionDate: t0 + 400*day, Date: t0 + int64(i)*day}),
				encode(t, fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: arn, Date: t0 + int64(i)*day}))
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				txn, idx := h.f.ReadTxn()
				s := fsm.ResolveSecret(txn, "s", testRegion, testAccount)
				describe := func(s *fsm.Secret) string {
					out := fmt.Sprintf("%+v", *s)
					for _, v := range s.Versions {
						out += fmt.Sprintf("\n%+v", *v)
					}
					return out
				}
				first := describe(s)
				fsm.ListSecrets(txn, "", 10, true)
				if _, _, err := h.f.Digest(); err != nil {
					t.Error(err)
					return
				}
				// The same transaction still shows the same secret.
				if again := fsm.SecretByARN(txn, arn); again != s || describe(again) != first {
					t.Errorf("state at index %d changed under a reader", idx)
					return
				}
				checkInvariants(t, txn)
			}
		})
	}
	for _, e := range entries {
		if _, failed := h.applyRaw(e).(*apierr.Error); failed {
			t.Fatalf("entry refused")
		}
	}
	close(stop)
	wg.Wait()
}

// A command that fails after it has written part of its change leaves
// nothing behind: InitRegion inserts the region record, then fails on a
// root key without an id.
func TestFSM_Apply_RefusalIsAtomic(t *testing.T) {
	tests := []struct {
		name string
		ct   fsm.CommandType
		cmd  any
	}{
		{"InitRegion without root key id", fsm.CmdInitRegion, &fsm.InitRegion{Region: testRegion, AccountID: testAccount, Date: t0}},
		{"CreateSecret without ARN", fsm.CmdCreateSecret, &fsm.CreateSecret{Name: "x", Date: t0}},
		{"CreateSecret without name", fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnOf("x", "xxxxxx"), Date: t0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			resp := h.apply(tc.ct, tc.cmd)
			if e, isErr := resp.(*apierr.Error); !isErr || e.Code != apierr.InternalServiceError {
				t.Fatalf("got %#v, want InternalServiceError", resp)
			}
			h.assertLastChangedNothing()
			if fsm.RegionRecord(h.txn()) != nil {
				t.Fatal("half-applied InitRegion left its region record")
			}
		})
	}
}

// An operator's restore brings back a state older than the node's applied
// index; the applied index stays where it was (a read waiting for it must
// not wait for entries that never come), and the next entry moves it on.
func TestFSM_Restore_OlderSnapshotKeepsAppliedIndex(t *testing.T) {
	h := newHarness(t)
	h.ok(fsm.CmdCreateSecret, createCmd("old", "oooooo", nil, t0))
	old := snapshotBytes(t, h.f)
	h.ok(fsm.CmdCreateSecret, createCmd("new", "nnnnnn", nil, t0+1))
	h.ok(fsm.CmdNoop, &fsm.Noop{Term: 2})
	applied := h.f.AppliedIndex()
	if err := h.f.Restore(io.NopCloser(bytes.NewReader(old))); err != nil {
		t.Fatal(err)
	}
	txn, index := h.f.ReadTxn()
	if h.f.AppliedIndex() != applied || index != applied {
		t.Fatalf("applied index %d (state says %d) after restoring an older snapshot, want %d", h.f.AppliedIndex(), index, applied)
	}
	if fsm.SecretByName(txn, "old") == nil || fsm.SecretByName(txn, "new") != nil {
		t.Fatal("the restored state is not the snapshot's")
	}
	if err := h.f.WaitApplied(context.Background(), applied); err != nil {
		t.Fatal(err)
	}
}
