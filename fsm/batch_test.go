package fsm_test

import (
	"reflect"
	"testing"

	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/raft"
)

// ApplyBatch answers and leaves the state exactly as Apply entry by entry,
// whatever the batch size: the mixed log has a refused command (the batch
// holding it is applied again one at a time) and an unknown ignorable
// type; configuration entries only move the applied index.
func TestFSM_ApplyBatch_SameAsOneAtATime(t *testing.T) {
	h := newHarness(t)
	buildMixedLog(h)
	var want []any
	single := fsm.New(nil)
	for _, l := range h.log {
		want = append(want, single.Apply(l))
	}
	wantDigest := digestOf(t, single)
	for _, size := range []int{1, 2, 3, 7, 64, len(h.log)} {
		f := fsm.New(nil)
		var got []any
		for start := 0; start < len(h.log); start += size {
			batch := h.log[start:min(start+size, len(h.log))]
			resps := f.ApplyBatch(batch)
			if len(resps) != len(batch) {
				t.Fatalf("size %d: %d answers for %d entries", size, len(resps), len(batch))
			}
			got = append(got, resps...)
			if f.AppliedIndex() != batch[len(batch)-1].Index {
				t.Fatalf("size %d: applied index %d after a batch ending at %d", size, f.AppliedIndex(), batch[len(batch)-1].Index)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("size %d: answers differ from Apply's\n got %#v\nwant %#v", size, got, want)
		}
		if d := digestOf(t, f); d != wantDigest {
			t.Fatalf("size %d: the state differs from Apply's", size)
		}
	}
}

func TestFSM_ApplyBatch_Configuration(t *testing.T) {
	f := fsm.New(nil)
	cfg := raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: "127.0.0.1:1"}}})
	resps := f.ApplyBatch([]*raft.Log{
		{Index: 1, Type: raft.LogConfiguration, Data: cfg},
		{Index: 2, Type: raft.LogCommand, Data: encode(t, fsm.CmdCreateSecret, createCmd("s", "ssssss", strVersionPtr("v1", "x"), t0))},
		{Index: 3, Type: raft.LogConfiguration, Data: cfg},
	})
	if resps[0] != nil || resps[2] != nil {
		t.Fatalf("answers to configuration entries: %#v", resps)
	}
	if r, ok := resps[1].(*fsm.Result); !ok || r.Name != "s" {
		t.Fatalf("answer to the create: %#v", resps[1])
	}
	if f.AppliedIndex() != 3 {
		t.Fatalf("applied index %d, want 3", f.AppliedIndex())
	}
	txn, index := f.ReadTxn()
	if index != 3 || fsm.SecretByName(txn, "s") == nil {
		t.Fatalf("state at %d, secret %v", index, fsm.SecretByName(txn, "s"))
	}
}

// An unknown, non-ignorable type in a batch stops the node at that entry,
// as Apply does: the entries before it are applied, it and those after
// are not.
func TestFSM_ApplyBatch_UnknownTypeStopsAtIt(t *testing.T) {
	f := fsm.New(nil)
	logs := []*raft.Log{
		{Index: 1, Type: raft.LogCommand, Data: encode(t, fsm.CmdCreateSecret, createCmd("a", "aaaaaa", nil, t0))},
		{Index: 2, Type: raft.LogCommand, Data: []byte{0x7f}},
		{Index: 3, Type: raft.LogCommand, Data: encode(t, fsm.CmdCreateSecret, createCmd("b", "bbbbbb", nil, t0))},
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("ApplyBatch with an unknown, non-ignorable type returned; want a panic")
			}
		}()
		f.ApplyBatch(logs)
	}()
	txn, index := f.ReadTxn()
	if index != 1 || f.AppliedIndex() != 1 || fsm.SecretByName(txn, "a") == nil || fsm.SecretByName(txn, "b") != nil {
		t.Fatalf("after the stop: index %d/%d, a %v, b %v", index, f.AppliedIndex(), fsm.SecretByName(txn, "a"), fsm.SecretByName(txn, "b"))
	}
}
