package fsm_test

import (
	"bytes"
	"io"
	"reflect"
	"testing"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
)

const testRotatorARN = "arn:aws:lambda:" + testRegion + ":" + testAccount + ":function:pg"

func rotationHarness(t *testing.T) (*harness, string) {
	h := newHarness(t)
	h.ok(fsm.CmdPutRotator, &fsm.PutRotator{Rotator: fsm.Rotator{ARN: testRotatorARN, Name: "pg", Type: "postgres"}, Date: t0})
	arn := arnOf("db", "rrrrrr")
	h.ok(fsm.CmdCreateSecret, createCmd("db", "rrrrrr", strVersionPtr("v1", "one"), t0))
	return h, arn
}

func rotateCmd(arn, token string, date int64) *fsm.RotateSecret {
	return &fsm.RotateSecret{ARN: arn, Config: &fsm.RotationConfig{Rotator: testRotatorARN, Rules: true, AfterDays: 30},
		Start: true, Token: token, NextStart: date + 30*day, NextDate: date + 31*day, Date: date}
}

// A rotation from start to finish: the placeholder, the steps, the
// finish that leaves AWSCURRENT alone on the new version.
func TestRotation_StartStepsFinish(t *testing.T) {
	h, arn := rotationHarness(t)
	res := h.ok(fsm.CmdRotateSecret, rotateCmd(arn, "t1", t0+hour))
	if res.VersionID != "t1" {
		t.Fatalf("VersionID %q", res.VersionID)
	}
	assertStages(t, h, arn, map[string]L{"v1": {cur}, "t1": {pend}})
	s := h.secret(arn)
	if v := s.Version("t1"); v.HasValue() {
		t.Fatal("the placeholder has a value")
	}
	rot := s.Rotation
	if !rot.Enabled || rot.Token != "t1" || rot.Step != "" || rot.NextDate != t0+hour+31*day || rot.Rotator != testRotatorARN {
		t.Fatalf("rotation %+v", rot)
	}
	// A retry of the same request answers as the first did.
	if res := h.ok(fsm.CmdRotateSecret, rotateCmd(arn, "t1", t0+2*hour)); res.VersionID != "t1" {
		t.Fatalf("retry: %+v", res)
	}
	// Another token while t1 runs: in progress.
	h.fail(fsm.CmdRotateSecret, rotateCmd(arn, "t2", t0+2*hour), apierr.InvalidRequest, apierr.MsgRotationInProgress)

	// createSecret: the rotator puts the pending value.
	h.ok(fsm.CmdPutSecretValue, putCmd(arn, "t1", L{pend}, t0+3*hour))
	h.ok(fsm.CmdRotationProgress, &fsm.RotationProgress{ARN: arn, Token: "t1", Next: "setSecret", Date: t0 + 3*hour})
	// A late report of the same step (a deposed leader's) changes nothing.
	wantErr(t, h.apply(fsm.CmdRotationProgress, &fsm.RotationProgress{ARN: arn, Token: "t1", Next: "setSecret", Date: t0 + 3*hour}),
		apierr.InvalidRequest, "Nothing changed: the rotation is no longer at this step.")
	h.ok(fsm.CmdRotationProgress, &fsm.RotationProgress{ARN: arn, Token: "t1", Step: "setSecret", Next: "testSecret", Date: t0 + 3*hour})
	h.ok(fsm.CmdRotationProgress, &fsm.RotationProgress{ARN: arn, Token: "t1", Step: "testSecret", Next: "finishSecret", Date: t0 + 3*hour})
	// Done before AWSCURRENT moved: refused.
	wantErr(t, h.apply(fsm.CmdRotationProgress, &fsm.RotationProgress{ARN: arn, Token: "t1", Step: "finishSecret", Done: true, Date: t0 + 3*hour}),
		apierr.InvalidRequest, "Nothing changed: version t1 is not AWSCURRENT, so the rotation has not finished.")
	h.ok(fsm.CmdUpdateSecretVersionStage, &fsm.UpdateSecretVersionStage{ARN: arn, Stage: cur, MoveTo: "t1", RemoveFrom: "v1", Date: t0 + 3*hour})
	h.ok(fsm.CmdRotationProgress, &fsm.RotationProgress{ARN: arn, Token: "t1", Step: "finishSecret", Done: true,
		NextStart: t0 + 40*day, NextDate: t0 + 41*day, Date: t0 + 4*hour})
	assertStages(t, h, arn, map[string]L{"v1": {prev}, "t1": {cur}})
	rot = h.secret(arn).Rotation
	if rot.Token != "" || rot.LastRotatedDate != t0+4*hour || rot.NextStart != t0+40*day || !rot.Enabled {
		t.Fatalf("after the finish: %+v", rot)
	}
	checkInvariants(t, h.txn())
}

// A failed step restarts the rotation from createSecret at RetryAt and
// counts the attempt; AWSCURRENT never moves.
func TestRotation_FailureAndCancel(t *testing.T) {
	h, arn := rotationHarness(t)
	h.ok(fsm.CmdRotateSecret, rotateCmd(arn, "t1", t0+hour))
	h.ok(fsm.CmdRotationProgress, &fsm.RotationProgress{ARN: arn, Token: "t1", Next: "setSecret", Date: t0 + hour})
	h.ok(fsm.CmdRotationProgress, &fsm.RotationProgress{ARN: arn, Token: "t1", Step: "setSecret", Error: "setSecret failed: password authentication failed",
		RetryAt: t0 + 2*hour, Date: t0 + hour})
	rot := h.secret(arn).Rotation
	if rot.Step != "" || rot.Attempts != 1 || rot.RetryAt != t0+2*hour || rot.LastError == "" {
		t.Fatalf("after a failure: %+v", rot)
	}
	assertStages(t, h, arn, map[string]L{"v1": {cur}, "t1": {pend}})

	res := h.ok(fsm.CmdCancelRotation, &fsm.CancelRotation{ARN: arn, Date: t0 + 3*hour})
	if res.VersionID != "t1" {
		t.Fatalf("cancel answered %+v", res)
	}
	rot = h.secret(arn).Rotation
	if rot.Enabled || rot.Token != "" || rot.NextDate != 0 || rot.Rotator != testRotatorARN || rot.AfterDays != 30 {
		t.Fatalf("after cancel: %+v", rot)
	}
	// Labels stay: the placeholder keeps AWSPENDING, which blocks a new
	// token as AWS does, until the scheduler reattempts it.
	assertStages(t, h, arn, map[string]L{"v1": {cur}, "t1": {pend}})
	h.fail(fsm.CmdRotateSecret, rotateCmd(arn, "t2", t0+4*hour), apierr.InvalidRequest, apierr.MsgRotationInProgress)
	h.ok(fsm.CmdRotateSecret, rotateCmd(arn, "t1", t0+4*hour))
}

func TestRotation_Refusals(t *testing.T) {
	h, arn := rotationHarness(t)
	unknown := rotateCmd(arn, "t1", t0)
	unknown.Config.Rotator = "arn:aws:lambda:us-west-2:123456789012:function:nope"
	h.fail(fsm.CmdRotateSecret, unknown, apierr.AccessDenied, apierr.MsgCannotInvoke)
	h.fail(fsm.CmdCancelRotation, &fsm.CancelRotation{ARN: arn, Date: t0}, apierr.InvalidRequest, apierr.MsgCancelRotateNothing)

	empty := arnOf("empty", "eeeeee")
	h.ok(fsm.CmdCreateSecret, createCmd("empty", "eeeeee", nil, t0))
	h.fail(fsm.CmdRotateSecret, rotateCmd(empty, "t1", t0), apierr.InvalidRequest, apierr.MsgRotateNoValue)

	// The scheduler's start of a window that is no longer the next.
	h.ok(fsm.CmdRotateSecret, &fsm.RotateSecret{ARN: arn, Config: &fsm.RotationConfig{Rotator: testRotatorARN, Rules: true, AfterDays: 1},
		NextStart: t0 + day, NextDate: t0 + 2*day, Date: t0})
	wantErr(t, h.apply(fsm.CmdRotateSecret, &fsm.RotateSecret{ARN: arn, Start: true, Token: "s1", Scheduled: true, Window: t0 + 5*day, Date: t0 + day}),
		apierr.InvalidRequest, "Nothing changed: the scheduled rotation is no longer due.")
	h.ok(fsm.CmdRotateSecret, &fsm.RotateSecret{ARN: arn, Start: true, Token: "s1", Scheduled: true, Window: t0 + day, Date: t0 + day})

	// A rotator in use cannot be deleted.
	h.fail(fsm.CmdDeleteRotator, &fsm.DeleteRotator{ARN: testRotatorARN}, apierr.InvalidRequest,
		"Rotator pg rotates 1 secret(s) (db first): cancel their rotation (CancelRotateSecret) or point them at another rotator before deleting it.")
	h.ok(fsm.CmdCancelRotation, &fsm.CancelRotation{ARN: arn, Date: t0 + day})
	h.ok(fsm.CmdDeleteRotator, &fsm.DeleteRotator{ARN: testRotatorARN})
	h.fail(fsm.CmdPutRotator, &fsm.PutRotator{Rotator: fsm.Rotator{ARN: testRotatorARN, Name: "pg", Type: "mysql"}, Replace: true},
		apierr.ResourceNotFound, "Coffer can't find a rotator named pg.")
}

// The rotation and the rotators survive a snapshot and a replay.
func TestRotation_SnapshotAndReplay(t *testing.T) {
	h, arn := rotationHarness(t)
	h.ok(fsm.CmdRotateSecret, rotateCmd(arn, "t1", t0+hour))
	want := digestOf(t, h.f)
	if got := digestOf(t, h.replay()); got != want {
		t.Fatalf("replay digest %s, want %s", got, want)
	}
	restored := fsm.New(nil)
	if err := restored.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, h.f)))); err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, restored); got != want {
		t.Fatalf("restored digest %s, want %s", got, want)
	}
	txn, _ := restored.ReadTxn()
	if r, err := fsm.RotatorByName(txn, "pg"); err != nil || r == nil || r.ARN != testRotatorARN {
		t.Fatalf("restored rotator %+v, %v", r, err)
	}
	if s, err := fsm.RotatingSecrets(txn); err != nil || len(s) != 1 || s[0].Rotation.Token != "t1" {
		t.Fatalf("restored rotating secrets %v, %v", s, err)
	}
}

// What a replica region gets of a primary's rotation: the configuration
// and dates, not the rotation in flight, the rotator in its own region.
func TestRotation_ShippedToAReplica(t *testing.T) {
	rot := &fsm.Rotation{Enabled: true, Rotator: testRotatorARN, AfterDays: 7, External: []fsm.Tag{{Key: "k", Value: "v"}},
		LastRotatedDate: t0, NextStart: t0 + 7*day, NextDate: t0 + 8*day,
		Token: "t1", Step: "setSecret", Attempts: 2, LastError: "refused", RetryAt: t0 + hour}
	got := rot.Shipped().InRegion("eu-west-1")
	want := &fsm.Rotation{Enabled: true, Rotator: "arn:aws:lambda:eu-west-1:" + testAccount + ":function:pg", AfterDays: 7,
		External: []fsm.Tag{{Key: "k", Value: "v"}}, LastRotatedDate: t0, NextStart: t0 + 7*day, NextDate: t0 + 8*day}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("shipped %+v\nwant    %+v", got, want)
	}
	if rot.Rotator != testRotatorARN || rot.Token != "t1" {
		t.Fatalf("the primary's rotation changed: %+v", rot)
	}
	var none *fsm.Rotation
	if none.Shipped() != nil || none.InRegion("eu-west-1") != nil {
		t.Fatal("nil ships as nil")
	}
}
