package fsm_test

import (
	"reflect"
	"testing"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
)

func TestFSM_DeleteSecret_Schedule(t *testing.T) {
	h := newHarness(t)
	arn := arnOf("s", "abc123")
	h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v1", "a"), t0))
	h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v2", nil, t0+1))

	res := h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, DeletionDate: t0 + 30*day, Date: t0 + hour})
	if want := (&fsm.Result{ARN: arn, Name: "s", DeletionDate: t0 + 30*day}); !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	s := h.secret(arn)
	if !s.Scheduled() || s.DeletedDate != t0+hour || s.DeletionDate != t0+30*day {
		t.Fatalf("scheduled=%v DeletedDate=%d DeletionDate=%d", s.Scheduled(), s.DeletedDate, s.DeletionDate)
	}
	// Versions and labels stay for a restore.
	assertStages(t, h, arn, map[string]L{"v1": {prev}, "v2": {cur}})
	// Still resolvable by name and ARN (shared/spec §3.3 rule 3).
	txn := h.txn()
	if fsm.ResolveSecret(txn, "s", testRegion, testAccount) != s || fsm.ResolveSecret(txn, arn, testRegion, testAccount) != s {
		t.Fatal("a scheduled secret does not resolve")
	}

	// A second delete without force is refused.
	h.fail(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, DeletionDate: t0 + 7*day, Date: t0 + 2*hour},
		apierr.InvalidRequest, "You tried to perform the operation on a secret that's currently marked deleted.")
	if got := h.secret(arn); got.DeletedDate != t0+hour || got.DeletionDate != t0+30*day {
		t.Fatalf("the refused delete moved the schedule: %d %d", got.DeletedDate, got.DeletionDate)
	}
}

func TestFSM_DeleteSecret_Force(t *testing.T) {
	tests := []struct {
		name      string
		scheduled bool
	}{
		{"active", false},
		{"scheduled", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			arn := arnOf("s", "abc123")
			h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v1", "a"), t0))
			h.ok(fsm.CmdCreateSecret, createCmd("other", "xyz789", nil, t0+1))
			if tc.scheduled {
				h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, DeletionDate: t0 + 7*day, Date: t0 + 2})
			}
			res := h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, Force: true, Date: t0 + 3})
			if want := (&fsm.Result{ARN: arn, Name: "s", DeletionDate: t0 + 3}); !reflect.DeepEqual(res, want) {
				t.Fatalf("result %+v, want %+v", res, want)
			}
			txn := h.txn()
			if fsm.SecretByARN(txn, arn) != nil || fsm.SecretByName(txn, "s") != nil {
				t.Fatal("force-deleted secret still there")
			}
			page, _, _ := fsm.ListSecrets(txn, "", 10, true)
			if len(page) != 1 || page[0].Name != "other" {
				t.Fatalf("ListSecrets after force delete: %d secrets", len(page))
			}
			// Gone means gone: no more deletes, restores or puts.
			h.fail(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, Force: true, Date: t0 + 4}, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
			h.fail(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, DeletionDate: t0 + 7*day, Date: t0 + 4}, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
			h.fail(fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: arn, Date: t0 + 4}, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
			h.fail(fsm.CmdPutSecretValue, putCmd(arn, "v2", nil, t0+4), apierr.ResourceNotFound, apierr.MsgSecretNotFound)
			// The name is free.
			h.ok(fsm.CmdCreateSecret, createCmd("s", "n3wSfx", strVersionPtr("v1", "a"), t0+5))
		})
	}
}

func TestFSM_DeleteSecret_NotFound(t *testing.T) {
	for _, force := range []bool{false, true} {
		h := newHarness(t)
		h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", nil, t0))
		// The server resolves the id first and answers a forced delete of
		// nothing itself (shared/spec §4.10 step 2); the FSM only sees ARNs.
		h.fail(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf("s", "zzzzzz"), Force: force, Date: t0 + 1},
			apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		h.fail(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: "s", Force: force, Date: t0 + 1},
			apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	}
}

func TestFSM_RestoreSecret(t *testing.T) {
	h := newHarness(t)
	arn := arnOf("s", "abc123")
	h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v1", "a"), t0))
	h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v2", L{pend}, t0+1))
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, DeletionDate: t0 + 7*day, Date: t0 + 2})

	res := h.ok(fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: arn, Date: t0 + 3})
	if want := (&fsm.Result{ARN: arn, Name: "s"}); !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	s := h.secret(arn)
	if s.Scheduled() || s.DeletedDate != 0 || s.DeletionDate != 0 || s.LastChangedDate != t0+3 {
		t.Fatalf("after restore: DeletedDate=%d DeletionDate=%d LastChangedDate=%d", s.DeletedDate, s.DeletionDate, s.LastChangedDate)
	}
	assertStages(t, h, arn, map[string]L{"v1": {cur}, "v2": {pend}})
	if page, _, _ := fsm.ListSecrets(h.txn(), "", 10, false); len(page) != 1 {
		t.Fatal("a restored secret is not listed")
	}
	// Usable again.
	h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v3", nil, t0+4))
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, DeletionDate: t0 + 30*day, Date: t0 + 5})
}

// Restoring an active secret is a successful no-op (shared/spec §4.11).
func TestFSM_RestoreSecret_Active(t *testing.T) {
	h := newHarness(t)
	arn := arnOf("s", "abc123")
	h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v1", "a"), t0))
	before := h.secret(arn)
	res := h.ok(fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: arn, Date: t0 + 1})
	if want := (&fsm.Result{ARN: arn, Name: "s"}); !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	h.assertLastChangedNothing()
	if h.secret(arn) != before {
		t.Fatal("the secret was rewritten")
	}
}

func TestFSM_InitRegion(t *testing.T) {
	h := newHarness(t)
	if fsm.RegionRecord(h.txn()) != nil {
		t.Fatal("a new FSM has a region record")
	}
	init := &fsm.InitRegion{
		Region: testRegion, AccountID: testAccount, KEKID: "kek-1", SealedKeyring: []byte("sealed"),
		RootKey: fsm.AccessKey{AccessKeyID: "AKIAROOT", Identity: "root", SealedSecret: []byte("ss"), CreatedDate: t0},
		Date:    t0,
	}
	if res := h.ok(fsm.CmdInitRegion, init); !reflect.DeepEqual(res, &fsm.Result{}) {
		t.Fatalf("result %+v", res)
	}
	txn := h.txn()
	want := &fsm.Region{ID: "region", Name: testRegion, AccountID: testAccount, KEKID: "kek-1", SealedKeyring: []byte("sealed"), CreatedDate: t0}
	if got := fsm.RegionRecord(txn); !reflect.DeepEqual(got, want) {
		t.Fatalf("region %+v, want %+v", got, want)
	}
	if got := fsm.LookupAccessKey(txn, "AKIAROOT"); !reflect.DeepEqual(got, &init.RootKey) {
		t.Fatalf("root key %+v", got)
	}
	if fsm.LookupAccessKey(txn, "AKIAOTHER") != nil || fsm.LookupAccessKey(txn, "") != nil {
		t.Fatal("unknown access key found")
	}

	// A second bootstrap (another node that also thought it was first) is
	// refused and changes nothing: not the keyring, not the root key.
	again := &fsm.InitRegion{Region: "eu-west-1", AccountID: "999999999999", KEKID: "kek-2",
		SealedKeyring: []byte("other"), RootKey: fsm.AccessKey{AccessKeyID: "AKIAOTHER"}, Date: t0 + 1}
	h.fail(fsm.CmdInitRegion, again, apierr.InvalidRequest, "the region is already initialized")
	if got := fsm.RegionRecord(h.txn()); !reflect.DeepEqual(got, want) {
		t.Fatalf("region after second init %+v", got)
	}
	if fsm.LookupAccessKey(h.txn(), "AKIAOTHER") != nil {
		t.Fatal("the refused init added its root key")
	}
}

// A keyring sealed by crypto travels through InitRegion unchanged.
func TestFSM_InitRegion_RealKeyring(t *testing.T) {
	root := crypto.RandomKey()
	kr := crypto.NewKeyring("kek-1")
	sealed, err := kr.Seal(root, testRegion)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	h.ok(fsm.CmdInitRegion, &fsm.InitRegion{Region: testRegion, AccountID: testAccount, KEKID: kr.KEKID, SealedKeyring: sealed, KeyringFormat: 2, Date: t0,
		RootKey: fsm.AccessKey{AccessKeyID: "AKIA1", Identity: "root"}})
	r := fsm.RegionRecord(h.txn())
	if _, err := crypto.OpenKeyring(root, r.SealedKeyring, r.Name, r.LegacyKEKID()); err != nil {
		t.Fatalf("keyring from state does not open: %v", err)
	}
}
