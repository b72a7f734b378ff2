package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// The test region. Every secret the tests create lives in it.
const (
	testRegion  = "us-west-2"
	testAccount = "123456789012"
	arnPrefix   = "arn:aws:secretsmanager:" + testRegion + ":" + testAccount + ":secret:"
)

// Millisecond dates used by the tests.
const (
	t0   int64 = 1_700_000_000_000
	hour int64 = 60 * 60 * 1000
	day  int64 = 24 * hour
)

// testKeyring stands for the region keyring of the node that received a
// request: it encrypts values and computes their digests before the command
// enters the log, as the server does.
var testKeyring = crypto.NewKeyring("kek-1")

// arnOf is the ARN a node would give a new secret: the name and a 6-char
// suffix. The suffix is a parameter so a re-created secret can get a new one.
func arnOf(name, suffix string) string { return arnPrefix + name + "-" + suffix }

// strVersion is a NewVersion holding a SecretString, as the server builds it.
func strVersion(id, value string) fsm.NewVersion {
	return valueVersion(id, false, value)
}

func binVersion(id, value string) fsm.NewVersion {
	return valueVersion(id, true, value)
}

func valueVersion(id string, binary bool, value string) fsm.NewVersion {
	kind := "s"
	if binary {
		kind = "b"
	}
	// The AAD needs the secret's ARN, which the tests do not thread through
	// here; the FSM never decrypts, so any binding will do.
	env, err := testKeyring.Encrypt("kek-1", []byte(value), crypto.ValueAAD("test", id))
	if err != nil {
		panic(err)
	}
	return fsm.NewVersion{VersionID: id, Binary: binary, Value: env, Digest: testKeyring.Digest(kind, []byte(value))}
}

func strVersionPtr(id, value string) *fsm.NewVersion {
	v := strVersion(id, value)
	return &v
}

// harness feeds commands to an FSM through the raft log path and remembers
// the log it built, so a test can replay it.
type harness struct {
	t   testing.TB
	f   *fsm.FSM
	log []*raft.Log
	// check runs the state invariants after every entry; the fuzzers turn
	// it off for speed and call it themselves.
	check bool
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return &harness{t: t, f: fsm.New(nil), check: true}
}

// encode is fsm.Encode for a command the test built; it cannot fail.
func encode(t testing.TB, ct fsm.CommandType, cmd any) []byte {
	t.Helper()
	buf, err := fsm.Encode(ct, cmd)
	if err != nil {
		t.Fatalf("Encode(%s): %v", ct, err)
	}
	return buf
}

// applyRaw applies one log entry with this data at the next index and
// checks the Apply contract: the response is a *Result or an *apierr.Error
// and the applied index moved.
func (h *harness) applyRaw(data []byte) any {
	h.t.Helper()
	l := &raft.Log{Index: uint64(len(h.log)) + 1, Term: 1, Type: raft.LogCommand, Data: data}
	h.log = append(h.log, l)
	resp := h.f.Apply(l)
	switch r := resp.(type) {
	case *fsm.Result:
		if r == nil {
			h.t.Fatalf("Apply(index %d) returned a nil *Result", l.Index)
		}
	case *apierr.Error:
		if r == nil {
			h.t.Fatalf("Apply(index %d) returned a nil *apierr.Error", l.Index)
		}
	default:
		h.t.Fatalf("Apply(index %d) returned %T (%v), want *fsm.Result or *apierr.Error", l.Index, resp, resp)
	}
	if got := h.f.AppliedIndex(); got != l.Index {
		h.t.Fatalf("AppliedIndex() = %d after applying index %d", got, l.Index)
	}
	if _, idx := h.f.ReadTxn(); idx != l.Index {
		h.t.Fatalf("ReadTxn index = %d after applying index %d", idx, l.Index)
	}
	if h.check {
		checkInvariants(h.t, h.txn())
	}
	return resp
}

// apply encodes the command and applies it at the next index.
func (h *harness) apply(ct fsm.CommandType, cmd any) any {
	h.t.Helper()
	return h.applyRaw(encode(h.t, ct, cmd))
}

// ok applies a command that must succeed.
func (h *harness) ok(ct fsm.CommandType, cmd any) *fsm.Result {
	h.t.Helper()
	resp := h.apply(ct, cmd)
	res, isResult := resp.(*fsm.Result)
	if !isResult {
		h.t.Fatalf("%s at index %d: got %v, want success", ct, h.index(), resp)
	}
	return res
}

// fail applies a command that must be refused with exactly this code and
// message, and checks the refusal changed nothing but the applied index.
func (h *harness) fail(ct fsm.CommandType, cmd any, code, msg string) {
	h.t.Helper()
	resp := h.apply(ct, cmd)
	wantErr(h.t, resp, code, msg)
	h.assertLastChangedNothing()
}

func wantErr(t testing.TB, resp any, code, msg string) {
	t.Helper()
	e, isErr := resp.(*apierr.Error)
	if !isErr {
		t.Fatalf("got %#v, want %s %q", resp, code, msg)
	}
	if e.Code != code || e.Message != msg {
		t.Fatalf("got %s %q\nwant %s %q", e.Code, e.Message, code, msg)
	}
}

func (h *harness) index() uint64 { return uint64(len(h.log)) }

func (h *harness) txn() *memdb.Txn {
	txn, _ := h.f.ReadTxn()
	return txn
}

// secret returns the secret with this ARN; it must exist.
func (h *harness) secret(arn string) *fsm.Secret {
	h.t.Helper()
	s := fsm.SecretByARN(h.txn(), arn)
	if s == nil {
		h.t.Fatalf("secret %s not found", arn)
	}
	return s
}

// stages maps each version id of the secret to its labels.
func (h *harness) stages(arn string) map[string][]string {
	h.t.Helper()
	got := map[string][]string{}
	for _, v := range h.secret(arn).Versions {
		got[v.VersionID] = slices.Clone(v.Stages)
	}
	return got
}

// digest is the FSM's state digest; it covers the applied index.
func digestOf(t testing.TB, f *fsm.FSM) string {
	t.Helper()
	d, _, err := f.Digest()
	if err != nil {
		t.Fatalf("Digest: %v", err)
	}
	return d
}

// replay builds a fresh FSM from the harness's log, with the entries at the
// given indexes replaced by Noops.
func (h *harness) replay(noopAt ...uint64) *fsm.FSM {
	h.t.Helper()
	f := fsm.New(nil)
	for _, l := range h.log {
		data := l.Data
		if slices.Contains(noopAt, l.Index) {
			data = encode(h.t, fsm.CmdNoop, &fsm.Noop{Term: 1})
		}
		f.Apply(&raft.Log{Index: l.Index, Term: l.Term, Type: l.Type, Data: data})
	}
	return f
}

// assertLastChangedNothing checks that the last entry left the state as a
// Noop would have: same digest as a replay of the log with that entry
// replaced by a Noop. (Digest covers the applied index, so a plain
// before/after comparison would always differ.)
func (h *harness) assertLastChangedNothing() {
	h.t.Helper()
	if got, want := digestOf(h.t, h.f), digestOf(h.t, h.replay(h.index())); got != want {
		h.t.Fatalf("entry %d changed the state (digest %s, a Noop gives %s)", h.index(), got, want)
	}
}

// sorted returns a sorted copy, with nil for an empty list so that
// deprecated versions compare equal however they were emptied.
func sorted(labels []string) []string {
	if len(labels) == 0 {
		return nil
	}
	s := slices.Clone(labels)
	slices.Sort(s)
	return s
}

func fmtStages(m map[string][]string) string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%s%v ", id, sorted(m[id]))
	}
	return strings.TrimSpace(b.String())
}

// checkInvariants checks what must hold for every secret after every entry
// (shared/spec §3.4): labels sorted and unique on a version, each label on
// at most one version, exactly one AWSCURRENT once there is a value, the
// quotas, and the list key.
func checkInvariants(t testing.TB, txn *memdb.Txn) {
	t.Helper()
	all, _, err := fsm.ListSecrets(txn, "", 1<<30, true)
	if err != nil {
		t.Fatalf("ListSecrets: %v", err)
	}
	for _, s := range all {
		if s.ListKey != fsm.ListKey(s.CreatedDate, s.ARN) {
			t.Fatalf("%s: ListKey %q, want ListKey(CreatedDate, ARN)", s.ARN, s.ListKey)
		}
		if len(s.Versions) > fsm.MaxVersions {
			t.Fatalf("%s: %d versions, quota %d", s.ARN, len(s.Versions), fsm.MaxVersions)
		}
		holder := map[string]string{}
		ids := map[string]bool{}
		labels, current, hasValue := 0, 0, false
		for _, v := range s.Versions {
			if ids[v.VersionID] {
				t.Fatalf("%s: version %s twice", s.ARN, v.VersionID)
			}
			ids[v.VersionID] = true
			// Labels keep the order they were attached in; none twice.
			if sorted := slices.Sorted(slices.Values(v.Stages)); len(slices.Compact(sorted)) != len(v.Stages) {
				t.Fatalf("%s: version %s stages %q not unique", s.ARN, v.VersionID, v.Stages)
			}
			for _, l := range v.Stages {
				if other, dup := holder[l]; dup {
					t.Fatalf("%s: label %q on versions %s and %s", s.ARN, l, other, v.VersionID)
				}
				holder[l] = v.VersionID
			}
			labels += len(v.Stages)
			if slices.Contains(v.Stages, fsm.StageCurrent) {
				current++
			}
			hasValue = hasValue || v.HasValue()
		}
		if labels > fsm.MaxLabelsPerSecret {
			t.Fatalf("%s: %d labels, quota %d", s.ARN, labels, fsm.MaxLabelsPerSecret)
		}
		if hasValue && current != 1 {
			t.Fatalf("%s: has a value but %d versions carry AWSCURRENT", s.ARN, current)
		}
	}
	checkFeedInvariants(t, txn, all)
}

// checkFeedInvariants checks the change feed against the secrets table:
// CreateIndex <= ModifyIndex <= the state's index; the feed from the
// compaction mark lists, in index order, every secret changed since then
// exactly once, at its ModifyIndex, and tombstones of secrets that are gone
// (a tombstone's ARN may only have come back as a newer secret).
func checkFeedInvariants(t testing.TB, txn *memdb.Txn, all []*fsm.Secret) {
	t.Helper()
	from := fsm.TombstonesCompactedBefore(txn)
	if from > 0 {
		from--
	}
	page, err := fsm.ChangesAfter(txn, from, 1<<30)
	if err != nil || page.More {
		t.Fatalf("ChangesAfter(%d): more=%v, %v", from, page.More, err)
	}
	inFeed := map[string]bool{}
	var last uint64
	for _, c := range page.Items {
		if c.Index < last || c.Index <= from || c.Index > page.Next {
			t.Fatalf("feed entry at %d after %d (cursor %d, head %d)", c.Index, last, from, page.Next)
		}
		last = c.Index
		switch {
		case (c.Secret == nil) == (c.Tombstone == nil):
			t.Fatalf("feed entry at %d: secret %v, tombstone %v", c.Index, c.Secret, c.Tombstone)
		case c.Secret != nil:
			if inFeed[c.Secret.ARN] || c.Secret.ModifyIndex != c.Index {
				t.Fatalf("%s in the feed twice, or at %d with ModifyIndex %d", c.Secret.ARN, c.Index, c.Secret.ModifyIndex)
			}
			inFeed[c.Secret.ARN] = true
		default:
			if c.Tombstone.DeleteIndex != c.Index {
				t.Fatalf("tombstone %+v at %d", c.Tombstone, c.Index)
			}
		}
	}
	for _, s := range all {
		if s.CreateIndex > s.ModifyIndex || s.ModifyIndex > page.Next {
			t.Fatalf("%s: CreateIndex %d, ModifyIndex %d, state at %d", s.ARN, s.CreateIndex, s.ModifyIndex, page.Next)
		}
		if s.ModifyIndex > from && !inFeed[s.ARN] {
			t.Fatalf("%s changed at %d is not in the feed after %d", s.ARN, s.ModifyIndex, from)
		}
		if tb := fsm.TombstoneByARN(txn, s.ARN); tb != nil && tb.DeleteIndex >= s.CreateIndex {
			t.Fatalf("%s exists (created at %d) but has a tombstone at %d", s.ARN, s.CreateIndex, tb.DeleteIndex)
		}
	}
}

// bufferSink is a raft.SnapshotSink over memory.
type bufferSink struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	closed    bool
	cancelled bool
	failWrite bool
}

func (s *bufferSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failWrite {
		return 0, errors.New("disk full")
	}
	return s.buf.Write(p)
}

func (s *bufferSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *bufferSink) Cancel() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancelled = true
	return nil
}

func (s *bufferSink) ID() string { return "test" }

var _ raft.SnapshotSink = (*bufferSink)(nil)

// snapshotBytes takes a snapshot of f and persists it into memory.
func snapshotBytes(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("Persist left the sink closed=%v cancelled=%v, want closed", sink.closed, sink.cancelled)
	}
	return sink.buf.Bytes()
}
