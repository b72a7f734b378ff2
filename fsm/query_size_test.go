package fsm_test

import (
	"testing"

	"github.com/cofferhq/coffer/fsm"
)

// Size counts what the metrics report: secrets (scheduled ones included
// and counted apart), every version, and tombstones of forced deletes.
func TestFSM_Size(t *testing.T) {
	h := newHarness(t)
	if got := fsm.Size(h.txn()); got != (fsm.StateSize{}) {
		t.Fatalf("empty state: %+v", got)
	}
	h.ok(fsm.CmdCreateSecret, createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0))
	h.ok(fsm.CmdPutSecretValue, putCmd(arnOf("a", "aaaaaa"), "v2", nil, t0+1))
	h.ok(fsm.CmdCreateSecret, createCmd("b", "bbbbbb", strVersionPtr("v1", "x"), t0+2))
	h.ok(fsm.CmdCreateSecret, createCmd("c", "cccccc", nil, t0+3))
	h.ok(fsm.CmdCreateSecret, createCmd("d", "dddddd", strVersionPtr("v1", "x"), t0+4))
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf("b", "bbbbbb"), DeletionDate: t0 + 7*day, Date: t0 + 5})
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf("d", "dddddd"), Force: true, Date: t0 + 6})
	want := fsm.StateSize{Secrets: 3, Deleted: 1, Versions: 3, Tombstones: 1}
	if got := fsm.Size(h.txn()); got != want {
		t.Fatalf("size %+v, want %+v", got, want)
	}
}
