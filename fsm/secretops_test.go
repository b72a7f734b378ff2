package fsm_test

import (
	"bytes"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
)

// Table tests of the metadata, label, tag, policy, purge and access
// commands (8 and up), each through encode → Apply as raft delivers them.

func sp(s string) *string { return &s }

// secretOpsSamples has one command of each type added for issue 4, every
// field set; sampleCommands includes them.
func secretOpsSamples(arn string, nv fsm.NewVersion) map[fsm.CommandType]any {
	return map[fsm.CommandType]any{
		fsm.CmdUpdateSecret: &fsm.UpdateSecret{ARN: arn, Description: sp("new description"), KmsKeyID: sp(""), KeyID: sp("cust"),
			Rewraps: []fsm.Rewrap{{ARN: arn, VersionID: "v0", From: "kek-1", KEKID: "cust/1", WrappedKey: []byte{9}}},
			Type:    sp("partner"), Version: &nv, Date: t0 + 4},
		fsm.CmdUpdateSecretVersionStage: &fsm.UpdateSecretVersionStage{ARN: arn, Stage: "AWSCURRENT",
			RemoveFrom: "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE", MoveTo: "EXAMPLE2-90ab-cdef-fedc-ba987EXAMPLE", Date: t0 + 5},
		fsm.CmdTagResource:          &fsm.TagResource{ARN: arn, Tags: []fsm.Tag{{Key: "team", Value: "ops"}, {Key: "blank"}}, Date: t0 + 6},
		fsm.CmdUntagResource:        &fsm.UntagResource{ARN: arn, Keys: []string{"team", "absent"}, Date: t0 + 7},
		fsm.CmdPutResourcePolicy:    &fsm.PutResourcePolicy{ARN: arn, Policy: `{"Version":"2012-10-17","Statement":[]}`, Date: t0 + 8},
		fsm.CmdDeleteResourcePolicy: &fsm.DeleteResourcePolicy{ARN: arn, Date: t0 + 9},
		fsm.CmdPurgeSecrets:         &fsm.PurgeSecrets{ARNs: []string{arn, arnOf("other", "zzzzzz")}, Now: t0 + 31*day},
		fsm.CmdRecordAccess: &fsm.RecordAccess{Day: t0 - t0%day, Secrets: []fsm.AccessedSecret{
			{ARN: arn, VersionIDs: []string{"EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"}}, {ARN: arnOf("other", "zzzzzz")}}},
	}
}

func TestEncodeDecode_SecretOps_ZeroValues(t *testing.T) {
	for ct, cmd := range map[fsm.CommandType]any{
		fsm.CmdUpdateSecret: &fsm.UpdateSecret{}, fsm.CmdUpdateSecretVersionStage: &fsm.UpdateSecretVersionStage{},
		fsm.CmdTagResource: &fsm.TagResource{}, fsm.CmdUntagResource: &fsm.UntagResource{},
		fsm.CmdPutResourcePolicy: &fsm.PutResourcePolicy{}, fsm.CmdDeleteResourcePolicy: &fsm.DeleteResourcePolicy{},
		fsm.CmdPurgeSecrets: &fsm.PurgeSecrets{}, fsm.CmdRecordAccess: &fsm.RecordAccess{},
	} {
		_, got, err := fsm.Decode(encode(t, ct, cmd))
		if err != nil || !reflect.DeepEqual(got, cmd) {
			t.Errorf("%s: decoded %#v, %v; want %#v", ct, got, err, cmd)
		}
	}
	// A nil pointer (leave as is) and a pointer to "" (clear) stay apart.
	_, got, err := fsm.Decode(encode(t, fsm.CmdUpdateSecret, &fsm.UpdateSecret{Description: sp("")}))
	if err != nil {
		t.Fatal(err)
	}
	if u := got.(*fsm.UpdateSecret); u.Description == nil || *u.Description != "" || u.KmsKeyID != nil || u.Type != nil {
		t.Fatalf("decoded %#v", u)
	}
}

func TestCommandType_SecretOpsNumbers(t *testing.T) {
	// The numbers are the log format: they never change. 7 belongs to
	// ResetRegion.
	for ct, want := range map[fsm.CommandType]struct {
		n    uint8
		name string
	}{
		fsm.CmdUpdateSecret: {8, "UpdateSecret"}, fsm.CmdUpdateSecretVersionStage: {9, "UpdateSecretVersionStage"},
		fsm.CmdTagResource: {10, "TagResource"}, fsm.CmdUntagResource: {11, "UntagResource"},
		fsm.CmdPutResourcePolicy: {12, "PutResourcePolicy"}, fsm.CmdDeleteResourcePolicy: {13, "DeleteResourcePolicy"},
		fsm.CmdPurgeSecrets: {14, "PurgeSecrets"}, fsm.CmdRecordAccess: {15, "RecordAccess"},
	} {
		if uint8(ct) != want.n || ct.String() != want.name {
			t.Errorf("%s = %d, want %s = %d", ct, uint8(ct), want.name, want.n)
		}
	}
}

// newSecretWithVersions creates secret "s" with v1 and puts v2 (default
// stages): v1[AWSPREVIOUS] v2[AWSCURRENT].
func newSecretWithVersions(t *testing.T) (*harness, string) {
	t.Helper()
	h := newHarness(t)
	arn := arnOf("s", "abc123")
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: "s", Description: "old", KmsKeyID: "alias/k",
		Tags: []fsm.Tag{{Key: "a", Value: "1"}}, Version: strVersionPtr("v1", "one"), Date: t0})
	h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v2", nil, t0+hour))
	return h, arn
}

// scheduled applies a DeleteSecret with a window to the secret.
func scheduled(h *harness, arn string, date int64) {
	h.t.Helper()
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, DeletionDate: date + 7*day, Date: date})
}

func TestFSM_UpdateSecret(t *testing.T) {
	tests := []struct {
		name        string
		cmd         func(arn string) *fsm.UpdateSecret
		want        fsm.Result // ARN and Name are filled in
		description string
		kms         string
		typ         string
		stages      map[string]L
		changed     bool // LastChangedDate moved to the command's date
	}{
		{"description only", func(arn string) *fsm.UpdateSecret {
			return &fsm.UpdateSecret{ARN: arn, Description: sp("new"), Date: t0 + 2*hour}
		}, fsm.Result{}, "new", "alias/k", "", map[string]L{"v1": {prev}, "v2": {cur}}, true},
		{"empty description clears it, empty KmsKeyId means the default key", func(arn string) *fsm.UpdateSecret {
			return &fsm.UpdateSecret{ARN: arn, Description: sp(""), KmsKeyID: sp(""), Date: t0 + 2*hour}
		}, fsm.Result{}, "", "", "", map[string]L{"v1": {prev}, "v2": {cur}}, true},
		{"type and key", func(arn string) *fsm.UpdateSecret {
			return &fsm.UpdateSecret{ARN: arn, KmsKeyID: sp("alias/other"), Type: sp("partner"), Date: t0 + 2*hour}
		}, fsm.Result{}, "old", "alias/other", "partner", map[string]L{"v1": {prev}, "v2": {cur}}, true},
		{"same values change nothing", func(arn string) *fsm.UpdateSecret {
			return &fsm.UpdateSecret{ARN: arn, Description: sp("old"), KmsKeyID: sp("alias/k"), Date: t0 + 2*hour}
		}, fsm.Result{}, "old", "alias/k", "", map[string]L{"v1": {prev}, "v2": {cur}}, false},
		{"no members change nothing", func(arn string) *fsm.UpdateSecret {
			return &fsm.UpdateSecret{ARN: arn, Date: t0 + 2*hour}
		}, fsm.Result{}, "old", "alias/k", "", map[string]L{"v1": {prev}, "v2": {cur}}, false},
		{"a value is a new AWSCURRENT version", func(arn string) *fsm.UpdateSecret {
			return &fsm.UpdateSecret{ARN: arn, Version: strVersionPtr("v3", "three"), Date: t0 + 2*hour}
		}, fsm.Result{VersionID: "v3", VersionStages: L{cur}}, "old", "alias/k", "", map[string]L{"v1": nil, "v2": {prev}, "v3": {cur}}, true},
		{"a value and metadata together", func(arn string) *fsm.UpdateSecret {
			return &fsm.UpdateSecret{ARN: arn, Description: sp("both"), Version: strVersionPtr("v3", "three"), Date: t0 + 2*hour}
		}, fsm.Result{VersionID: "v3", VersionStages: L{cur}}, "both", "alias/k", "", map[string]L{"v1": nil, "v2": {prev}, "v3": {cur}}, true},
		{"same token and value is an idempotent success", func(arn string) *fsm.UpdateSecret {
			return &fsm.UpdateSecret{ARN: arn, Version: strVersionPtr("v2", "value of v2"), Date: t0 + 2*hour}
		}, fsm.Result{VersionID: "v2", VersionStages: L{cur}}, "old", "alias/k", "", map[string]L{"v1": {prev}, "v2": {cur}}, false},
		{"a previous version's token and value is idempotent too", func(arn string) *fsm.UpdateSecret {
			return &fsm.UpdateSecret{ARN: arn, Version: strVersionPtr("v1", "one"), Date: t0 + 2*hour}
		}, fsm.Result{VersionID: "v1", VersionStages: L{prev}}, "old", "alias/k", "", map[string]L{"v1": {prev}, "v2": {cur}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, arn := newSecretWithVersions(t)
			cmd := tc.cmd(arn)
			res := h.ok(fsm.CmdUpdateSecret, cmd)
			want := tc.want
			want.ARN, want.Name = arn, "s"
			if !reflect.DeepEqual(*res, want) {
				t.Fatalf("result %+v, want %+v", *res, want)
			}
			s := h.secret(arn)
			if s.Description != tc.description || s.KmsKeyID != tc.kms || s.Type != tc.typ {
				t.Errorf("metadata %q %q %q, want %q %q %q", s.Description, s.KmsKeyID, s.Type, tc.description, tc.kms, tc.typ)
			}
			assertStages(t, h, arn, tc.stages)
			wantChanged := t0 + hour
			if tc.changed {
				wantChanged = cmd.Date
			}
			if s.LastChangedDate != wantChanged {
				t.Errorf("LastChangedDate %d, want %d", s.LastChangedDate, wantChanged)
			}
			if !tc.changed {
				h.assertLastChangedNothing()
			}
			if !slices.Equal(s.Tags, []fsm.Tag{{Key: "a", Value: "1"}}) {
				t.Errorf("tags %v", s.Tags)
			}
		})
	}

	t.Run("first value of a secret without versions", func(t *testing.T) {
		h := newHarness(t)
		arn := arnOf("e", "eeeeee")
		h.ok(fsm.CmdCreateSecret, createCmd("e", "eeeeee", nil, t0))
		res := h.ok(fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: arn, Version: strVersionPtr("v1", "x"), Date: t0 + 1})
		if res.VersionID != "v1" || !slices.Equal(res.VersionStages, L{cur}) {
			t.Fatalf("result %+v", res)
		}
		assertStages(t, h, arn, map[string]L{"v1": {cur}})
	})

	t.Run("a new value abandons a rotation in progress", func(t *testing.T) {
		h, arn := newSecretWithVersions(t)
		h.ok(fsm.CmdPutSecretValue, putCmd(arn, "p", L{pend}, t0+2*hour))
		h.ok(fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: arn, Version: strVersionPtr("v3", "x"), Date: t0 + 3*hour})
		assertStages(t, h, arn, map[string]L{"v1": nil, "v2": {prev}, "p": nil, "v3": {cur}})
	})

	refusals := []struct {
		name string
		prep func(h *harness, arn string)
		cmd  func(arn string) *fsm.UpdateSecret
		code string
		msg  string
	}{
		{"same token, other value: nothing changes, metadata included", nil, func(arn string) *fsm.UpdateSecret {
			return &fsm.UpdateSecret{ARN: arn, Description: sp("lost"), Version: strVersionPtr("v2", "different"), Date: t0 + 2*hour}
		}, apierr.ResourceExists, "You can't use ClientRequestToken v2 because that value is already in use for a version of secret " + arnOf("s", "abc123") + "."},
		{"same token, other kind", nil, func(arn string) *fsm.UpdateSecret {
			v := binVersion("v2", "value of v2")
			return &fsm.UpdateSecret{ARN: arn, Version: &v, Date: t0 + 2*hour}
		}, apierr.ResourceExists, "You can't use ClientRequestToken v2 because that value is already in use for a version of secret " + arnOf("s", "abc123") + "."},
		{"scheduled for deletion", func(h *harness, arn string) { scheduled(h, arn, t0+2*hour) }, func(arn string) *fsm.UpdateSecret {
			return &fsm.UpdateSecret{ARN: arn, Description: sp("no"), Date: t0 + 3*hour}
		}, apierr.InvalidRequest, apierr.MsgMarkedForDeletion},
		{"scheduled for deletion, with a value", func(h *harness, arn string) { scheduled(h, arn, t0+2*hour) }, func(arn string) *fsm.UpdateSecret {
			return &fsm.UpdateSecret{ARN: arn, Version: strVersionPtr("v3", "x"), Date: t0 + 3*hour}
		}, apierr.InvalidRequest, apierr.MsgMarkedForDeletion},
		{"no such secret", nil, func(string) *fsm.UpdateSecret {
			return &fsm.UpdateSecret{ARN: arnOf("s", "zzzzzz"), Description: sp("x"), Date: t0 + 2*hour}
		}, apierr.ResourceNotFound, apierr.MsgSecretNotFound},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			h, arn := newSecretWithVersions(t)
			if tc.prep != nil {
				tc.prep(h, arn)
			}
			h.fail(fsm.CmdUpdateSecret, tc.cmd(arn), tc.code, tc.msg)
		})
	}
}

// stageCmd is an UpdateSecretVersionStage.
func stageCmd(arn, label, remove, move string, date int64) *fsm.UpdateSecretVersionStage {
	return &fsm.UpdateSecretVersionStage{ARN: arn, Stage: label, RemoveFrom: remove, MoveTo: move, Date: date}
}

// The manual-rotation scenarios of shared/spec §3.4 (C and D), with the
// label moves done by UpdateSecretVersionStage.
func TestFSM_UpdateSecretVersionStage_Scenarios(t *testing.T) {
	type step struct {
		put    string // a PutSecretValue of this version, or
		stages L
		label  string // an UpdateSecretVersionStage of this label
		remove string
		move   string
		want   map[string]L
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"C manual rotation, then a plain put", []step{
			{put: "v2", stages: L{pend}, want: map[string]L{"v1": {cur}, "v2": {pend}}},
			{label: cur, remove: "v1", move: "v2", want: map[string]L{"v1": {prev}, "v2": {cur, pend}}},
			{put: "v3", want: map[string]L{"v1": nil, "v2": {prev}, "v3": {cur}}},
		}},
		{"C manual rotation twice", []step{
			{put: "v2", stages: L{pend}, want: map[string]L{"v1": {cur}, "v2": {pend}}},
			{label: cur, remove: "v1", move: "v2", want: map[string]L{"v1": {prev}, "v2": {cur, pend}}},
			{put: "v3", stages: L{pend}, want: map[string]L{"v1": {prev}, "v2": {cur}, "v3": {pend}}},
			{label: cur, remove: "v2", move: "v3", want: map[string]L{"v1": nil, "v2": {prev}, "v3": {cur, pend}}},
		}},
		{"D reserved and custom labels", []step{
			{put: "v2", stages: L{cur, "PUT0"}, want: map[string]L{"v1": {prev}, "v2": {cur, "PUT0"}}},
			{put: "v3", stages: L{pend, "PUT1"}, want: map[string]L{"v1": {prev}, "v2": {cur, "PUT0"}, "v3": {pend, "PUT1"}}},
			{label: cur, remove: "v2", move: "v3", want: map[string]L{"v1": nil, "v2": {prev, "PUT0"}, "v3": {cur, pend, "PUT1"}}},
			{put: "v4", stages: L{pend, "PUT2"}, want: map[string]L{"v1": nil, "v2": {prev, "PUT0"}, "v3": {cur, "PUT1"}, "v4": {pend, "PUT2"}}},
			{label: cur, remove: "v3", move: "v4", want: map[string]L{"v1": nil, "v2": {"PUT0"}, "v3": {prev, "PUT1"}, "v4": {cur, pend, "PUT2"}}},
		}},
		{"revert to the previous version", []step{
			{put: "v2", want: map[string]L{"v1": {prev}, "v2": {cur}}},
			{label: cur, remove: "v2", move: "v1", want: map[string]L{"v1": {cur}, "v2": {prev}}},
		}},
		{"custom label: attach, move, remove", []step{
			{put: "v2", want: map[string]L{"v1": {prev}, "v2": {cur}}},
			{label: "blue", move: "v1", want: map[string]L{"v1": {prev, "blue"}, "v2": {cur}}},
			{label: "blue", remove: "v1", move: "v2", want: map[string]L{"v1": {prev}, "v2": {cur, "blue"}}},
			{label: "blue", remove: "v2", want: map[string]L{"v1": {prev}, "v2": {cur}}},
		}},
		{"removing the last label deprecates the version", []step{
			{put: "v2", stages: L{"only"}, want: map[string]L{"v1": {cur}, "v2": {"only"}}},
			{label: "only", remove: "v2", want: map[string]L{"v1": {cur}, "v2": nil}},
		}},
		{"AWSPENDING is never moved implicitly", []step{
			{put: "v2", stages: L{pend}, want: map[string]L{"v1": {cur}, "v2": {pend}}},
			{put: "v3", stages: L{"x"}, want: map[string]L{"v1": {cur}, "v2": {pend}, "v3": {"x"}}},
			{label: cur, remove: "v1", move: "v3", want: map[string]L{"v1": {prev}, "v2": {pend}, "v3": {cur, "x"}}},
		}},
		{"AWSPREVIOUS moved by hand", []step{
			{put: "v2", want: map[string]L{"v1": {prev}, "v2": {cur}}},
			{put: "v3", stages: L{"x"}, want: map[string]L{"v1": {prev}, "v2": {cur}, "v3": {"x"}}},
			{label: prev, remove: "v1", move: "v3", want: map[string]L{"v1": nil, "v2": {cur}, "v3": {prev, "x"}}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			arn := arnOf("s", "abc123")
			h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v1", "value of v1"), t0))
			for i, st := range tc.steps {
				date := t0 + int64(i+1)*hour
				if st.put != "" {
					h.ok(fsm.CmdPutSecretValue, putCmd(arn, st.put, st.stages, date))
				} else {
					res := h.ok(fsm.CmdUpdateSecretVersionStage, stageCmd(arn, st.label, st.remove, st.move, date))
					if !reflect.DeepEqual(res, &fsm.Result{ARN: arn, Name: "s"}) {
						t.Fatalf("step %d: result %+v", i+1, res)
					}
					if got := h.secret(arn).LastChangedDate; got != date {
						t.Fatalf("step %d: LastChangedDate %d, want %d", i+1, got, date)
					}
				}
				assertStages(t, h, arn, st.want)
			}
		})
	}
}

func TestFSM_UpdateSecretVersionStage_Refusals(t *testing.T) {
	arn := arnOf("s", "abc123")
	tests := []struct {
		name string
		prep func(h *harness)
		cmd  *fsm.UpdateSecretVersionStage
		code string
		msg  string
	}{
		{"neither version id", nil, stageCmd(arn, "x", "", "", t0+day), apierr.InvalidParameter, apierr.MsgStageNoVersion},
		{"empty label", nil, stageCmd(arn, "", "", "v1", t0+day), apierr.InvalidParameter, "The staging label must not be empty."},
		{"MoveToVersionId names no version", nil, stageCmd(arn, "x", "", "nope", t0+day), apierr.InvalidParameter, "Not a valid version: nope"},
		{"RemoveFromVersionId names no version", nil, stageCmd(arn, cur, "nope", "v1", t0+day), apierr.InvalidParameter, "Not a valid version: nope"},
		{"label not on RemoveFromVersionId", nil, stageCmd(arn, cur, "v1", "v1", t0+day), apierr.InvalidParameter,
			"The staging label AWSCURRENT is not attached to version v1, so it can't be removed from it."},
		{"unheld label removed", nil, stageCmd(arn, "ghost", "v2", "", t0+day), apierr.InvalidParameter,
			"The staging label ghost is not attached to version v2, so it can't be removed from it."},
		{"move without RemoveFromVersionId", nil, stageCmd(arn, cur, "", "v1", t0+day), apierr.InvalidParameter,
			"The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently attached to version v2, so you must explicitly reference that version in RemoveFromVersionId."},
		{"AWSCURRENT removed without a target", nil, stageCmd(arn, cur, "v2", "", t0+day), apierr.InvalidParameter, apierr.MsgStageCurrentNoTarget},
		{"label quota", func(h *harness) {
			var many L
			for i := range 18 {
				many = append(many, "L"+string(rune('a'+i)))
			}
			h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v3", many, t0+2*hour)) // 2 + 18 = 20 labels
		}, stageCmd(arn, "one-too-many", "", "v1", t0+day), apierr.LimitExceeded,
			"A secret can have at most 20 staging labels across its versions; this request would attach 21."},
		{"scheduled for deletion", func(h *harness) { scheduled(h, arn, t0+2*hour) }, stageCmd(arn, "x", "", "v1", t0+day),
			apierr.InvalidRequest, apierr.MsgMarkedForDeletion},
		{"no such secret", nil, stageCmd(arnOf("s", "zzzzzz"), "x", "", "v1", t0+day), apierr.ResourceNotFound, apierr.MsgSecretNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newSecretWithVersions(t)
			if tc.prep != nil {
				tc.prep(h)
			}
			h.fail(fsm.CmdUpdateSecretVersionStage, tc.cmd, tc.code, tc.msg)
		})
	}

	t.Run("moving a label onto the version that has it changes nothing", func(t *testing.T) {
		h, _ := newSecretWithVersions(t)
		for _, cmd := range []*fsm.UpdateSecretVersionStage{
			stageCmd(arn, cur, "", "v2", t0+day),
			stageCmd(arn, cur, "v2", "v2", t0+day),
			stageCmd(arn, prev, "v1", "v1", t0+day),
		} {
			if res := h.ok(fsm.CmdUpdateSecretVersionStage, cmd); res.ARN != arn {
				t.Fatalf("result %+v", res)
			}
			h.assertLastChangedNothing()
		}
	})
}

func TestFSM_TagResource(t *testing.T) {
	arn := arnOf("s", "abc123")
	fifty := make([]fsm.Tag, 0, 50)
	for i := range 50 {
		fifty = append(fifty, fsm.Tag{Key: "k" + string(rune('A'+i)), Value: "v"})
	}
	tests := []struct {
		name    string
		initial []fsm.Tag
		tags    []fsm.Tag
		want    []fsm.Tag
		changed bool
	}{
		{"add to none", nil, []fsm.Tag{{Key: "x", Value: "1"}}, []fsm.Tag{{Key: "x", Value: "1"}}, true},
		{"new keys are appended in order", []fsm.Tag{{Key: "b", Value: "1"}}, []fsm.Tag{{Key: "z", Value: "2"}, {Key: "a", Value: ""}},
			[]fsm.Tag{{Key: "b", Value: "1"}, {Key: "z", Value: "2"}, {Key: "a", Value: ""}}, true},
		{"an existing key keeps its place, its value is replaced", []fsm.Tag{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}},
			[]fsm.Tag{{Key: "a", Value: "new"}, {Key: "c", Value: "3"}},
			[]fsm.Tag{{Key: "a", Value: "new"}, {Key: "b", Value: "2"}, {Key: "c", Value: "3"}}, true},
		{"keys are case-sensitive", []fsm.Tag{{Key: "a", Value: "1"}}, []fsm.Tag{{Key: "A", Value: "2"}},
			[]fsm.Tag{{Key: "a", Value: "1"}, {Key: "A", Value: "2"}}, true},
		{"the same tags change nothing", []fsm.Tag{{Key: "a", Value: "1"}}, []fsm.Tag{{Key: "a", Value: "1"}}, []fsm.Tag{{Key: "a", Value: "1"}}, false},
		{"an empty list changes nothing", []fsm.Tag{{Key: "a", Value: "1"}}, []fsm.Tag{}, []fsm.Tag{{Key: "a", Value: "1"}}, false},
		{"exactly 50", fifty[:49], fifty[49:], fifty, true},
		{"overwriting at 50", fifty, []fsm.Tag{{Key: "kA", Value: "w"}}, append([]fsm.Tag{{Key: "kA", Value: "w"}}, fifty[1:]...), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: "s", Tags: tc.initial, Date: t0})
			res := h.ok(fsm.CmdTagResource, &fsm.TagResource{ARN: arn, Tags: tc.tags, Date: t0 + 1})
			if res.ARN != arn || res.Name != "s" {
				t.Fatalf("result %+v", res)
			}
			s := h.secret(arn)
			if !slices.Equal(s.Tags, tc.want) {
				t.Fatalf("tags %v, want %v", s.Tags, tc.want)
			}
			if tc.changed != (s.LastChangedDate == t0+1) {
				t.Fatalf("LastChangedDate %d (changed %v)", s.LastChangedDate, tc.changed)
			}
			if !tc.changed {
				h.assertLastChangedNothing()
			}
			if !s.TagsEverSet {
				t.Fatal("TagsEverSet is false")
			}
		})
	}

	refusals := []struct {
		name string
		prep func(h *harness)
		cmd  *fsm.TagResource
		code string
		msg  string
	}{
		{"51 tags", func(h *harness) { h.ok(fsm.CmdTagResource, &fsm.TagResource{ARN: arn, Tags: fifty, Date: t0 + 1}) },
			&fsm.TagResource{ARN: arn, Tags: []fsm.Tag{{Key: "one-more"}}, Date: t0 + 2},
			apierr.InvalidParameter, "A secret can have at most 50 tags; this request would leave it with 51."},
		{"empty key", nil, &fsm.TagResource{ARN: arn, Tags: []fsm.Tag{{Key: "ok"}, {Key: ""}}, Date: t0 + 2},
			apierr.InvalidParameter, "A tag key must not be empty."},
		{"scheduled for deletion", func(h *harness) { scheduled(h, arn, t0+1) },
			&fsm.TagResource{ARN: arn, Tags: []fsm.Tag{{Key: "x"}}, Date: t0 + 2}, apierr.InvalidRequest, apierr.MsgMarkedForDeletion},
		{"no such secret", nil, &fsm.TagResource{ARN: arnOf("s", "zzzzzz"), Tags: []fsm.Tag{{Key: "x"}}, Date: t0 + 2},
			apierr.ResourceNotFound, apierr.MsgSecretNotFound},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", nil, t0))
			if tc.prep != nil {
				tc.prep(h)
			}
			h.fail(fsm.CmdTagResource, tc.cmd, tc.code, tc.msg)
		})
	}
}

func TestFSM_UntagResource(t *testing.T) {
	arn := arnOf("s", "abc123")
	abc := []fsm.Tag{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "c", Value: "3"}}
	tests := []struct {
		name    string
		initial []fsm.Tag
		keys    []string
		want    []fsm.Tag
		changed bool
	}{
		{"one key", abc, []string{"b"}, []fsm.Tag{{Key: "a", Value: "1"}, {Key: "c", Value: "3"}}, true},
		{"unknown keys are ignored", abc, []string{"zz", "a", "B"}, []fsm.Tag{{Key: "b", Value: "2"}, {Key: "c", Value: "3"}}, true},
		{"only unknown keys change nothing", abc, []string{"zz"}, abc, false},
		{"all of them", abc, []string{"c", "b", "a"}, []fsm.Tag{}, true},
		{"from a secret without tags", nil, []string{"a"}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: "s", Tags: tc.initial, Date: t0})
			h.ok(fsm.CmdUntagResource, &fsm.UntagResource{ARN: arn, Keys: tc.keys, Date: t0 + 1})
			s := h.secret(arn)
			if len(s.Tags) != len(tc.want) || (len(tc.want) > 0 && !slices.Equal(s.Tags, tc.want)) {
				t.Fatalf("tags %v, want %v", s.Tags, tc.want)
			}
			if tc.changed != (s.LastChangedDate == t0+1) {
				t.Fatalf("LastChangedDate %d (changed %v)", s.LastChangedDate, tc.changed)
			}
			if !tc.changed {
				h.assertLastChangedNothing()
			}
			// Once tags were set, DescribeSecret keeps answering "Tags": [].
			if s.TagsEverSet != (tc.initial != nil) {
				t.Fatalf("TagsEverSet %v", s.TagsEverSet)
			}
		})
	}
	t.Run("scheduled for deletion", func(t *testing.T) {
		h := newHarness(t)
		h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: "s", Tags: abc, Date: t0})
		scheduled(h, arn, t0+1)
		h.fail(fsm.CmdUntagResource, &fsm.UntagResource{ARN: arn, Keys: []string{"a"}, Date: t0 + 2}, apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
	})
	t.Run("no such secret", func(t *testing.T) {
		h := newHarness(t)
		h.fail(fsm.CmdUntagResource, &fsm.UntagResource{ARN: arn, Keys: []string{"a"}, Date: t0 + 2}, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	})
}

func TestFSM_ResourcePolicy(t *testing.T) {
	arn := arnOf("s", "abc123")
	const p1 = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`
	// Stored byte for byte, whitespace included.
	const p2 = "{\n  \"Statement\": {\"Effect\": \"Deny\", \"Principal\": \"*\", \"Action\": \"*\"}\n}"
	h := newHarness(t)
	h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v1", "x"), t0))

	res := h.ok(fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: arn, Policy: p1, Date: t0 + 1})
	if !reflect.DeepEqual(res, &fsm.Result{ARN: arn, Name: "s"}) {
		t.Fatalf("result %+v", res)
	}
	if s := h.secret(arn); s.ResourcePolicy != p1 || s.LastChangedDate != t0+1 {
		t.Fatalf("policy %q changed %d", s.ResourcePolicy, s.LastChangedDate)
	}
	h.ok(fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: arn, Policy: p1, Date: t0 + 2})
	h.assertLastChangedNothing()
	h.ok(fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: arn, Policy: p2, Date: t0 + 3})
	if s := h.secret(arn); s.ResourcePolicy != p2 || s.LastChangedDate != t0+3 {
		t.Fatalf("replaced policy %q changed %d", s.ResourcePolicy, s.LastChangedDate)
	}
	h.fail(fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: arn, Policy: "", Date: t0 + 4}, apierr.MalformedPolicyDocument, "This policy has invalid syntax.")

	res = h.ok(fsm.CmdDeleteResourcePolicy, &fsm.DeleteResourcePolicy{ARN: arn, Date: t0 + 5})
	if !reflect.DeepEqual(res, &fsm.Result{ARN: arn, Name: "s"}) {
		t.Fatalf("result %+v", res)
	}
	if s := h.secret(arn); s.ResourcePolicy != "" || s.LastChangedDate != t0+5 {
		t.Fatalf("after delete: policy %q changed %d", s.ResourcePolicy, s.LastChangedDate)
	}
	// Deleting what is not there succeeds and changes nothing.
	h.ok(fsm.CmdDeleteResourcePolicy, &fsm.DeleteResourcePolicy{ARN: arn, Date: t0 + 6})
	h.assertLastChangedNothing()

	h.ok(fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: arn, Policy: p1, Date: t0 + 7})
	scheduled(h, arn, t0+8)
	h.fail(fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: arn, Policy: p2, Date: t0 + 9}, apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
	h.fail(fsm.CmdDeleteResourcePolicy, &fsm.DeleteResourcePolicy{ARN: arn, Date: t0 + 9}, apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
	if s := h.secret(arn); s.ResourcePolicy != p1 {
		t.Fatalf("policy of the scheduled secret %q", s.ResourcePolicy)
	}
	other := arnOf("s", "zzzzzz")
	h.fail(fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: other, Policy: p1, Date: t0 + 9}, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	h.fail(fsm.CmdDeleteResourcePolicy, &fsm.DeleteResourcePolicy{ARN: other, Date: t0 + 9}, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
}

func TestFSM_PurgeSecrets(t *testing.T) {
	h := newHarness(t)
	due, later, restored, active := arnOf("due", "aaaaaa"), arnOf("later", "bbbbbb"), arnOf("restored", "cccccc"), arnOf("active", "dddddd")
	h.ok(fsm.CmdCreateSecret, createCmd("due", "aaaaaa", strVersionPtr("v1", "x"), t0))
	h.ok(fsm.CmdCreateSecret, createCmd("later", "bbbbbb", nil, t0+1))
	h.ok(fsm.CmdCreateSecret, createCmd("restored", "cccccc", nil, t0+2))
	h.ok(fsm.CmdCreateSecret, createCmd("active", "dddddd", nil, t0+3))
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: due, DeletionDate: t0 + 7*day, Date: t0 + 10})
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: later, DeletionDate: t0 + 30*day, Date: t0 + 11})
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: restored, DeletionDate: t0 + 7*day, Date: t0 + 12})
	h.ok(fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: restored, Date: t0 + 13})

	expired := func(now int64, limit int) []string {
		t.Helper()
		got, err := fsm.ExpiredSecrets(h.txn(), now, limit)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := expired(t0+7*day-1, 10); len(got) != 0 {
		t.Fatalf("expired a millisecond before the window ends: %v", got)
	}
	if got := expired(t0+7*day, 10); !slices.Equal(got, []string{due}) {
		t.Fatalf("expired when the window ends: %v", got)
	}
	if got := expired(t0+40*day, 10); !slices.Equal(got, []string{due, later}) {
		t.Fatalf("expired after both windows: %v (earliest first)", got)
	}
	if got := expired(t0+40*day, 1); !slices.Equal(got, []string{due}) {
		t.Fatalf("limit 1: %v", got)
	}

	// Apply re-checks every ARN against the command's Now: a secret not due
	// yet, restored, active or gone is left alone.
	res := h.ok(fsm.CmdPurgeSecrets, &fsm.PurgeSecrets{ARNs: []string{later, restored, active, arnOf("never", "eeeeee")}, Now: t0 + 7*day})
	if len(res.Purged) != 0 {
		t.Fatalf("purged %v", res.Purged)
	}
	h.assertLastChangedNothing()
	res = h.ok(fsm.CmdPurgeSecrets, &fsm.PurgeSecrets{ARNs: []string{due, later}, Now: t0 + 7*day})
	if !slices.Equal(res.Purged, []string{due}) {
		t.Fatalf("purged %v, want only %s", res.Purged, due)
	}
	txn := h.txn()
	if fsm.SecretByARN(txn, due) != nil || fsm.SecretByName(txn, "due") != nil {
		t.Fatal("the expired secret is still there")
	}
	for _, arn := range []string{later, restored, active} {
		h.secret(arn)
	}
	if got := expired(t0+40*day, 10); !slices.Equal(got, []string{later}) {
		t.Fatalf("expired after the purge: %v", got)
	}
	// A purge applied twice (a retried command) is harmless.
	h.ok(fsm.CmdPurgeSecrets, &fsm.PurgeSecrets{ARNs: []string{due}, Now: t0 + 7*day})
	h.assertLastChangedNothing()
	// The name is free again.
	h.ok(fsm.CmdCreateSecret, createCmd("due", "ffffff", nil, t0+8*day))
	// A force delete removes a secret from the deletion index too.
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: later, Force: true, Date: t0 + 8*day})
	if got := expired(t0+40*day, 10); len(got) != 0 {
		t.Fatalf("expired after the force delete: %v", got)
	}
	// Re-scheduling moves a secret in the index.
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: restored, DeletionDate: t0 + 9*day, Date: t0 + 8*day})
	if got := expired(t0+9*day, 10); !slices.Equal(got, []string{restored}) {
		t.Fatalf("expired after re-scheduling: %v", got)
	}
}

func TestFSM_RecordAccess(t *testing.T) {
	h, arn := newSecretWithVersions(t)
	day1 := t0 - t0%day + day
	other := arnOf("o", "oooooo")
	h.ok(fsm.CmdCreateSecret, createCmd("o", "oooooo", strVersionPtr("w1", "x"), t0))

	dates := func(arn string) (secret int64, versions map[string]int64) {
		s := h.secret(arn)
		versions = map[string]int64{}
		for _, v := range s.Versions {
			versions[v.VersionID] = v.LastAccessedDate
		}
		return s.LastAccessedDate, versions
	}
	check := func(arn string, wantSecret int64, wantVersions map[string]int64) {
		t.Helper()
		s, v := dates(arn)
		if s != wantSecret || !reflect.DeepEqual(v, wantVersions) {
			t.Fatalf("%s: LastAccessedDate %d, versions %v; want %d, %v", arn, s, v, wantSecret, wantVersions)
		}
	}

	h.ok(fsm.CmdRecordAccess, &fsm.RecordAccess{Day: day1, Secrets: []fsm.AccessedSecret{
		{ARN: arn, VersionIDs: []string{"v2", "no-such-version"}},
		{ARN: arnOf("gone", "gggggg"), VersionIDs: []string{"v1"}},
		{ARN: other},
	}})
	check(arn, day1, map[string]int64{"v1": 0, "v2": day1})
	check(other, day1, map[string]int64{"w1": 0})
	if s := h.secret(arn); s.LastChangedDate != t0+hour {
		t.Fatalf("a read changed LastChangedDate to %d", s.LastChangedDate)
	}
	// The same day again, from another node's batch: no write at all.
	h.ok(fsm.CmdRecordAccess, &fsm.RecordAccess{Day: day1, Secrets: []fsm.AccessedSecret{{ARN: arn, VersionIDs: []string{"v2"}}}})
	h.assertLastChangedNothing()
	// Another version the same day.
	h.ok(fsm.CmdRecordAccess, &fsm.RecordAccess{Day: day1, Secrets: []fsm.AccessedSecret{{ARN: arn, VersionIDs: []string{"v1"}}}})
	check(arn, day1, map[string]int64{"v1": day1, "v2": day1})
	// A late batch of an earlier day never moves a date back.
	h.ok(fsm.CmdRecordAccess, &fsm.RecordAccess{Day: day1 - day, Secrets: []fsm.AccessedSecret{{ARN: arn, VersionIDs: []string{"v1", "v2"}}}})
	h.assertLastChangedNothing()
	// The next day moves it forward.
	h.ok(fsm.CmdRecordAccess, &fsm.RecordAccess{Day: day1 + day, Secrets: []fsm.AccessedSecret{{ARN: arn, VersionIDs: []string{"v1"}}}})
	check(arn, day1+day, map[string]int64{"v1": day1 + day, "v2": day1})
	// A secret scheduled for deletion still takes reads recorded before.
	scheduled(h, other, t0+2*day)
	h.ok(fsm.CmdRecordAccess, &fsm.RecordAccess{Day: day1 + day, Secrets: []fsm.AccessedSecret{{ARN: other, VersionIDs: []string{"w1"}}}})
	check(other, day1+day, map[string]int64{"w1": day1 + day})
}

// buildSecretOpsLog applies one of each new command on top of
// buildMixedLog's state, touching new secrets only, so the snapshot round
// trip covers the fields they write.
func buildSecretOpsLog(h *harness) {
	h.t.Helper()
	e, f := arnOf("e", "eeeeee"), arnOf("f", "ffffff")
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: e, Name: "e", Tags: []fsm.Tag{{Key: "t1", Value: "1"}},
		Version: strVersionPtr("v1", "x"), Date: t0 + 100, Type: "created-type"})
	h.ok(fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: e, Description: sp("described"), KmsKeyID: sp("alias/e"), Type: sp("partner"),
		Version: strVersionPtr("v2", "y"), Date: t0 + 101})
	h.ok(fsm.CmdPutSecretValue, putCmd(e, "v3", L{pend}, t0+102))
	h.ok(fsm.CmdUpdateSecretVersionStage, stageCmd(e, cur, "v2", "v3", t0+103))
	h.ok(fsm.CmdUpdateSecretVersionStage, stageCmd(e, "blue", "", "v1", t0+104))
	h.ok(fsm.CmdTagResource, &fsm.TagResource{ARN: e, Tags: []fsm.Tag{{Key: "t2", Value: "2"}, {Key: "t1", Value: "one"}}, Date: t0 + 105})
	h.ok(fsm.CmdUntagResource, &fsm.UntagResource{ARN: e, Keys: []string{"t2"}, Date: t0 + 106})
	h.ok(fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: e, Policy: `{"Statement":[]}`, Date: t0 + 107})
	h.ok(fsm.CmdRecordAccess, &fsm.RecordAccess{Day: t0 - t0%day, Secrets: []fsm.AccessedSecret{{ARN: e, VersionIDs: []string{"v3"}}}})
	h.ok(fsm.CmdCreateSecret, createCmd("f", "ffffff", nil, t0+108))
	h.ok(fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: f, Policy: "{}", Date: t0 + 109})
	h.ok(fsm.CmdDeleteResourcePolicy, &fsm.DeleteResourcePolicy{ARN: f, Date: t0 + 110})
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: f, DeletionDate: t0 + 111 + 7*day, Date: t0 + 111})
	h.ok(fsm.CmdPurgeSecrets, &fsm.PurgeSecrets{ARNs: []string{f}, Now: t0 + 112}) // not due: stays
}

// The fields the new commands write survive a snapshot, and the deletion
// index is rebuilt by Restore.
func TestFSM_SnapshotRestore_SecretOpsFields(t *testing.T) {
	h := newHarness(t)
	buildMixedLog(h)
	g := fsm.New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, h.f)))); err != nil {
		t.Fatal(err)
	}
	txn, _ := g.ReadTxn()
	e := fsm.SecretByName(txn, "e")
	if e == nil {
		t.Fatal("secret e lost")
	}
	if e.Description != "described" || e.KmsKeyID != "alias/e" || e.Type != "partner" || e.ResourcePolicy != `{"Statement":[]}` ||
		!slices.Equal(e.Tags, []fsm.Tag{{Key: "t1", Value: "one"}}) || e.LastAccessedDate != t0-t0%day || e.LastChangedDate != t0+107 {
		t.Fatalf("restored secret e: %+v", e)
	}
	if v := e.Version("v3"); v == nil || v.LastAccessedDate != t0-t0%day || !slices.Equal(v.Stages, L{pend, cur}) {
		t.Fatalf("restored version v3: %+v", v)
	}
	if v := e.Version("v1"); v == nil || !slices.Equal(v.Stages, L{"blue"}) {
		t.Fatalf("restored version v1: %+v", v)
	}
	f := fsm.SecretByName(txn, "f")
	if f == nil || f.ResourcePolicy != "" || !f.Scheduled() {
		t.Fatalf("restored secret f: %+v", f)
	}
	got, err := fsm.ExpiredSecrets(txn, t0+400*day, 10)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, arn := range got {
		names = append(names, fsm.SecretByARN(txn, arn).Name)
	}
	// c (from buildMixedLog) and f are scheduled; c's window ends later.
	if strings.Join(names, ",") != "f,c" {
		t.Fatalf("expired secrets after a restore: %v", names)
	}
}

// secretOpsFuzzSeeds are FuzzApply seeds for the new commands, aimed at
// fuzzBase's secrets (a: v1 AWSCURRENT, v2 AWSPENDING+custom; b: no value;
// c: scheduled).
func secretOpsFuzzSeeds(a, b, c string) []struct {
	ct  fsm.CommandType
	cmd any
} {
	return []struct {
		ct  fsm.CommandType
		cmd any
	}{
		{fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: a, Description: sp("d"), Version: strVersionPtr("v3", "x"), Date: t0 + 10}},
		{fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: b, Type: sp(""), Version: strVersionPtr("b1", "x"), Date: t0 + 10}},
		{fsm.CmdUpdateSecretVersionStage, stageCmd(a, cur, "v1", "v2", t0+10)},
		{fsm.CmdUpdateSecretVersionStage, stageCmd(a, "custom", "v2", "", t0+10)},
		{fsm.CmdTagResource, &fsm.TagResource{ARN: a, Tags: []fsm.Tag{{Key: "k", Value: "v"}}, Date: t0 + 10}},
		{fsm.CmdUntagResource, &fsm.UntagResource{ARN: a, Keys: []string{"k"}, Date: t0 + 10}},
		{fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: a, Policy: "{}", Date: t0 + 10}},
		{fsm.CmdDeleteResourcePolicy, &fsm.DeleteResourcePolicy{ARN: a, Date: t0 + 10}},
		{fsm.CmdPurgeSecrets, &fsm.PurgeSecrets{ARNs: []string{c, a}, Now: t0 + 8*day}},
		{fsm.CmdRecordAccess, &fsm.RecordAccess{Day: t0 - t0%day, Secrets: []fsm.AccessedSecret{{ARN: a, VersionIDs: []string{"v1"}}}}},
	}
}
