package fsm_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
)

func createCmd(name, suffix string, v *fsm.NewVersion, date int64) *fsm.CreateSecret {
	return &fsm.CreateSecret{ARN: arnOf(name, suffix), Name: name, Version: v, Date: date}
}

func TestFSM_CreateSecret(t *testing.T) {
	tags := []fsm.Tag{{Key: "team", Value: "payments"}, {Key: "env", Value: "prod"}}
	tests := []struct {
		name        string
		cmd         *fsm.CreateSecret
		wantVersion string
	}{
		{
			name: "with a string value",
			cmd: &fsm.CreateSecret{ARN: arnOf("db/password", "a1B2c3"), Name: "db/password",
				Description: "the db", KmsKeyID: "alias/mine", Tags: tags,
				Version: strVersionPtr("v1", "hunter2"), Date: t0},
			wantVersion: "v1",
		},
		{
			name: "with a binary value",
			cmd: &fsm.CreateSecret{ARN: arnOf("blob", "Zz9Yy8"), Name: "blob",
				Version: func() *fsm.NewVersion { v := binVersion("v1", "\x00\x01"); return &v }(), Date: t0},
			wantVersion: "v1",
		},
		{
			name: "without a value",
			cmd:  &fsm.CreateSecret{ARN: arnOf("empty", "000000"), Name: "empty", Tags: tags, Date: t0},
		},
		{
			name: "without tags",
			cmd:  &fsm.CreateSecret{ARN: arnOf("plain", "abcdef"), Name: "plain", Date: t0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			res := h.ok(fsm.CmdCreateSecret, tc.cmd)
			want := &fsm.Result{ARN: tc.cmd.ARN, Name: tc.cmd.Name}
			if tc.wantVersion != "" {
				want.VersionID = tc.wantVersion
				want.VersionStages = []string{fsm.StageCurrent}
			}
			if !reflect.DeepEqual(res, want) {
				t.Fatalf("result %+v, want %+v", res, want)
			}

			s := h.secret(tc.cmd.ARN)
			if s.Name != tc.cmd.Name || s.Description != tc.cmd.Description || s.KmsKeyID != tc.cmd.KmsKeyID {
				t.Errorf("metadata: got name %q description %q kms %q", s.Name, s.Description, s.KmsKeyID)
			}
			if !slices.Equal(s.Tags, tc.cmd.Tags) || s.TagsEverSet != (len(tc.cmd.Tags) > 0) {
				t.Errorf("tags %v (ever set %v), want %v", s.Tags, s.TagsEverSet, tc.cmd.Tags)
			}
			if s.CreatedDate != t0 || s.LastChangedDate != t0 || s.DeletedDate != 0 || s.DeletionDate != 0 || s.Scheduled() {
				t.Errorf("dates: created %d changed %d deleted %d deletion %d", s.CreatedDate, s.LastChangedDate, s.DeletedDate, s.DeletionDate)
			}
			if s.ListKey != fsm.ListKey(t0, tc.cmd.ARN) {
				t.Errorf("ListKey %q", s.ListKey)
			}
			if tc.wantVersion == "" {
				if len(s.Versions) != 0 {
					t.Fatalf("created without a value but has versions %s", fmtStages(h.stages(s.ARN)))
				}
				if s.Staged(fsm.StageCurrent) != nil {
					t.Fatal("AWSCURRENT on a secret without a value")
				}
				return
			}
			if len(s.Versions) != 1 {
				t.Fatalf("%d versions, want 1", len(s.Versions))
			}
			v := s.Versions[0]
			nv := tc.cmd.Version
			if v.VersionID != nv.VersionID || !slices.Equal(v.Stages, []string{fsm.StageCurrent}) ||
				v.CreatedDate != t0 || v.Binary != nv.Binary || !reflect.DeepEqual(v.Value, nv.Value) ||
				!slices.Equal(v.Digest, nv.Digest) || !v.HasValue() {
				t.Fatalf("version %+v, want it built from %+v", v, nv)
			}
			if s.Version(nv.VersionID) != v || s.Staged(fsm.StageCurrent) != v || s.Version("nope") != nil {
				t.Fatal("Version/Staged lookups disagree with Versions")
			}
			if got := fsm.SecretByName(h.txn(), tc.cmd.Name); got != s {
				t.Fatalf("SecretByName found %v", got)
			}
		})
	}
}

// Every way CreateSecret meets an existing name (shared/spec §4.1 step 2,
// §3.5).
func TestFSM_CreateSecret_NameConflicts(t *testing.T) {
	const name = "app/key"
	firstARN := arnOf(name, "Fir5tA")
	// A retry or a racing create arrives through another node, which draws
	// another suffix: the conflict is found by name.
	retryARN := arnOf(name, "Sec0nd")
	tokenMsg := "You can't use ClientRequestToken v1 because that value is already in use for a version of secret " + firstARN + "."
	existsMsg := "The operation failed because the secret " + name + " already exists."

	sameDigestBinary := binVersion("v1", "s3cret")
	sameDigestBinary.Digest = strVersion("v1", "s3cret").Digest

	tests := []struct {
		name      string
		noValue   bool // the existing secret was created without a value
		scheduled bool // and then scheduled for deletion
		retry     *fsm.NewVersion
		wantCode  string
		wantMsg   string
		wantRes   *fsm.Result
	}{
		{name: "retry same token same value", retry: strVersionPtr("v1", "s3cret"),
			wantRes: &fsm.Result{ARN: firstARN, Name: name, VersionID: "v1"}},
		{name: "same token other value", retry: strVersionPtr("v1", "other"),
			wantCode: apierr.ResourceExists, wantMsg: tokenMsg},
		{name: "same token same bytes as binary", retry: func() *fsm.NewVersion { v := binVersion("v1", "s3cret"); return &v }(),
			wantCode: apierr.ResourceExists, wantMsg: tokenMsg},
		{name: "same token same digest but binary", retry: &sameDigestBinary,
			wantCode: apierr.ResourceExists, wantMsg: tokenMsg},
		{name: "other token", retry: strVersionPtr("v2", "s3cret"),
			wantCode: apierr.ResourceExists, wantMsg: existsMsg},
		{name: "no value", retry: nil,
			wantCode: apierr.ResourceExists, wantMsg: existsMsg},
		{name: "existing has no value, retry with value", noValue: true, retry: strVersionPtr("v1", "s3cret"),
			wantCode: apierr.ResourceExists, wantMsg: existsMsg},
		{name: "existing has no value, retry without", noValue: true, retry: nil,
			wantCode: apierr.ResourceExists, wantMsg: existsMsg},
		{name: "scheduled, other token", scheduled: true, retry: strVersionPtr("v2", "x"),
			wantCode: apierr.InvalidRequest, wantMsg: apierr.MsgScheduledCreate},
		{name: "scheduled, same token same value", scheduled: true, retry: strVersionPtr("v1", "s3cret"),
			wantCode: apierr.InvalidRequest, wantMsg: apierr.MsgScheduledCreate},
		{name: "scheduled, no value", scheduled: true, noValue: true,
			wantCode: apierr.InvalidRequest, wantMsg: apierr.MsgScheduledCreate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			first := createCmd(name, "Fir5tA", strVersionPtr("v1", "s3cret"), t0)
			if tc.noValue {
				first.Version = nil
			}
			h.ok(fsm.CmdCreateSecret, first)
			if tc.scheduled {
				h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: firstARN, DeletionDate: t0 + 30*day, Date: t0 + hour})
			}
			before := h.secret(firstARN)

			retry := &fsm.CreateSecret{ARN: retryARN, Name: name, Description: "retry", Version: tc.retry, Date: t0 + 2*hour}
			resp := h.apply(fsm.CmdCreateSecret, retry)
			if tc.wantRes != nil {
				if !reflect.DeepEqual(resp, tc.wantRes) {
					t.Fatalf("got %#v, want %#v", resp, tc.wantRes)
				}
			} else {
				wantErr(t, resp, tc.wantCode, tc.wantMsg)
			}
			h.assertLastChangedNothing()
			if after := h.secret(firstARN); after != before {
				t.Fatal("the existing secret was rewritten")
			}
			if fsm.SecretByARN(h.txn(), retryARN) != nil {
				t.Fatal("the retry's ARN exists")
			}
		})
	}
}

// Once the name is free again a create gets a fresh secret; the old ARN
// stays unknown.
func TestFSM_CreateSecret_AfterForceDelete(t *testing.T) {
	h := newHarness(t)
	oldARN := arnOf("n", "OLDold")
	h.ok(fsm.CmdCreateSecret, createCmd("n", "OLDold", strVersionPtr("v1", "a"), t0))
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: oldARN, Force: true, Date: t0 + 1})
	// Even the old token is free: the old versions went with the secret.
	res := h.ok(fsm.CmdCreateSecret, createCmd("n", "NEWnew", strVersionPtr("v1", "b"), t0+2))
	if res.ARN != arnOf("n", "NEWnew") || res.VersionID != "v1" {
		t.Fatalf("result %+v", res)
	}
	txn := h.txn()
	if fsm.SecretByARN(txn, oldARN) != nil || fsm.ResolveSecret(txn, oldARN, testRegion, testAccount) != nil {
		t.Fatal("the deleted secret's ARN still resolves")
	}
	if s := fsm.ResolveSecret(txn, "n", testRegion, testAccount); s == nil || s.ARN != res.ARN || s.CreatedDate != t0+2 {
		t.Fatalf("name resolves to %+v", s)
	}
}
