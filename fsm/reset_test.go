package fsm_test

import (
	"reflect"
	"testing"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
)

// resetTestRegion bootstraps the harness's region with one access key.
func resetTestRegion(h *harness) {
	h.t.Helper()
	h.ok(fsm.CmdInitRegion, &fsm.InitRegion{Region: testRegion, AccountID: testAccount, KEKID: "kek-1",
		SealedKeyring: []byte("sealed keyring"),
		RootKey:       fsm.AccessKey{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", Identity: "root", SealedSecret: []byte{1, 2}, CreatedDate: t0},
		Date:          t0})
}

func TestFSM_ResetRegion_WipesSecretsKeepsRegionAndKeys(t *testing.T) {
	h := newHarness(t)
	resetTestRegion(h)
	a, c := arnOf("a", "aaaaaa"), arnOf("c", "cccccc")
	h.ok(fsm.CmdCreateSecret, createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0+1))
	h.ok(fsm.CmdPutSecretValue, putCmd(a, "v2", []string{"AWSPENDING", "custom"}, t0+2))
	h.ok(fsm.CmdCreateSecret, createCmd("b", "bbbbbb", nil, t0+3))
	h.ok(fsm.CmdCreateSecret, createCmd("c", "cccccc", strVersionPtr("c1", "y"), t0+4))
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: c, DeletionDate: t0 + 7*day, Date: t0 + 5})

	before := h.txn()
	region, key := *fsm.RegionRecord(before), *fsm.LookupAccessKey(before, "AKIAIOSFODNN7EXAMPLE")

	res := h.ok(fsm.CmdResetRegion, &fsm.ResetRegion{Region: testRegion, Date: t0 + 6})
	if !reflect.DeepEqual(res, &fsm.Result{}) {
		t.Fatalf("result %+v, want an empty Result", res)
	}
	txn := h.txn()
	if all, more, err := fsm.ListSecrets(txn, "", 1000, true); err != nil || len(all) != 0 || more {
		t.Fatalf("after reset ListSecrets (with deleted) = %d secrets, more=%v, err=%v; want none", len(all), more, err)
	}
	for _, id := range []string{"a", "b", "c", a, c} {
		if s := fsm.ResolveSecret(txn, id, testRegion, testAccount); s != nil {
			t.Fatalf("%s still resolves to %s after reset", id, s.ARN)
		}
	}
	if got := fsm.RegionRecord(txn); got == nil || !reflect.DeepEqual(*got, region) {
		t.Fatalf("region record after reset: %+v, want %+v", got, region)
	}
	if got := fsm.LookupAccessKey(txn, "AKIAIOSFODNN7EXAMPLE"); got == nil || !reflect.DeepEqual(*got, key) {
		t.Fatalf("access key after reset: %+v, want %+v", got, key)
	}
	// The read transaction taken before the reset still sees every secret:
	// the reset is one transaction, and readers see all of it or none.
	if all, _, _ := fsm.ListSecrets(before, "", 1000, true); len(all) != 3 {
		t.Fatalf("a read transaction from before the reset sees %d secrets, want 3", len(all))
	}

	// The same names can be created again, the one that was scheduled for
	// deletion too, with new ARNs; the old ARNs stay unknown.
	h.ok(fsm.CmdCreateSecret, createCmd("a", "zzzzzz", strVersionPtr("v1", "x"), t0+7))
	h.ok(fsm.CmdCreateSecret, createCmd("c", "yyyyyy", strVersionPtr("c1", "y"), t0+8))
	if s := fsm.ResolveSecret(h.txn(), a, testRegion, testAccount); s != nil {
		t.Fatalf("the ARN from before the reset resolves to %s", s.ARN)
	}
	if got := h.secret(arnOf("a", "zzzzzz")); len(got.Versions) != 1 || got.Versions[0].VersionID != "v1" {
		t.Fatalf("re-created secret has versions %+v, want only v1", got.Versions)
	}

	// Reset is deterministic: a replay of the log and a snapshot round
	// trip reach the same state.
	if got, want := digestOf(t, h.replay()), digestOf(t, h.f); got != want {
		t.Fatalf("replayed log digest %s, live %s", got, want)
	}
	if got, want := digestOf(t, restored(t, snapshotBytes(t, h.f))), digestOf(t, h.f); got != want {
		t.Fatalf("restored snapshot digest %s, live %s", got, want)
	}
}

func TestFSM_ResetRegion_EmptyRegionAndRepeat(t *testing.T) {
	h := newHarness(t)
	resetTestRegion(h)
	h.ok(fsm.CmdResetRegion, &fsm.ResetRegion{Region: testRegion, Date: t0 + 1})
	h.ok(fsm.CmdResetRegion, &fsm.ResetRegion{Region: testRegion, Date: t0 + 2})
	if fsm.RegionRecord(h.txn()) == nil {
		t.Fatal("the region record is gone")
	}
}

func TestFSM_ResetRegion_Refused(t *testing.T) {
	h := newHarness(t)
	// Before the region bootstrapped there is nothing to reset.
	h.ok(fsm.CmdCreateSecret, createCmd("early", "eeeeee", nil, t0))
	h.fail(fsm.CmdResetRegion, &fsm.ResetRegion{Region: testRegion, Date: t0 + 1},
		apierr.InvalidRequest, "the region is not initialized")

	resetTestRegion(h)
	h.ok(fsm.CmdCreateSecret, createCmd("s", "ssssss", strVersionPtr("v1", "x"), t0+2))
	// A reset built for another region changes nothing here.
	h.fail(fsm.CmdResetRegion, &fsm.ResetRegion{Region: "us-east-1", Date: t0 + 3},
		apierr.InvalidRequest, `a reset of region "us-east-1" cannot apply to region "us-west-2"`)
	if all, _, _ := fsm.ListSecrets(h.txn(), "", 1000, true); len(all) != 2 {
		t.Fatalf("%d secrets after a refused reset, want 2", len(all))
	}
}

func TestFSM_ResetRegion_Encoding(t *testing.T) {
	if fsm.CmdResetRegion != 7 || fsm.CmdResetRegion.String() != "ResetRegion" {
		t.Fatalf("CmdResetRegion = %d %q; the log format fixes it at 7 \"ResetRegion\"", uint8(fsm.CmdResetRegion), fsm.CmdResetRegion)
	}
	for _, cmd := range []*fsm.ResetRegion{{Region: testRegion, Date: t0}, {}} {
		buf := encode(t, fsm.CmdResetRegion, cmd)
		ct, got, err := fsm.Decode(buf)
		if err != nil || ct != fsm.CmdResetRegion || !reflect.DeepEqual(got, cmd) {
			t.Fatalf("Decode(Encode(%+v)) = %s %+v, %v", cmd, ct, got, err)
		}
	}
}
