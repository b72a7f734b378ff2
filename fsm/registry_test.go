package fsm_test

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// syncBuffer is a log sink the FSM writes to from the test goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// loggedHarness is a harness whose FSM logs into a buffer.
func loggedHarness(t *testing.T) (*harness, *syncBuffer) {
	out := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: out, Level: hclog.Trace})
	return &harness{t: t, f: fsm.New(logger), check: true}, out
}

func TestCommandTable(t *testing.T) {
	types := fsm.CommandTypes()
	if len(types) == 0 || !slices.IsSorted(types) {
		t.Fatalf("CommandTypes() = %v, want a sorted, non-empty list", types)
	}
	names := map[string]bool{}
	for _, ct := range types {
		if !ct.Known() {
			t.Errorf("%d is listed but not Known", uint8(ct))
		}
		if ct == 0 {
			t.Error("type 0 is registered; it is invalid")
		}
		// No command is ignorable yet: each one's absence would change
		// the state.
		if ct.Ignorable() {
			t.Errorf("%s is ignorable", ct)
		}
		if n := ct.String(); n == fmt.Sprintf("CommandType(%d)", uint8(ct)) || names[n] {
			t.Errorf("%d has no name of its own: %q", uint8(ct), n)
		}
		names[ct.String()] = true
	}
	for _, ct := range []fsm.CommandType{0, 0x7f, 0x80, 200, 255} {
		if ct.Known() {
			t.Errorf("%d is Known", uint8(ct))
		}
	}
	for ct, want := range map[fsm.CommandType]bool{1: false, 0x7f: false, 0x80: true, 0x81: true, 200: true, 255: true} {
		if ct.Ignorable() != want {
			t.Errorf("%d.Ignorable() = %v, want %v", uint8(ct), ct.Ignorable(), want)
		}
	}
	// The numbers are the log format: 16 is CompactTombstones, and the
	// table has no gaps (a constant without its register call leaves one).
	if fsm.CmdCompactTombstones != 16 || fsm.CmdCompactTombstones.String() != "CompactTombstones" {
		t.Errorf("CmdCompactTombstones = %d %q, want 16", uint8(fsm.CmdCompactTombstones), fsm.CmdCompactTombstones)
	}
	for i, ct := range types {
		if uint8(ct) != uint8(i+1) {
			t.Fatalf("command table %v has a gap before %s", types, ct)
		}
	}
	if fsm.IgnorableFlag != 0x80 {
		t.Fatalf("IgnorableFlag = %#x, want 0x80 (log format)", uint8(fsm.IgnorableFlag))
	}
}

// Encode refuses a type it does not know and a struct of another command:
// either would write an entry that does not decode as what was meant.
func TestEncode_Refusals(t *testing.T) {
	for _, tc := range []struct {
		ct  fsm.CommandType
		cmd any
	}{
		{0, &fsm.Noop{}},
		{0x7f, &fsm.Noop{}},
		{200, &fsm.Noop{}},
		{fsm.CmdCreateSecret, &fsm.PutSecretValue{}},
		{fsm.CmdNoop, fsm.Noop{}}, // not a pointer
		{fsm.CmdNoop, nil},
	} {
		if buf, err := fsm.Encode(tc.ct, tc.cmd); err == nil {
			t.Errorf("Encode(%s, %T) = %x, want an error", tc.ct, tc.cmd, buf)
		}
	}
}

// An entry of a type this binary does not know, without IgnorableFlag, was
// written by a newer binary: Apply panics (outside the recover that turns
// a command's panic into a refusal) and leaves the state, the applied
// index and the writer lock as they were, after logging the index and the
// type at error level.
func TestFSM_Apply_UnknownType_Stops(t *testing.T) {
	for _, data := range [][]byte{{0x7f}, {0x7f, 0x81, 0xa1, 'A', 1}, {0x40, 0xc0}, {99}} {
		t.Run(fmt.Sprintf("type %d", data[0]), func(t *testing.T) {
			h, logs := loggedHarness(t)
			h.ok(fsm.CmdCreateSecret, createCmd("s", "ssssss", strVersionPtr("v1", "x"), t0))
			before, beforeIndex := digestOf(t, h.f), h.f.AppliedIndex()

			var recovered any
			func() {
				defer func() { recovered = recover() }()
				h.f.Apply(&raft.Log{Index: beforeIndex + 1, Term: 1, Type: raft.LogCommand, Data: data})
			}()
			if recovered == nil {
				t.Fatal("Apply of an unknown, non-ignorable type returned; want a panic")
			}
			msg := fmt.Sprint(recovered)
			if !strings.Contains(msg, fmt.Sprintf("log entry %d has command type %d", beforeIndex+1, data[0])) {
				t.Errorf("panic %q does not name the index and the type", msg)
			}
			if got := h.f.AppliedIndex(); got != beforeIndex {
				t.Fatalf("applied index %d after the panic, want %d", got, beforeIndex)
			}
			if digestOf(t, h.f) != before {
				t.Fatal("the unknown entry changed the state")
			}
			out := logs.String()
			if !strings.Contains(out, "[ERROR]") || !strings.Contains(out, fmt.Sprintf("index=%d", beforeIndex+1)) ||
				!strings.Contains(out, fmt.Sprintf("type=%d", data[0])) {
				t.Errorf("log does not say at error level which entry stopped the node:\n%s", out)
			}
			// No write transaction was left open: the FSM still applies
			// (a binary that knows the type would go on from here).
			if _, ok := h.f.Apply(&raft.Log{Index: beforeIndex + 1, Type: raft.LogCommand, Data: encode(t, fsm.CmdNoop, &fsm.Noop{})}).(*fsm.Result); !ok {
				t.Fatal("the FSM no longer applies after the panic")
			}
		})
	}
}

// An unknown type with IgnorableFlag is skipped: the index advances, the
// state does not change, the answer is an empty *Result, and a warning is
// logged.
func TestFSM_Apply_UnknownIgnorableType_Skipped(t *testing.T) {
	for _, data := range [][]byte{{0x80}, {200, 0x80}, {255, 1, 2, 3}, {0xfe, 0x81, 0xa1, 'A', 1}} {
		t.Run(fmt.Sprintf("type %d", data[0]), func(t *testing.T) {
			h, logs := loggedHarness(t)
			h.ok(fsm.CmdCreateSecret, createCmd("s", "ssssss", strVersionPtr("v1", "x"), t0))
			resp := h.applyRaw(data) // checks the index advanced
			if !reflect.DeepEqual(resp, &fsm.Result{}) {
				t.Fatalf("got %#v, want an empty *Result", resp)
			}
			h.assertLastChangedNothing()
			if out := logs.String(); !strings.Contains(out, "[WARN]") || !strings.Contains(out, "index=2") {
				t.Errorf("no warning naming the skipped entry:\n%s", out)
			}
			h.ok(fsm.CmdNoop, &fsm.Noop{})
		})
	}
}
