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

// Tests of the fencing model of replication (apply_replication.go):
// every secret has an Epoch that a promotion raises; ApplyReplicated
// applies, refuses (ReplFailed), or fences (ReplFenced) a shipment by its
// epoch; AckReplication of a fenced outcome turns the old primary into a
// replica (Reconcile); PromoteRegion and DemoteRegion move the primary of a
// whole region; a superseded primary keeps what only it had as conflict
// versions (Version.Conflict, the Conflicts query). The helpers of
// replication_test.go (shipped, replicate, wantOutcomes, wantTarget, …)
// are reused; the ones here build regions other than the harness's and
// ship one FSM's state to another as the shipper would.

// regionA is a region of the failover stories besides testRegion (us-west-2).
const regionA = "us-east-1"

// regionHarness is a harness for a bootstrapped region called name: its
// region record names it in conflicts, refusals and PromoteRegion.
func regionHarness(t *testing.T, name string) *harness {
	t.Helper()
	switch name {
	case testRegion:
		h := newHarness(t)
		resetTestRegion(h)
		return h
	case replRegion:
		return replicaRegion(t)
	}
	h := newHarness(t)
	h.ok(fsm.CmdInitRegion, &fsm.InitRegion{Region: name, AccountID: testAccount, KEKID: "kek-1",
		RootKey: fsm.AccessKey{AccessKeyID: "AKIAOTHERREGION", Identity: "root", SealedSecret: []byte{1}, CreatedDate: t0}, Date: t0})
	return h
}

// shipOf is what region from's shipper sends region to for src's secret
// arn (replication/shipper.go, export): its state as of its ModifyIndex, at
// its epoch, with its region and replica regions, every value included
// (data keys as they are: the FSM never unwraps them), conflict marks too.
func shipOf(t *testing.T, src *harness, from, to, arn string) fsm.ReplicatedSecret {
	t.Helper()
	s := src.secret(arn)
	rs := fsm.ReplicatedSecret{ARN: strings.Replace(s.ARN, ":"+from+":", ":"+to+":", 1), PrimaryARN: s.ARN, Name: s.Name,
		Description: s.Description, Tags: slices.Clone(s.Tags), TagsEverSet: s.TagsEverSet,
		CreatedDate: s.CreatedDate, LastChangedDate: s.LastChangedDate, DeletedDate: s.DeletedDate, DeletionDate: s.DeletionDate,
		Type: s.Type, ResourcePolicy: s.ResourcePolicy, SourceIndex: s.ModifyIndex, Epoch: s.Epoch,
		Regions: []fsm.Replica{{Region: from, KmsKeyID: s.KmsKeyID}}}
	if r := s.Replica(to); r != nil {
		rs.KmsKeyID, rs.Force = r.KmsKeyID, r.Force
	}
	for _, r := range s.Replicas {
		rs.Regions = append(rs.Regions, fsm.Replica{Region: r.Region, KmsKeyID: r.KmsKeyID})
	}
	for _, v := range s.Versions {
		rv := fsm.ReplicatedVersion{VersionID: v.VersionID, Stages: slices.Clone(v.Stages), CreatedDate: v.CreatedDate,
			Binary: v.Binary, PrimaryARN: v.AADARN(s), Placeholder: !v.HasValue(), Conflict: v.Conflict}
		if v.HasValue() {
			val := v.Value
			rv.Value, rv.Digest = &val, slices.Clone(v.Digest)
		}
		rs.Versions = append(rs.Versions, rv)
	}
	return rs
}

// deliver ships src's secret arn from region from to dst (region to) and
// returns the outcomes; the shipment brings dst to src's index.
func deliver(t *testing.T, src, dst *harness, from, to, arn string, date int64) []fsm.ReplOutcome {
	t.Helper()
	return dst.replicate(&fsm.ApplyReplicated{Source: from, Secrets: []fsm.ReplicatedSecret{shipOf(t, src, from, to, arn)},
		Next: src.index(), Date: date})
}

// offer is deliver without a Next (no ReplSource to record), for a
// shipment that must change nothing.
func offer(t *testing.T, src, dst *harness, from, to, arn string, date int64) []fsm.ReplOutcome {
	t.Helper()
	return dst.replicate(&fsm.ApplyReplicated{Source: from, Secrets: []fsm.ReplicatedSecret{shipOf(t, src, from, to, arn)}, Date: date})
}

// fromRegion makes a shipped() secret (testRegion's) one of region src's,
// at epoch: its PrimaryARN and its versions' name src.
func fromRegion(rs fsm.ReplicatedSecret, src string, epoch uint64) fsm.ReplicatedSecret {
	rs.Epoch = epoch
	if src != testRegion {
		rs.PrimaryARN = strings.Replace(rs.PrimaryARN, ":"+testRegion+":", ":"+src+":", 1)
		rs.Versions = slices.Clone(rs.Versions)
		for i := range rs.Versions {
			rs.Versions[i].PrimaryARN = rs.PrimaryARN
		}
	}
	return rs
}

// conflictsOf lists the Conflicts query's answer.
func conflictsOf(h *harness) []fsm.ConflictVersion { return fsm.Conflicts(h.txn()) }

// wantConflict checks that version id of s is a conflict: unlabeled, with
// exactly this mark, and still its value (and the ARN its AAD binds).
func wantConflict(t *testing.T, s *fsm.Secret, id string, want fsm.Conflict, value *fsm.Version, aadARN string) {
	t.Helper()
	v := s.Version(id)
	if v == nil {
		t.Fatalf("%s: no version %s (versions %q); want it kept as a conflict", s.ARN, id, versionIDs(s))
	}
	if v.Conflict == nil || *v.Conflict != want {
		t.Fatalf("%s %s: Conflict %+v, want %+v", s.ARN, id, v.Conflict, want)
	}
	if len(v.Stages) != 0 {
		t.Fatalf("%s %s: a conflict version with labels %q", s.ARN, id, v.Stages)
	}
	if value != nil && (!reflect.DeepEqual(v.Value, value.Value) || !bytes.Equal(v.Digest, value.Digest) ||
		v.CreatedDate != value.CreatedDate || v.Index != value.Index || v.Binary != value.Binary) {
		t.Fatalf("%s %s: conflict %+v, want the value of %+v", s.ARN, id, v, value)
	}
	if v.AADARN(s) != aadARN {
		t.Fatalf("%s %s: AAD ARN %q, want %q (the value must still decrypt)", s.ARN, id, v.AADARN(s), aadARN)
	}
}

// sameSecret is reflect.DeepEqual with nil and empty lists alike (a
// clone of a secret without versions has an empty list).
func sameSecret(a, b *fsm.Secret) bool {
	norm := func(s *fsm.Secret) *fsm.Secret {
		c := *s
		if len(c.Tags) == 0 {
			c.Tags = nil
		}
		if len(c.Replicas) == 0 {
			c.Replicas = nil
		}
		if len(c.PrimaryReplicas) == 0 {
			c.PrimaryReplicas = nil
		}
		c.Versions = nil
		for _, v := range s.Versions {
			vc := *v
			if len(vc.Stages) == 0 {
				vc.Stages = nil
			}
			c.Versions = append(c.Versions, &vc)
		}
		return &c
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// noConflicts checks that no version of s is a conflict.
func noConflicts(t *testing.T, s *fsm.Secret) {
	t.Helper()
	for _, v := range s.Versions {
		if v.Conflict != nil {
			t.Fatalf("%s: version %s is a conflict %+v, want none", s.ARN, v.VersionID, *v.Conflict)
		}
	}
}

// The refusals of a client change: each command, on the secret arn.
func clientWrites(arn string, date int64) []struct {
	name string
	ct   fsm.CommandType
	cmd  any
} {
	return []struct {
		name string
		ct   fsm.CommandType
		cmd  any
	}{
		{"PutSecretValue", fsm.CmdPutSecretValue, putCmd(arn, "w9", nil, date)},
		{"UpdateSecret metadata", fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: arn, Description: sp("x"), Date: date}},
		{"UpdateSecret value", fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: arn, Version: strVersionPtr("w9", "y"), Date: date}},
		{"TagResource", fsm.CmdTagResource, &fsm.TagResource{ARN: arn, Tags: []fsm.Tag{{Key: "k", Value: "v"}}, Date: date}},
		{"UntagResource", fsm.CmdUntagResource, &fsm.UntagResource{ARN: arn, Keys: []string{"team"}, Date: date}},
		{"DeleteSecret scheduled", fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, DeletionDate: date + 7*day, Date: date}},
		{"DeleteSecret forced", fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, Force: true, Date: date}},
		{"RestoreSecret", fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: arn, Date: date}},
		{"PutResourcePolicy", fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: arn, Policy: "{}", Date: date}},
		{"DeleteResourcePolicy", fsm.CmdDeleteResourcePolicy, &fsm.DeleteResourcePolicy{ARN: arn, Date: date}},
		{"UpdateSecretVersionStage", fsm.CmdUpdateSecretVersionStage, stageCmd(arn, "custom", "", "v1", date)},
		{"SetReplication adding", fsm.CmdSetReplication, &fsm.SetReplication{ARN: arn, Add: []fsm.Replica{{Region: "sa-east-1"}}, Date: date}},
		{"SetReplication removing", fsm.CmdSetReplication, &fsm.SetReplication{ARN: arn, Remove: []string{"sa-east-1", testRegion, regionA}, Date: date}},
	}
}

// wantWritesRefused checks that every client change of arn is refused
// with code and msg and changes nothing.
func wantWritesRefused(t *testing.T, h *harness, arn string, date int64, code, msg string) {
	t.Helper()
	for _, tc := range clientWrites(arn, date) {
		t.Run(tc.name, func(t *testing.T) {
			saved := h.t
			h.t = t
			defer func() { h.t = saved }()
			h.fail(tc.ct, tc.cmd, code, msg)
		})
	}
}

// ---------------------------------------------------------------------
// A failover and a fail-back, with two FSMs standing for regions
// us-east-1 (A, the first primary) and us-west-2 (B).

func TestPromotion_FailoverStory(t *testing.T) {
	a, b := regionHarness(t, regionA), regionHarness(t, testRegion)
	arnA, arnB := regionARN(regionA, "db", "abcdef"), arnOf("db", "abcdef")

	// A's secret, replicated to B.
	a.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnA, Name: "db", KmsKeyID: "alias/a", Version: strVersionPtr("v1", "one"),
		Tags: []fsm.Tag{{Key: "team", Value: "ops"}}, Date: t0, Replicas: []fsm.Replica{{Region: testRegion, KmsKeyID: "alias/b"}}})
	a.ok(fsm.CmdPutSecretValue, putCmd(arnA, "v2", nil, t0+hour))
	wantOutcomes(t, deliver(t, a, b, regionA, testRegion, arnA, t0+2*hour), fsm.ReplOutcome{ARN: arnA, Status: fsm.ReplApplied})
	rb := b.secret(arnB)
	if rb.PrimaryRegion != regionA || rb.Epoch != 0 || rb.SourceIndex != a.modifyIndex(arnA) || rb.KmsKeyID != "alias/b" ||
		!reflect.DeepEqual(rb.PrimaryReplicas, []fsm.Replica{{Region: regionA, KmsKeyID: "alias/a"}, {Region: testRegion, KmsKeyID: "alias/b"}}) {
		t.Fatalf("B's replica: PrimaryRegion %q, Epoch %d, SourceIndex %d (want %d), KmsKeyID %q, PrimaryReplicas %+v",
			rb.PrimaryRegion, rb.Epoch, rb.SourceIndex, a.modifyIndex(arnA), rb.KmsKeyID, rb.PrimaryReplicas)
	}
	a.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: testRegion, Index: a.index(), Date: t0 + 2*hour})
	aTarget := *fsm.ReplTargetOf(a.txn(), testRegion)

	// A acknowledges v3 to its client; it never reaches B (the lag).
	a.ok(fsm.CmdPutSecretValue, putCmd(arnA, "v3", nil, t0+3*hour))
	lost := *a.secret(arnA).Version("v3")

	// A is lost. B is promoted.
	res := b.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{From: regionA, Date: t0 + 4*hour})
	promoted := b.index()
	if res.Count != 1 {
		t.Fatalf("PromoteRegion answered Count %d, want 1", res.Count)
	}
	sb := b.secret(arnB)
	if sb.IsReplica() || sb.Epoch != 1 || sb.SourceIndex != 0 || sb.PrimaryReplicas != nil || sb.Reconcile || sb.Demoted ||
		sb.ModifyIndex != promoted || sb.LastChangedDate != t0+4*hour || sb.CreateIndex != rb.CreateIndex {
		t.Fatalf("B promoted: %+v", sb)
	}
	wantReplicas(t, b, arnB, []fsm.Replica{{Region: regionA, KmsKeyID: "alias/a", AddedIndex: promoted}})
	wantTarget(t, b, regionA, &fsm.ReplTarget{Region: regionA, Acked: promoted - 1})
	if src := sourceOf(b, regionA); src != nil {
		t.Fatalf("B still has a ReplSource for %s: %+v", regionA, src)
	}
	if !b.inFeedAfter(promoted-1, arnB) {
		t.Fatal("the promotion is not in B's change feed: it would never ship")
	}
	// B takes writes.
	b.ok(fsm.CmdPutSecretValue, putCmd(arnB, "v4", nil, t0+5*hour))
	assertStages(t, b, arnB, map[string]L{"v1": nil, "v2": {prev}, "v4": {cur}})

	// A comes back and ships its epoch-0 state to B: fenced, nothing changes.
	out := offer(t, a, b, regionA, testRegion, arnA, t0+6*hour)
	fenced := fsm.ReplOutcome{ARN: arnA, Status: fsm.ReplFenced, Epoch: 1, Primary: testRegion,
		Message: "Replication refused: the secret's primary is in region us-west-2 at epoch 1; the shipment is of epoch 0."}
	wantOutcomes(t, out, fenced)
	b.assertLastChangedNothing()

	// B's state reaches A first: A's secret is superseded. It becomes a
	// replica of B at epoch 1; B's labels win; v3, which only A had, stays
	// as an unlabeled conflict with its value.
	out = deliver(t, b, a, testRegion, regionA, arnB, t0+7*hour)
	superseded := a.index()
	wantOutcomes(t, out, fsm.ReplOutcome{ARN: arnB, Status: fsm.ReplApplied})
	sa := a.secret(arnA)
	if sa.PrimaryRegion != testRegion || sa.Epoch != 1 || sa.SourceIndex != b.modifyIndex(arnB) || sa.Replicas != nil ||
		sa.Reconcile || sa.Demoted || sa.KmsKeyID != "alias/a" || sa.ModifyIndex != superseded || sa.CreateIndex != 2 ||
		!reflect.DeepEqual(sa.PrimaryReplicas, []fsm.Replica{{Region: testRegion, KmsKeyID: "alias/b"}, {Region: regionA, KmsKeyID: "alias/a"}}) {
		t.Fatalf("A superseded: %+v", sa)
	}
	if ids := versionIDs(sa); !slices.Equal(ids, []string{"v1", "v2", "v4", "v3"}) {
		t.Fatalf("A's versions %q, want B's (v1 v2 v4) then the conflict v3", ids)
	}
	assertStages(t, a, arnA, map[string]L{"v1": nil, "v2": {prev}, "v4": {cur}, "v3": nil})
	v3mark := fsm.Conflict{Region: regionA, Epoch: 0, Date: t0 + 7*hour}
	wantConflict(t, sa, "v3", v3mark, &lost, arnA)
	for _, id := range []string{"v1", "v2", "v4"} {
		if sa.Version(id).Conflict != nil {
			t.Fatalf("%s is a conflict; only v3 is", id)
		}
	}
	wantConflicts := []fsm.ConflictVersion{{ARN: arnA, Name: "db", VersionID: "v3", CreatedDate: lost.CreatedDate, Conflict: v3mark}}
	if got := conflictsOf(a); !reflect.DeepEqual(got, wantConflicts) {
		t.Fatalf("Conflicts in A\n got %+v\nwant %+v", got, wantConflicts)
	}
	if got := conflictsOf(b); len(got) != 0 {
		t.Fatalf("Conflicts in B: %+v, want none", got)
	}
	if src := sourceOf(a, testRegion); src == nil || src.Applied != b.index() {
		t.Fatalf("A's ReplSource for B %+v, want Applied %d", src, b.index())
	}
	wantWritesRefused(t, a, arnA, t0+7*hour, apierr.InvalidParameter, apierr.MsgReplicaWrite)

	// The fenced answer to A's own shipment arrives late: the secret is
	// a replica already, the answer changes nothing.
	a.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: testRegion, Outcomes: []fsm.ReplOutcome{fenced}, Date: t0 + 7*hour})
	a.assertLastChangedNothing()

	// B moves on; its next state lacks v3 still, which A keeps, marked as
	// it was when found.
	b.ok(fsm.CmdPutSecretValue, putCmd(arnB, "v5", nil, t0+8*hour))
	wantOutcomes(t, deliver(t, b, a, testRegion, regionA, arnB, t0+9*hour), fsm.ReplOutcome{ARN: arnB, Status: fsm.ReplApplied})
	sa = a.secret(arnA)
	if ids := versionIDs(sa); !slices.Equal(ids, []string{"v1", "v2", "v4", "v5", "v3"}) {
		t.Fatalf("A's versions %q after B's next state", ids)
	}
	assertStages(t, a, arnA, map[string]L{"v1": nil, "v2": nil, "v4": {prev}, "v5": {cur}, "v3": nil})
	wantConflict(t, sa, "v3", v3mark, &lost, arnA)

	// Fail-back, planned: B is demoted (read-only, still a primary that
	// ships, ModifyIndex unchanged: nothing new to ship).
	modB := b.modifyIndex(arnB)
	if res := b.ok(fsm.CmdDemoteRegion, &fsm.DemoteRegion{Date: t0 + 10*hour}); res.Count != 1 {
		t.Fatalf("DemoteRegion answered Count %d, want 1", res.Count)
	}
	if s := b.secret(arnB); !s.Demoted || s.ModifyIndex != modB || s.IsReplica() || s.Replica(regionA) == nil {
		t.Fatalf("B demoted: Demoted %v, ModifyIndex %d (want %d), Replicas %+v", s.Demoted, s.ModifyIndex, modB, s.Replicas)
	}
	b.fail(fsm.CmdPutSecretValue, putCmd(arnB, "v6", nil, t0+10*hour), apierr.InvalidRequest, apierr.MsgDemotedWrite)
	// A has everything already: the same state again is a duplicate.
	wantOutcomes(t, offer(t, b, a, testRegion, regionA, arnB, t0+10*hour), fsm.ReplOutcome{ARN: arnB, Status: fsm.ReplApplied})
	a.assertLastChangedNothing()

	// A is promoted: epoch 2, replicating to B again through the target it
	// kept; its conflict stays.
	res = a.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{Date: t0 + 11*hour})
	back := a.index()
	if res.Count != 1 {
		t.Fatalf("A's PromoteRegion answered Count %d, want 1", res.Count)
	}
	sa = a.secret(arnA)
	if sa.IsReplica() || sa.Epoch != 2 || sa.PrimaryReplicas != nil || sa.ModifyIndex != back || sa.SourceIndex != 0 {
		t.Fatalf("A promoted back: %+v", sa)
	}
	wantReplicas(t, a, arnA, []fsm.Replica{{Region: testRegion, KmsKeyID: "alias/b", AddedIndex: back}})
	wantTarget(t, a, testRegion, &aTarget)
	if src := sourceOf(a, testRegion); src != nil {
		t.Fatalf("A still has a ReplSource for B: %+v", src)
	}
	wantConflict(t, sa, "v3", v3mark, &lost, arnA)
	a.ok(fsm.CmdPutSecretValue, putCmd(arnA, "v6", nil, t0+12*hour))

	// B, shipped A's epoch-2 state, is superseded: it had nothing A lacks,
	// so it finds no conflict of its own; A's conflict mark travels with v3.
	out = deliver(t, a, b, regionA, testRegion, arnA, t0+13*hour)
	wantOutcomes(t, out, fsm.ReplOutcome{ARN: arnA, Status: fsm.ReplApplied})
	sb = b.secret(arnB)
	if sb.PrimaryRegion != regionA || sb.Epoch != 2 || sb.Demoted || sb.Replicas != nil || sb.Reconcile ||
		sb.SourceIndex != a.modifyIndex(arnA) || sb.KmsKeyID != "alias/b" {
		t.Fatalf("B superseded: %+v", sb)
	}
	if ids := versionIDs(sb); !slices.Equal(ids, versionIDs(a.secret(arnA))) {
		t.Fatalf("B's versions %q, want A's %q", ids, versionIDs(a.secret(arnA)))
	}
	assertStages(t, b, arnB, map[string]L{"v1": nil, "v2": nil, "v4": nil, "v5": {prev}, "v6": {cur}, "v3": nil})
	for _, v := range sb.Versions {
		if v.Conflict != nil && v.Conflict.Region == testRegion {
			t.Fatalf("B kept %s as a conflict of its own %+v; it had nothing A lacks", v.VersionID, *v.Conflict)
		}
	}
	wantConflict(t, sb, "v3", v3mark, nil, arnA)
	wantWritesRefused(t, b, arnB, t0+13*hour, apierr.InvalidParameter, apierr.MsgReplicaWrite)
	if src := sourceOf(b, regionA); src == nil || src.Applied != a.index() {
		t.Fatalf("B's ReplSource for A %+v, want Applied %d", src, a.index())
	}

	// Back to normal: A's next change applies in B (same epoch, newer).
	a.ok(fsm.CmdTagResource, &fsm.TagResource{ARN: arnA, Tags: []fsm.Tag{{Key: "env", Value: "prod"}}, Date: t0 + 14*hour})
	wantOutcomes(t, deliver(t, a, b, regionA, testRegion, arnA, t0+15*hour), fsm.ReplOutcome{ARN: arnA, Status: fsm.ReplApplied})
	if s := b.secret(arnB); len(s.Tags) != 2 || s.SourceIndex != a.modifyIndex(arnA) || s.Epoch != 2 {
		t.Fatalf("B after A's tag: tags %+v, SourceIndex %d, Epoch %d", s.Tags, s.SourceIndex, s.Epoch)
	}

	// The operator dismisses the conflict in A, the primary: v3 is gone
	// there, and the change ships; B keeps its own copy (every region
	// keeps its conflicts until dismissed there), then dismisses it too.
	a.fail(fsm.CmdDismissConflict, &fsm.DismissConflict{ARN: arnA, VersionID: "v4", Date: t0 + 16*hour},
		apierr.InvalidRequest, "Version v4 of db is not a conflict version: only the versions coffer region conflicts lists can be dismissed.")
	a.fail(fsm.CmdDismissConflict, &fsm.DismissConflict{ARN: arnA, VersionID: "v9", Date: t0 + 16*hour},
		apierr.ResourceNotFound, "Secrets Manager can't find the specified secret version: db has no version v9.")
	a.fail(fsm.CmdDismissConflict, &fsm.DismissConflict{ARN: arnA + "x", VersionID: "v3", Date: t0 + 16*hour},
		apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	if res := a.ok(fsm.CmdDismissConflict, &fsm.DismissConflict{ARN: arnA, VersionID: "v3", Date: t0 + 16*hour}); res.VersionID != "v3" || res.Name != "db" {
		t.Fatalf("DismissConflict answered %+v", res)
	}
	if sa = a.secret(arnA); sa.Version("v3") != nil || sa.ModifyIndex != a.index() || len(conflictsOf(a)) != 0 {
		t.Fatalf("A after the dismissal: versions %q, ModifyIndex %d (index %d), conflicts %+v", versionIDs(sa), sa.ModifyIndex, a.index(), conflictsOf(a))
	}
	wantOutcomes(t, deliver(t, a, b, regionA, testRegion, arnA, t0+17*hour), fsm.ReplOutcome{ARN: arnA, Status: fsm.ReplApplied})
	wantConflict(t, b.secret(arnB), "v3", v3mark, nil, arnA)
	b.ok(fsm.CmdDismissConflict, &fsm.DismissConflict{ARN: arnB, VersionID: "v3", Date: t0 + 18*hour})
	if ids := versionIDs(b.secret(arnB)); !slices.Equal(ids, versionIDs(a.secret(arnA))) || len(conflictsOf(b)) != 0 {
		t.Fatalf("B after its dismissal: %q, want A's %q; conflicts %+v", ids, versionIDs(a.secret(arnA)), conflictsOf(b))
	}
}

// ---------------------------------------------------------------------
// AckReplication of a fenced outcome: the old primary learns it was
// superseded before the new primary's state reaches it.

func TestPromotion_FencedAck(t *testing.T) {
	a, b := regionHarness(t, regionA), regionHarness(t, testRegion)
	arnA, arnB := regionARN(regionA, "db", "abcdef"), arnOf("db", "abcdef")
	a.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnA, Name: "db", KmsKeyID: "alias/a", Version: strVersionPtr("v1", "one"), Date: t0,
		Replicas: []fsm.Replica{{Region: testRegion, KmsKeyID: "alias/b"}, {Region: replRegion2, Force: true}}})
	created := a.index()
	deliver(t, a, b, regionA, testRegion, arnA, t0+hour)
	// Another secret replicates to eu-west-1 only.
	other := regionARN(regionA, "other", "oooooo")
	a.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: other, Name: "other", Date: t0, Replicas: []fsm.Replica{{Region: replRegion}}})
	// v2 is acknowledged in A only; then A demotes (a planned move that
	// the fault overtook).
	a.ok(fsm.CmdPutSecretValue, putCmd(arnA, "v2", nil, t0+2*hour))
	lost := *a.secret(arnA).Version("v2")
	a.ok(fsm.CmdDemoteRegion, &fsm.DemoteRegion{Date: t0 + 2*hour})
	before := a.secret(arnA)
	if !before.Demoted {
		t.Fatal("A's secret is not demoted")
	}

	// B is promoted and writes.
	b.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{Date: t0 + 3*hour})
	b.ok(fsm.CmdPutSecretValue, putCmd(arnB, "vb", nil, t0+4*hour))
	wantReplicas(t, b, arnB, []fsm.Replica{{Region: regionA, KmsKeyID: "alias/a", AddedIndex: b.index() - 1},
		{Region: replRegion2, AddedIndex: b.index() - 1}})

	// Answers that change nothing.
	for _, tc := range []struct {
		name string
		ack  *fsm.AckReplication
	}{
		{"a fenced outcome at the secret's epoch", &fsm.AckReplication{Region: testRegion, Date: t0 + 5*hour,
			Outcomes: []fsm.ReplOutcome{{ARN: arnA, Status: fsm.ReplFenced, Epoch: 0, Primary: testRegion}}}},
		{"a fenced outcome from a region the secret does not replicate to", &fsm.AckReplication{Region: replRegion, Date: t0 + 5*hour,
			Outcomes: []fsm.ReplOutcome{{ARN: arnA, Status: fsm.ReplFenced, Epoch: 5, Primary: replRegion}}}},
		{"a fenced outcome for an absent secret", &fsm.AckReplication{Region: testRegion, Date: t0 + 5*hour,
			Outcomes: []fsm.ReplOutcome{{ARN: regionARN(regionA, "absent", "zzzzzz"), Status: fsm.ReplFenced, Epoch: 5, Primary: testRegion}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.t = t
			a.ok(fsm.CmdAckReplication, tc.ack)
			a.assertLastChangedNothing()
		})
	}
	a.t = t

	// ap-south-1, a replica of B's by now, answered A's shipment: fenced at
	// epoch 1 with B the primary. A's secret turns into a replica of B
	// (the outcome's Primary, not the region that answered).
	fenced := fsm.ReplOutcome{ARN: arnA, Status: fsm.ReplFenced, Epoch: 1, Primary: testRegion, Message: "m"}
	a.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion2, Outcomes: []fsm.ReplOutcome{fenced}, Date: t0 + 6*hour})
	acked := a.index()
	s := a.secret(arnA)
	wantPrimaryReplicas := append(slices.Clone(before.Replicas), fsm.Replica{Region: regionA, KmsKeyID: "alias/a"})
	if s.PrimaryRegion != testRegion || s.Replicas != nil || s.SourceIndex != 0 || !s.Reconcile || s.Demoted || s.Epoch != 1 || s.ReconcileEpoch != 0 ||
		s.ModifyIndex != acked || s.CreateIndex != created || !reflect.DeepEqual(s.PrimaryReplicas, wantPrimaryReplicas) ||
		!reflect.DeepEqual(s.Versions, before.Versions) {
		t.Fatalf("A after the fenced answer:\n%+v\nwant a replica of %s, Reconcile, Epoch 0, ModifyIndex %d, PrimaryReplicas %+v",
			s, testRegion, acked, wantPrimaryReplicas)
	}
	if !a.inFeedAfter(acked-1, arnA) {
		t.Fatal("the change to a replica is not in the feed")
	}
	if got := fsm.SecretsReplicatedTo(a.txn(), testRegion); len(got) != 0 {
		t.Fatalf("A still ships %d secrets to B", len(got))
	}
	wantWritesRefused(t, a, arnA, t0+6*hour, apierr.InvalidParameter, apierr.MsgReplicaWrite)
	// The same answer again: A's secret is a replica, nothing changes.
	a.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: testRegion, Outcomes: []fsm.ReplOutcome{fenced}, Date: t0 + 6*hour})
	a.assertLastChangedNothing()

	// B's first state lacks a value A does not have: nothing changes, and
	// A is still to reconcile.
	needs := shipOf(t, b, testRegion, regionA, arnB)
	for i := range needs.Versions {
		needs.Versions[i].Value, needs.Versions[i].Digest = nil, nil
	}
	out := a.replicate(&fsm.ApplyReplicated{Source: testRegion, Secrets: []fsm.ReplicatedSecret{needs}, Date: t0 + 7*hour})
	wantOutcomes(t, out, fsm.ReplOutcome{ARN: arnB, Status: fsm.ReplNeedValues})
	a.assertLastChangedNothing()

	// With every value: v2, A's alone, stays as a conflict at A's epoch.
	wantOutcomes(t, deliver(t, b, a, testRegion, regionA, arnB, t0+8*hour), fsm.ReplOutcome{ARN: arnB, Status: fsm.ReplApplied})
	s = a.secret(arnA)
	if s.Reconcile || s.Epoch != 1 || s.PrimaryRegion != testRegion || s.SourceIndex != b.modifyIndex(arnB) {
		t.Fatalf("A after B's first state: Reconcile %v, Epoch %d, PrimaryRegion %q, SourceIndex %d", s.Reconcile, s.Epoch, s.PrimaryRegion, s.SourceIndex)
	}
	if ids := versionIDs(s); !slices.Equal(ids, []string{"v1", "vb", "v2"}) {
		t.Fatalf("A's versions %q, want v1 vb and the conflict v2", ids)
	}
	assertStages(t, a, arnA, map[string]L{"v1": {prev}, "vb": {cur}, "v2": nil})
	mark := fsm.Conflict{Region: regionA, Epoch: 0, Date: t0 + 8*hour}
	wantConflict(t, s, "v2", mark, &lost, arnA)

	// Reconcile is over: B's next state keeps the conflict (an earlier
	// one) but no other version only A had.
	b.ok(fsm.CmdPutSecretValue, putCmd(arnB, "vc", nil, t0+9*hour))
	next := shipOf(t, b, testRegion, regionA, arnB)
	next.Versions = slices.DeleteFunc(next.Versions, func(v fsm.ReplicatedVersion) bool { return v.VersionID == "v1" })
	wantOutcomes(t, a.replicate(&fsm.ApplyReplicated{Source: testRegion, Secrets: []fsm.ReplicatedSecret{next}, Date: t0 + 10*hour}),
		fsm.ReplOutcome{ARN: arnB, Status: fsm.ReplApplied})
	s = a.secret(arnA)
	if ids := versionIDs(s); !slices.Equal(ids, []string{"vb", "vc", "v2"}) {
		t.Fatalf("A's versions %q, want vb vc and the conflict v2 (v1, B's, goes)", ids)
	}
	wantConflict(t, s, "v2", mark, &lost, arnA)
}

// A fenced outcome without a Primary names the region that answered.
func TestPromotion_FencedAck_PrimaryDefaultsToTheAnsweringRegion(t *testing.T) {
	h := regionHarness(t, regionA)
	arn := regionARN(regionA, "db", "abcdef")
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: "db", Version: strVersionPtr("v1", "one"), Date: t0,
		Replicas: []fsm.Replica{{Region: testRegion}}})
	h.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: testRegion, Date: t0 + 1,
		Outcomes: []fsm.ReplOutcome{{ARN: arn, Status: fsm.ReplFenced, Epoch: 3}}})
	if s := h.secret(arn); s.PrimaryRegion != testRegion || !s.Reconcile || s.Epoch != 3 {
		t.Fatalf("PrimaryRegion %q, Reconcile %v, Epoch %d; want a replica of %s to reconcile, at epoch 3", s.PrimaryRegion, s.Reconcile, s.Epoch, testRegion)
	}
}

// ---------------------------------------------------------------------
// ApplyReplicated by epoch, in region eu-west-1, for each state the secret
// can be in there.

func TestPromotion_ApplyReplicated_Epochs(t *testing.T) {
	primary := arnOf("db", "abcdef")         // us-west-2's
	local := replicaARN(primary, replRegion) // eu-west-1's
	const date = t0 + 10*day

	// The local states. Each has version "mine" with a value, which no
	// shipment below has.
	type setup func(h *harness)
	replicaOf := func(src string, epoch uint64, sourceIndex uint64) setup {
		return func(h *harness) {
			rs := fromRegion(shipped("db", "abcdef", sourceIndex, replValue("mine", 1, cur), replPlaceholder("pend", 2, pend)), src, epoch)
			rs.Regions = []fsm.Replica{{Region: src}, {Region: replRegion}}
			h.replicate(&fsm.ApplyReplicated{Source: src, Secrets: []fsm.ReplicatedSecret{rs}, Date: t0})
		}
	}
	// A primary here at epoch 0 with a replica in us-west-2.
	createdHere := func(h *harness) {
		h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: local, Name: "db", Version: strVersionPtr("mine", "x"), Date: t0,
			Replicas: []fsm.Replica{{Region: testRegion}}})
	}
	// A primary here at epoch 2, promoted over us-west-2 (its replica).
	promotedHere := func(h *harness) {
		replicaOf(testRegion, 1, 40)(h)
		h.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{Date: t0 + 1})
	}
	// A standalone secret at epoch 1 (StopReplicationToReplica).
	standalone := func(h *harness) {
		replicaOf(testRegion, 0, 40)(h)
		h.ok(fsm.CmdPromoteReplica, &fsm.PromoteReplica{ARN: local, Date: t0 + 1})
	}

	const (
		unchanged  = iota // the shipment changes nothing
		applied           // the secret takes the shipment's state, dropping "mine"
		superseded        // the same, keeping "mine" as a conflict
	)
	for _, tc := range []struct {
		name        string
		setup       setup
		source      string
		epoch       uint64
		sourceIndex uint64
		want        fsm.ReplOutcome // ARN filled in
		effect      int
		oldEpoch    uint64 // superseded: the conflict's epoch
	}{
		{"primary, a higher epoch: superseded", createdHere, testRegion, 1, 5, fsm.ReplOutcome{Status: fsm.ReplApplied}, superseded, 0},
		{"primary, a much higher epoch from a region it does not replicate to: a standalone secret, kept", createdHere, replRegion2, 7, 5,
			fsm.ReplOutcome{Status: fsm.ReplPromoted, Message: "The replica was promoted to a standalone secret in its region."}, unchanged, 0},
		{"primary promoted at 2, shipped 3: superseded", promotedHere, testRegion, 3, 5, fsm.ReplOutcome{Status: fsm.ReplApplied}, superseded, 2},
		{"primary replicating to the source, the same epoch: split brain", createdHere, testRegion, 0, 99, fsm.ReplOutcome{Status: fsm.ReplFailed,
			Message: "Replication failed: regions eu-west-1 and us-west-2 both hold the secret as its primary at epoch 0 (two promotions from the same epoch); demote and promote the one to keep (coffer region demote, then coffer region promote) to settle it."},
			unchanged, 0},
		{"promoted primary, the same epoch: split brain", promotedHere, testRegion, 2, 99, fsm.ReplOutcome{Status: fsm.ReplFailed,
			Message: "Replication failed: regions eu-west-1 and us-west-2 both hold the secret as its primary at epoch 2 (two promotions from the same epoch); demote and promote the one to keep (coffer region demote, then coffer region promote) to settle it."},
			unchanged, 0},
		{"promoted primary, a lower epoch from its replica: fenced", promotedHere, testRegion, 1, 99, fsm.ReplOutcome{Status: fsm.ReplFenced,
			Epoch: 2, Primary: replRegion, Message: "Replication refused: the secret's primary is in region eu-west-1 at epoch 2; the shipment is of epoch 1."},
			unchanged, 0},
		{"promoted primary, epoch 0 from its replica: fenced", promotedHere, testRegion, 0, 99, fsm.ReplOutcome{Status: fsm.ReplFenced,
			Epoch: 2, Primary: replRegion, Message: "Replication refused: the secret's primary is in region eu-west-1 at epoch 2; the shipment is of epoch 0."},
			unchanged, 0},
		{"promoted primary, a lower epoch from a region it does not replicate to: promoted", promotedHere, replRegion2, 1, 99,
			fsm.ReplOutcome{Status: fsm.ReplPromoted, Message: "The replica was promoted to a standalone secret in its region."}, unchanged, 0},
		{"standalone, a lower epoch: promoted", standalone, testRegion, 0, 99,
			fsm.ReplOutcome{Status: fsm.ReplPromoted, Message: "The replica was promoted to a standalone secret in its region."}, unchanged, 0},
		{"standalone, the same epoch: promoted", standalone, testRegion, 1, 99,
			fsm.ReplOutcome{Status: fsm.ReplPromoted, Message: "The replica was promoted to a standalone secret in its region."}, unchanged, 0},
		{"replica, a lower epoch: fenced, naming its primary", replicaOf(replRegion2, 1, 40), testRegion, 0, 99, fsm.ReplOutcome{Status: fsm.ReplFenced,
			Epoch: 1, Primary: replRegion2, Message: "Replication refused: the secret's primary is in region ap-south-1 at epoch 1; the shipment is of epoch 0."},
			unchanged, 0},
		{"replica, a lower epoch from its own primary: fenced", replicaOf(testRegion, 3, 40), testRegion, 2, 99, fsm.ReplOutcome{Status: fsm.ReplFenced,
			Epoch: 3, Primary: testRegion, Message: "Replication refused: the secret's primary is in region us-west-2 at epoch 3; the shipment is of epoch 2."},
			unchanged, 0},
		{"replica of another region, the same epoch: failed", replicaOf(replRegion2, 1, 40), testRegion, 1, 99, fsm.ReplOutcome{Status: fsm.ReplFailed,
			Message: "Replication failed: the secret is a replica of region ap-south-1."}, unchanged, 0},
		{"replica of another region, a higher epoch: the primary moved", replicaOf(replRegion2, 1, 40), testRegion, 2, 3,
			fsm.ReplOutcome{Status: fsm.ReplApplied}, applied, 0},
		{"replica, the same epoch and SourceIndex: duplicate", replicaOf(testRegion, 1, 40), testRegion, 1, 40, fsm.ReplOutcome{Status: fsm.ReplApplied}, unchanged, 0},
		{"replica, the same epoch, an older SourceIndex: duplicate", replicaOf(testRegion, 1, 40), testRegion, 1, 39, fsm.ReplOutcome{Status: fsm.ReplApplied}, unchanged, 0},
		{"replica, the same epoch, a newer SourceIndex: applied", replicaOf(testRegion, 1, 40), testRegion, 1, 41, fsm.ReplOutcome{Status: fsm.ReplApplied}, applied, 0},
		{"replica, a higher epoch, an older SourceIndex: applied", replicaOf(testRegion, 1, 40), testRegion, 2, 3, fsm.ReplOutcome{Status: fsm.ReplApplied}, applied, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := replicaRegion(t)
			tc.setup(h)
			before := h.secret(local)
			rs := fromRegion(shipped("db", "abcdef", tc.sourceIndex, replValue("v9", 9, cur), replValue("v8", 8, prev)), tc.source, tc.epoch)
			rs.Regions = []fsm.Replica{{Region: tc.source, KmsKeyID: "alias/src"}, {Region: replRegion, KmsKeyID: "alias/r"}}
			out := h.replicate(&fsm.ApplyReplicated{Source: tc.source, Secrets: []fsm.ReplicatedSecret{rs}, Date: date})
			at := h.index()
			tc.want.ARN = rs.PrimaryARN
			wantOutcomes(t, out, tc.want)
			if tc.effect == unchanged {
				h.assertLastChangedNothing()
				if after := h.secret(local); !reflect.DeepEqual(after, before) {
					t.Fatalf("the secret changed\n got %+v\nwant %+v", after, before)
				}
				return
			}
			s := h.secret(local)
			if s.PrimaryRegion != tc.source || s.Epoch != tc.epoch || s.SourceIndex != tc.sourceIndex || s.Replicas != nil ||
				s.Reconcile || s.Demoted || s.ModifyIndex != at || s.CreateIndex != before.CreateIndex ||
				!reflect.DeepEqual(s.PrimaryReplicas, rs.Regions) {
				t.Fatalf("after the shipment: %+v\nwant a replica of %s at epoch %d, SourceIndex %d, ModifyIndex %d, PrimaryReplicas %+v",
					s, tc.source, tc.epoch, tc.sourceIndex, at, rs.Regions)
			}
			wantVersion(t, s, "v9", replEnv(9), replDigest(9), at, cur)
			wantVersion(t, s, "v8", replEnv(8), replDigest(8), at, prev)
			if tc.effect == applied {
				// A replica keeps nothing of its own: "mine" came from
				// its primary, which dropped it.
				if ids := versionIDs(s); !slices.Equal(ids, []string{"v9", "v8"}) {
					t.Fatalf("versions %q, want v9 v8", ids)
				}
				noConflicts(t, s)
				return
			}
			// Superseded: "mine", acknowledged here, stays; a placeholder
			// (no value) does not.
			if ids := versionIDs(s); !slices.Equal(ids, []string{"v9", "v8", "mine"}) {
				t.Fatalf("versions %q, want v9 v8 and the conflict mine", ids)
			}
			mine := *before.Version("mine")
			wantConflict(t, s, "mine", fsm.Conflict{Region: replRegion, Epoch: tc.oldEpoch, Date: date}, &mine, mine.AADARN(before))
			want := []fsm.ConflictVersion{{ARN: local, Name: "db", VersionID: "mine", CreatedDate: mine.CreatedDate,
				Conflict: fsm.Conflict{Region: replRegion, Epoch: tc.oldEpoch, Date: date}}}
			if got := conflictsOf(h); !reflect.DeepEqual(got, want) {
				t.Fatalf("Conflicts\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// A conflict version a replica holds stays through every later state that
// lacks it, whoever ships it, as it was marked; a state that has it (the
// primary took it back, a conflict shipped) replaces it.
func TestPromotion_ConflictsSurviveLaterShipments(t *testing.T) {
	h := replicaRegion(t)
	local := regionARN(replRegion, "db", "abcdef")
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: local, Name: "db", Version: strVersionPtr("mine", "x"), Date: t0,
		Replicas: []fsm.Replica{{Region: testRegion}}})
	mine := *h.secret(local).Version("mine")
	ship := func(src string, epoch, index uint64, versions ...fsm.ReplicatedVersion) []fsm.ReplOutcome {
		t.Helper()
		rs := fromRegion(shipped("db", "abcdef", index, versions...), src, epoch)
		return h.replicate(&fsm.ApplyReplicated{Source: src, Secrets: []fsm.ReplicatedSecret{rs}, Date: t0 + int64(index)*hour})
	}
	mark := fsm.Conflict{Region: replRegion, Epoch: 0, Date: t0 + 10*hour}
	ship(testRegion, 1, 10, replValue("v1", 1, cur))
	wantConflict(t, h.secret(local), "mine", mark, &mine, local)
	ship(testRegion, 1, 20, replValue("v2", 2, cur))
	ship(replRegion2, 2, 30, replValue("v3", 3, cur)) // the primary moved again
	s := h.secret(local)
	if ids := versionIDs(s); !slices.Equal(ids, []string{"v3", "mine"}) || s.PrimaryRegion != replRegion2 || s.Epoch != 2 {
		t.Fatalf("versions %q, primary %s at %d; want v3 and the conflict mine, of ap-south-1 at 2", ids, s.PrimaryRegion, s.Epoch)
	}
	wantConflict(t, s, "mine", mark, &mine, local)
	// The primary ships the version itself (as a conflict it holds, of
	// another region): the shipment's version wins.
	theirs := fsm.Conflict{Region: testRegion, Epoch: 1, Date: t0}
	v := replValue("mine", 5)
	v.Conflict = &theirs
	ship(replRegion2, 2, 40, replValue("v3", 3, cur), v)
	s = h.secret(local)
	if ids := versionIDs(s); !slices.Equal(ids, []string{"v3", "mine"}) {
		t.Fatalf("versions %q", ids)
	}
	if got := s.Version("mine"); got.Conflict == nil || *got.Conflict != theirs || !reflect.DeepEqual(got.Value, *replEnv(5)) {
		t.Fatalf("mine: %+v, want the shipped version with its mark %+v", got, theirs)
	}
	// Shipped without a mark: no conflict any more.
	ship(replRegion2, 2, 50, replValue("v3", 3, cur), replNoValue("mine", 5))
	noConflicts(t, h.secret(local))
	if got := conflictsOf(h); len(got) != 0 {
		t.Fatalf("Conflicts %+v, want none", got)
	}
}

// A conflict version that a client labeled after its region was promoted
// again loses its labels when the region is superseded once more and the
// new primary's state lacks it: the new primary's labels are the only ones.
func TestPromotion_LabeledConflictSupersededAgain(t *testing.T) {
	h := replicaRegion(t)
	local := regionARN(replRegion, "db", "abcdef")
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: local, Name: "db", Version: strVersionPtr("mine", "x"), Date: t0,
		Replicas: []fsm.Replica{{Region: testRegion}}})
	rs := fromRegion(shipped("db", "abcdef", 10, replValue("v1", 1, cur)), testRegion, 1)
	rs.Regions = []fsm.Replica{{Region: testRegion}, {Region: replRegion}}
	h.replicate(&fsm.ApplyReplicated{Source: testRegion, Secrets: []fsm.ReplicatedSecret{rs}, Date: t0 + hour})
	mark := fsm.Conflict{Region: replRegion, Epoch: 0, Date: t0 + hour}
	// Promoted again (epoch 2), the client makes the conflict current.
	h.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{Date: t0 + 2*hour})
	h.ok(fsm.CmdUpdateSecretVersionStage, stageCmd(local, cur, "v1", "mine", t0+3*hour))
	h.ok(fsm.CmdUpdateSecretVersionStage, stageCmd(local, "custom", "", "mine", t0+3*hour))
	assertStages(t, h, local, map[string]L{"v1": {prev}, "mine": {cur, "custom"}})
	// us-west-2 was promoted over it at epoch 3 meanwhile, without "mine".
	later := fromRegion(shipped("db", "abcdef", 30, replValue("v1", 1, prev), replValue("v7", 7, cur)), testRegion, 3)
	wantOutcomes(t, h.replicate(&fsm.ApplyReplicated{Source: testRegion, Secrets: []fsm.ReplicatedSecret{later}, Date: t0 + 4*hour}),
		fsm.ReplOutcome{ARN: later.PrimaryARN, Status: fsm.ReplApplied})
	s := h.secret(local)
	if ids := versionIDs(s); !slices.Equal(ids, []string{"v1", "v7", "mine"}) {
		t.Fatalf("versions %q", ids)
	}
	assertStages(t, h, local, map[string]L{"v1": {prev}, "v7": {cur}, "mine": nil})
	wantConflict(t, s, "mine", mark, nil, local)
}

// ---------------------------------------------------------------------
// Split brain: two regions hold the secret as its primary at one epoch.

// A region learns it was superseded (a fenced answer) and is promoted
// back before the new primary's state reaches it: both are primaries at
// epoch 1, each replicating to the other. Neither applies the other's
// state; each says why; the answer is recorded as the replica's failure.
func TestPromotion_SplitBrainAtOneEpoch(t *testing.T) {
	a, b := regionHarness(t, regionA), regionHarness(t, testRegion)
	arnA, arnB := regionARN(regionA, "db", "abcdef"), arnOf("db", "abcdef")
	a.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnA, Name: "db", Version: strVersionPtr("v1", "one"), Date: t0,
		Replicas: []fsm.Replica{{Region: testRegion}}})
	deliver(t, a, b, regionA, testRegion, arnA, t0+hour)
	b.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{Date: t0 + 2*hour})
	a.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: testRegion, Date: t0 + 3*hour,
		Outcomes: []fsm.ReplOutcome{{ARN: arnA, Status: fsm.ReplFenced, Epoch: 1, Primary: testRegion}}})
	if s := a.secret(arnA); !s.Reconcile || s.Epoch != 1 || s.ReconcileEpoch != 0 {
		t.Fatalf("A after the fenced answer: Reconcile %v, Epoch %d", s.Reconcile, s.Epoch)
	}
	// The fail-back order of the runbook, with A promoted before B's
	// state reached it: A knows epoch 1, so it promotes to 2 and wins.
	b.ok(fsm.CmdDemoteRegion, &fsm.DemoteRegion{Date: t0 + 3*hour})
	if res := a.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{From: testRegion, Date: t0 + 4*hour}); res.Count != 1 {
		t.Fatalf("A's PromoteRegion answered Count %d", res.Count)
	}
	if sa := a.secret(arnA); sa.Epoch != 2 || sa.IsReplica() {
		t.Fatalf("A promoted: Epoch %d, PrimaryRegion %q", sa.Epoch, sa.PrimaryRegion)
	}
	out := offer(t, a, b, regionA, testRegion, arnA, t0+5*hour)
	wantOutcomes(t, out, fsm.ReplOutcome{ARN: arnA, Status: fsm.ReplApplied})
	if sb := b.secret(arnB); sb.PrimaryRegion != regionA || sb.Epoch != 2 {
		t.Fatalf("B after A's epoch-2 state: PrimaryRegion %q, Epoch %d", sb.PrimaryRegion, sb.Epoch)
	}
}

// ---------------------------------------------------------------------
// DemoteRegion, and PromoteRegion undoing it.

func TestPromotion_DemoteRegion(t *testing.T) {
	h := regionHarness(t, testRegion)
	a, b, c := arnOf("a", "aaaaaa"), arnOf("b", "bbbbbb"), arnOf("c", "cccccc")
	ca := createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0)
	ca.Tags, ca.Replicas = []fsm.Tag{{Key: "team", Value: "ops"}}, []fsm.Replica{{Region: replRegion}}
	h.ok(fsm.CmdCreateSecret, ca)
	h.ok(fsm.CmdPutSecretValue, putCmd(a, "v2", nil, t0+1))
	h.ok(fsm.CmdCreateSecret, createCmd("b", "bbbbbb", strVersionPtr("v1", "y"), t0+2)) // not replicated
	cc := createCmd("c", "cccccc", nil, t0+3)
	cc.Replicas = []fsm.Replica{{Region: replRegion2}, {Region: replRegion}}
	h.ok(fsm.CmdCreateSecret, cc)
	// A replica here, of ap-south-1's secret r.
	r := fromRegion(shipped("r", "rrrrrr", 5, replValue("v1", 1, cur)), replRegion2, 0)
	r.ARN = arnOf("r", "rrrrrr")
	h.replicate(&fsm.ApplyReplicated{Source: replRegion2, Secrets: []fsm.ReplicatedSecret{r}, Next: 6, Date: t0 + 4})
	before := map[string]*fsm.Secret{a: h.secret(a), b: h.secret(b), c: h.secret(c), r.ARN: h.secret(r.ARN)}

	res := h.ok(fsm.CmdDemoteRegion, &fsm.DemoteRegion{Date: t0 + hour})
	demoted := h.index()
	if res.Count != 2 {
		t.Fatalf("DemoteRegion answered Count %d, want 2 (a and c)", res.Count)
	}
	for arn, want := range map[string]bool{a: true, c: true, b: false, r.ARN: false} {
		s := h.secret(arn)
		if s.Demoted != want {
			t.Fatalf("%s: Demoted %v, want %v", arn, s.Demoted, want)
		}
		// Not a change of what replicas hold: the secret is as it was
		// but for the flag, ModifyIndex and LastChangedDate included.
		got := *s
		got.Demoted = false
		if !sameSecret(&got, before[arn]) {
			t.Fatalf("%s: DemoteRegion changed more than Demoted\n got %+v\nwant %+v", arn, &got, before[arn])
		}
		if h.inFeedAfter(demoted-1, arn) {
			t.Fatalf("%s is in the change feed after the demotion", arn)
		}
	}
	if digestOf(t, h.f) == digestOf(t, h.replay(demoted)) {
		t.Fatal("DemoteRegion left the digest as a Noop does")
	}
	// The state keeps shipping: a and c are still primaries with replicas.
	if got := fsm.SecretsReplicatedTo(h.txn(), replRegion); len(got) != 2 {
		t.Fatalf("SecretsReplicatedTo(%s) = %d secrets after the demotion, want 2", replRegion, len(got))
	}

	wantWritesRefused(t, h, a, t0+2*hour, apierr.InvalidRequest, apierr.MsgDemotedWrite)
	wantWritesRefused(t, h, c, t0+2*hour, apierr.InvalidRequest, apierr.MsgDemotedWrite)
	// A secret without replicas is not demoted; a replica refuses as a replica.
	h.ok(fsm.CmdPutSecretValue, putCmd(b, "v2", nil, t0+2*hour))
	h.fail(fsm.CmdPutSecretValue, putCmd(r.ARN, "v2", nil, t0+2*hour), apierr.InvalidParameter, apierr.MsgReplicaWrite)
	// Reads are still recorded (not a change).
	h.ok(fsm.CmdRecordAccess, &fsm.RecordAccess{Day: t0 + day, Secrets: []fsm.AccessedSecret{{ARN: a, VersionIDs: []string{"v2"}}}})
	if s := h.secret(a); !s.Demoted || s.LastAccessedDate != t0+day {
		t.Fatalf("after RecordAccess: Demoted %v, LastAccessedDate %d", s.Demoted, s.LastAccessedDate)
	}
	// The acks of its replica regions go on.
	h.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion, Index: h.index(), Date: t0 + 2*hour})
	h.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion2, Date: t0 + 2*hour,
		Outcomes: []fsm.ReplOutcome{{ARN: c, Status: fsm.ReplFailed, Message: "no"}}})
	if s := h.secret(c); !s.Demoted || s.Replica(replRegion2).Failure != "no" {
		t.Fatalf("after a refusal: %+v", s)
	}

	// Nothing left to demote.
	h.fail(fsm.CmdDemoteRegion, &fsm.DemoteRegion{Date: t0 + 3*hour}, apierr.InvalidRequest,
		"Region us-west-2 holds no writable primary secret with replica regions: there is nothing to demote.")

	// PromoteRegion (of a region nothing here replicates) undoes it: the
	// replica r stays; the undemoted secrets move to the next epoch.
	mods := map[string]uint64{a: h.modifyIndex(a), c: h.modifyIndex(c)}
	res = h.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{From: "ca-central-1", Date: t0 + 4*hour})
	undemoted := h.index()
	if res.Count != 2 {
		t.Fatalf("PromoteRegion answered Count %d, want 2", res.Count)
	}
	for arn, mod := range mods {
		// Undemoted at the next epoch, shipped (a change of the secret).
		if s := h.secret(arn); s.Demoted || s.ModifyIndex != undemoted || mod >= undemoted || s.Epoch != 1 || s.IsReplica() || !h.inFeedAfter(undemoted-1, arn) {
			t.Fatalf("%s undemoted: Demoted %v, ModifyIndex %d (want %d), Epoch %d", arn, s.Demoted, s.ModifyIndex, undemoted, s.Epoch)
		}
	}
	if s := h.secret(r.ARN); !s.IsReplica() || s.Epoch != 0 {
		t.Fatalf("the replica of ap-south-1 was promoted by a PromoteRegion from ca-central-1: %+v", s)
	}
	if src := sourceOf(h, replRegion2); src == nil {
		t.Fatal("the ReplSource of ap-south-1 went")
	}
	if digestOf(t, h.f) == digestOf(t, h.replay(undemoted)) {
		t.Fatal("undemoting left the digest as a Noop does")
	}
	h.ok(fsm.CmdPutSecretValue, putCmd(a, "v3", nil, t0+5*hour))
	h.ok(fsm.CmdTagResource, &fsm.TagResource{ARN: c, Tags: []fsm.Tag{{Key: "k", Value: "v"}}, Date: t0 + 5*hour})
	h.fail(fsm.CmdPromoteRegion, &fsm.PromoteRegion{From: "ca-central-1", Date: t0 + 6*hour}, apierr.InvalidRequest,
		"Region us-west-2 holds no replica secrets of region ca-central-1 and no demoted secrets: there is nothing to promote.")

	// Demoted again, then a PromoteRegion that also promotes: both count.
	h.ok(fsm.CmdDemoteRegion, &fsm.DemoteRegion{Date: t0 + 7*hour})
	res = h.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{Date: t0 + 8*hour})
	if res.Count != 3 {
		t.Fatalf("PromoteRegion answered Count %d, want 3 (r promoted, a and c undemoted)", res.Count)
	}
	if s := h.secret(r.ARN); s.IsReplica() || s.Epoch != 1 {
		t.Fatalf("r: %+v", s)
	}
	if h.secret(a).Demoted || h.secret(c).Demoted {
		t.Fatal("a or c still demoted")
	}
}

// A region without a record (FSM unit state) still answers with a message.
func TestPromotion_NothingToDo_NoRegionRecord(t *testing.T) {
	h := newHarness(t)
	h.fail(fsm.CmdPromoteRegion, &fsm.PromoteRegion{Date: t0}, apierr.InvalidRequest,
		"Region  holds no replica secrets and no demoted secrets: there is nothing to promote.")
	h.fail(fsm.CmdDemoteRegion, &fsm.DemoteRegion{Date: t0}, apierr.InvalidRequest,
		"Region  holds no writable primary secret with replica regions: there is nothing to demote.")
	h.ok(fsm.CmdCreateSecret, createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0))
	h.fail(fsm.CmdDemoteRegion, &fsm.DemoteRegion{Date: t0}, apierr.InvalidRequest,
		"Region  holds no writable primary secret with replica regions: there is nothing to demote.")
}

// ---------------------------------------------------------------------
// PromoteRegion of replicas; PromoteReplica's epoch.

func TestPromotion_PromoteRegion(t *testing.T) {
	h := replicaRegion(t) // eu-west-1
	// Its own primary, replicating to us-east-2 (a target that exists).
	mine := regionARN(replRegion, "mine", "mmmmmm")
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: mine, Name: "mine", Date: t0, Replicas: []fsm.Replica{{Region: "us-east-2"}}})
	targetUSE2 := *fsm.ReplTargetOf(h.txn(), "us-east-2")

	// Replicas of us-west-2's secrets: p1 at epoch 3 with its regions;
	// p2 at epoch 0 from a shipper that sent none.
	p1 := fromRegion(shipped("p1", "111111", 40, replValue("v1", 1, cur), replPlaceholder("v2", 2, pend)), testRegion, 3)
	p1.Regions = []fsm.Replica{{Region: testRegion, KmsKeyID: "alias/p"}, {Region: replRegion, KmsKeyID: "alias/e"},
		{Region: replRegion2, KmsKeyID: "alias/ap"}, {Region: "us-east-2"}}
	p2 := fromRegion(shipped("p2", "222222", 41, replValue("v1", 3, cur)), testRegion, 0)
	h.replicate(&fsm.ApplyReplicated{Source: testRegion, Secrets: []fsm.ReplicatedSecret{p1, p2}, Next: 42, Date: t0 + 1})
	// A replica of ap-south-1's secret q1.
	q1 := fromRegion(shipped("q1", "333333", 7, replValue("v1", 4, cur)), replRegion2, 5)
	q1.Regions = []fsm.Replica{{Region: replRegion2, KmsKeyID: "alias/q"}, {Region: replRegion}, {Region: testRegion, KmsKeyID: "alias/w"}}
	h.replicate(&fsm.ApplyReplicated{Source: replRegion2, Secrets: []fsm.ReplicatedSecret{q1}, Next: 8, Date: t0 + 2})
	before := map[string]*fsm.Secret{p1.ARN: h.secret(p1.ARN), p2.ARN: h.secret(p2.ARN), q1.ARN: h.secret(q1.ARN)}
	mineBefore := h.secret(mine)

	res := h.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{From: testRegion, Date: t0 + hour})
	at := h.index()
	if res.Count != 2 {
		t.Fatalf("PromoteRegion from %s answered Count %d, want 2", testRegion, res.Count)
	}
	for _, tc := range []struct {
		arn      string
		epoch    uint64
		replicas []fsm.Replica
	}{
		// The old primary first when its regions lack it, then the
		// others but this one, each with its key.
		{p1.ARN, 4, []fsm.Replica{{Region: testRegion, KmsKeyID: "alias/p", AddedIndex: at}, {Region: replRegion2, KmsKeyID: "alias/ap", AddedIndex: at},
			{Region: "us-east-2", AddedIndex: at}}},
		{p2.ARN, 1, []fsm.Replica{{Region: testRegion, AddedIndex: at}}},
	} {
		s := h.secret(tc.arn)
		b := before[tc.arn]
		if s.IsReplica() || s.Epoch != tc.epoch || s.SourceIndex != 0 || s.PrimaryReplicas != nil || s.Reconcile || s.Demoted ||
			s.ModifyIndex != at || s.CreateIndex != b.CreateIndex || s.LastChangedDate != t0+hour || !reflect.DeepEqual(s.Versions, b.Versions) {
			t.Fatalf("%s promoted:\n%+v\nwant Epoch %d, ModifyIndex %d, versions as they were", tc.arn, s, tc.epoch, at)
		}
		wantReplicas(t, h, tc.arn, tc.replicas)
		if !h.inFeedAfter(at-1, tc.arn) {
			t.Fatalf("%s is not in the feed after its promotion", tc.arn)
		}
	}
	// Targets: new regions get one just before the promotion, one that
	// exists keeps its cursor.
	wantTarget(t, h, testRegion, &fsm.ReplTarget{Region: testRegion, Acked: at - 1})
	wantTarget(t, h, replRegion2, &fsm.ReplTarget{Region: replRegion2, Acked: at - 1})
	wantTarget(t, h, "us-east-2", &targetUSE2)
	// us-west-2 is no source any more; ap-south-1 still is.
	if src := sourceOf(h, testRegion); src != nil {
		t.Fatalf("ReplSource %s kept: %+v", testRegion, src)
	}
	if src := sourceOf(h, replRegion2); src == nil || src.Applied != 8 {
		t.Fatalf("ReplSource %s: %+v, want Applied 8", replRegion2, src)
	}
	if s := h.secret(q1.ARN); !reflect.DeepEqual(s, before[q1.ARN]) {
		t.Fatalf("q1, of another region, changed: %+v", s)
	}
	if s := h.secret(mine); !reflect.DeepEqual(s, mineBefore) {
		t.Fatalf("this region's own secret changed: %+v", s)
	}
	// Clients write the promoted secrets; shipments of their old epoch
	// are fenced.
	h.ok(fsm.CmdPutSecretValue, putCmd(p2.ARN, "w1", nil, t0+2*hour))
	out := h.replicate(&fsm.ApplyReplicated{Source: testRegion, Secrets: []fsm.ReplicatedSecret{p1}, Date: t0 + 2*hour})
	wantOutcomes(t, out, fsm.ReplOutcome{ARN: p1.PrimaryARN, Status: fsm.ReplFenced, Epoch: 4, Primary: replRegion,
		Message: "Replication refused: the secret's primary is in region eu-west-1 at epoch 4; the shipment is of epoch 3."})
	h.assertLastChangedNothing()

	h.fail(fsm.CmdPromoteRegion, &fsm.PromoteRegion{From: testRegion, Date: t0 + 3*hour}, apierr.InvalidRequest,
		"Region eu-west-1 holds no replica secrets of region us-west-2 and no demoted secrets: there is nothing to promote.")

	// Every replica: q1, whose regions name its old primary.
	res = h.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{Date: t0 + 4*hour})
	at2 := h.index()
	if res.Count != 1 {
		t.Fatalf("PromoteRegion answered Count %d, want 1", res.Count)
	}
	if s := h.secret(q1.ARN); s.IsReplica() || s.Epoch != 6 {
		t.Fatalf("q1 promoted: %+v", s)
	}
	wantReplicas(t, h, q1.ARN, []fsm.Replica{{Region: replRegion2, KmsKeyID: "alias/q", AddedIndex: at2}, {Region: testRegion, KmsKeyID: "alias/w", AddedIndex: at2}})
	wantTarget(t, h, testRegion, &fsm.ReplTarget{Region: testRegion, Acked: at - 1})
	wantTarget(t, h, replRegion2, &fsm.ReplTarget{Region: replRegion2, Acked: at - 1})
	if n := len(fsm.ReplSources(h.txn())); n != 0 {
		t.Fatalf("%d ReplSources left, want none", n)
	}
	h.fail(fsm.CmdPromoteRegion, &fsm.PromoteRegion{Date: t0 + 5*hour}, apierr.InvalidRequest,
		"Region eu-west-1 holds no replica secrets and no demoted secrets: there is nothing to promote.")
}

func TestPromotion_PromoteReplicaRaisesTheEpoch(t *testing.T) {
	h := replicaRegion(t)
	rs := fromRegion(shipped("db", "abcdef", 40, replValue("v1", 1, cur)), testRegion, 3)
	rs.Regions = []fsm.Replica{{Region: testRegion}, {Region: replRegion}, {Region: replRegion2}}
	h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{rs}, Next: 41, Date: t0})
	h.ok(fsm.CmdPromoteReplica, &fsm.PromoteReplica{ARN: rs.ARN, Date: t0 + day})
	s := h.secret(rs.ARN)
	if s.IsReplica() || s.Epoch != 4 || s.PrimaryReplicas != nil || s.Replicas != nil || s.Reconcile || s.SourceIndex != 0 {
		t.Fatalf("PromoteReplica: %+v, want a standalone secret at epoch 4 without regions", s)
	}
	// Its old primary's shipments are answered "promoted", at any epoch up
	// to its own.
	for _, epoch := range []uint64{3, 4} {
		out := h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{fromRegion(shipped("db", "abcdef", 50, replValue("v2", 2, cur)), testRegion, epoch)},
			Date: t0 + 2*day})
		wantOutcomes(t, out, fsm.ReplOutcome{ARN: rs.PrimaryARN, Status: fsm.ReplPromoted,
			Message: "The replica was promoted to a standalone secret in its region."})
		h.assertLastChangedNothing()
	}

	// A replica to reconcile (a fenced answer) promoted on its own: no
	// longer to reconcile.
	a := regionHarness(t, regionA)
	arn := regionARN(regionA, "x", "xxxxxx")
	a.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: "x", Date: t0, Replicas: []fsm.Replica{{Region: testRegion}}})
	a.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: testRegion, Date: t0 + 1,
		Outcomes: []fsm.ReplOutcome{{ARN: arn, Status: fsm.ReplFenced, Epoch: 1, Primary: testRegion}}})
	a.ok(fsm.CmdPromoteReplica, &fsm.PromoteReplica{ARN: arn, Date: t0 + 2})
	if s := a.secret(arn); s.IsReplica() || s.Reconcile || s.Epoch != 2 || s.PrimaryReplicas != nil {
		t.Fatalf("promoted: %+v", s)
	}
}

// ---------------------------------------------------------------------
// The Conflicts query.

func TestPromotion_ConflictsQuery(t *testing.T) {
	h := replicaRegion(t)
	if got := conflictsOf(h); len(got) != 0 {
		t.Fatalf("Conflicts of an empty region: %+v", got)
	}
	// Two primaries of this region, created b first, each superseded by
	// us-west-2; a third secret is not.
	arnA, arnB := regionARN(replRegion, "a", "aaaaaa"), regionARN(replRegion, "b", "bbbbbb")
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnB, Name: "b", Version: strVersionPtr("b1", "x"), Date: t0, Replicas: []fsm.Replica{{Region: testRegion}}})
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnA, Name: "a", Version: strVersionPtr("a1", "x"), Date: t0 + 1, Replicas: []fsm.Replica{{Region: testRegion}}})
	h.ok(fsm.CmdPutSecretValue, putCmd(arnA, "a2", nil, t0+2))
	h.ok(fsm.CmdPutSecretValue, putCmd(arnA, "a3", []string{"custom"}, t0+3))
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: regionARN(replRegion, "c", "cccccc"), Name: "c", Version: strVersionPtr("c1", "x"), Date: t0})
	sa, sb := h.secret(arnA), h.secret(arnB)

	shipB := fromRegion(shipped("b", "bbbbbb", 20, replValue("w1", 1, cur)), testRegion, 1)
	shipA := fromRegion(shipped("a", "aaaaaa", 21, replValue("w2", 2, cur), replNoValue("a1", 0, prev)), testRegion, 1)
	h.replicate(&fsm.ApplyReplicated{Source: testRegion, Secrets: []fsm.ReplicatedSecret{shipB}, Date: t0 + hour})
	h.replicate(&fsm.ApplyReplicated{Source: testRegion, Secrets: []fsm.ReplicatedSecret{shipA}, Date: t0 + 2*hour})
	want := []fsm.ConflictVersion{
		{ARN: arnA, Name: "a", VersionID: "a2", CreatedDate: sa.Version("a2").CreatedDate, Conflict: fsm.Conflict{Region: replRegion, Epoch: 0, Date: t0 + 2*hour}},
		{ARN: arnA, Name: "a", VersionID: "a3", CreatedDate: sa.Version("a3").CreatedDate, Conflict: fsm.Conflict{Region: replRegion, Epoch: 0, Date: t0 + 2*hour}},
		{ARN: arnB, Name: "b", VersionID: "b1", CreatedDate: sb.Version("b1").CreatedDate, Conflict: fsm.Conflict{Region: replRegion, Epoch: 0, Date: t0 + hour}},
	}
	if got := conflictsOf(h); !reflect.DeepEqual(got, want) {
		t.Fatalf("Conflicts\n got %+v\nwant %+v", got, want)
	}
	// a1, which the new primary has, is its version (previous), no conflict.
	s := h.secret(arnA)
	if v := s.Version("a1"); v == nil || v.Conflict != nil || !slices.Equal(v.Stages, []string{prev}) || !reflect.DeepEqual(v.Value, sa.Version("a1").Value) {
		t.Fatalf("a1 after the supersession: %+v", v)
	}
	assertStages(t, h, arnA, map[string]L{"w2": {cur}, "a1": {prev}, "a2": nil, "a3": nil})
}

// ---------------------------------------------------------------------
// Snapshots.

// buildPromotionLog gives a region (us-west-2) every piece of the fencing
// state: a demoted primary, a replica to reconcile, a superseded primary
// with a conflict, a promoted replica at a raised epoch.
func buildPromotionLog(h *harness) (arns []string) {
	h.t.Helper()
	resetTestRegion(h)
	d, f, c := arnOf("d", "dddddd"), arnOf("f", "ffffff"), arnOf("c", "cccccc")
	cd := createCmd("d", "dddddd", strVersionPtr("v1", "x"), t0)
	cd.Replicas = []fsm.Replica{{Region: replRegion}}
	h.ok(fsm.CmdCreateSecret, cd)
	cf := createCmd("f", "ffffff", strVersionPtr("v1", "y"), t0)
	cf.KmsKeyID, cf.Replicas = "alias/f", []fsm.Replica{{Region: replRegion, KmsKeyID: "alias/r"}, {Region: replRegion2}}
	h.ok(fsm.CmdCreateSecret, cf)
	h.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion, Date: t0 + 1,
		Outcomes: []fsm.ReplOutcome{{ARN: f, Status: fsm.ReplFenced, Epoch: 2, Primary: replRegion}}}) // Reconcile
	cc := createCmd("c", "cccccc", strVersionPtr("v1", "z"), t0)
	cc.Replicas = []fsm.Replica{{Region: replRegion2}}
	h.ok(fsm.CmdCreateSecret, cc)
	rs := shipped("c", "cccccc", 30, replValue("w1", 1, cur))
	rs.ARN, rs.PrimaryARN, rs.Epoch = c, regionARN(replRegion2, "c", "cccccc"), 1
	rs.Regions = []fsm.Replica{{Region: replRegion2, KmsKeyID: "alias/ap"}, {Region: testRegion}}
	h.replicate(&fsm.ApplyReplicated{Source: replRegion2, Secrets: []fsm.ReplicatedSecret{rs}, Next: 31, Date: t0 + 2}) // a conflict
	p := fromRegion(shipped("p", "pppppp", 50, replValue("v1", 2, cur)), "us-east-2", 4)
	p.ARN = arnOf("p", "pppppp")
	p.Regions = []fsm.Replica{{Region: "us-east-2"}, {Region: testRegion}, {Region: replRegion}}
	h.replicate(&fsm.ApplyReplicated{Source: "us-east-2", Secrets: []fsm.ReplicatedSecret{p}, Next: 51, Date: t0 + 3})
	h.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{From: "us-east-2", Date: t0 + 4}) // p at epoch 5
	h.ok(fsm.CmdDemoteRegion, &fsm.DemoteRegion{Date: t0 + 5})                      // d and p
	return []string{d, f, c, p.ARN}
}

func TestPromotion_SnapshotRestore(t *testing.T) {
	h := newHarness(t)
	arns := buildPromotionLog(h)
	txn := h.txn()
	d, f, c, p := fsm.SecretByARN(txn, arns[0]), fsm.SecretByARN(txn, arns[1]), fsm.SecretByARN(txn, arns[2]), fsm.SecretByARN(txn, arns[3])
	// The log built what the test is about.
	if !d.Demoted || !f.Reconcile || f.PrimaryReplicas == nil || c.Epoch != 1 || c.PrimaryReplicas == nil ||
		c.Version("v1") == nil || c.Version("v1").Conflict == nil || p.Epoch != 5 || !p.Demoted || len(p.Replicas) != 2 {
		t.Fatalf("the log did not build the fencing state:\nd %+v\nf %+v\nc %+v\np %+v", d, f, c, p)
	}
	data := snapshotBytes(t, h.f)
	g := fsm.New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if got, want := digestOf(t, g), digestOf(t, h.f); got != want {
		t.Fatalf("restored digest %s, want %s", got, want)
	}
	if got, want := digestOf(t, h.replay()), digestOf(t, h.f); got != want {
		t.Fatalf("a replay of the log gives digest %s, want %s", got, want)
	}
	if !bytes.Equal(snapshotBytes(t, g), data) {
		t.Fatal("a snapshot of the restored state differs from the original")
	}
	gtxn, _ := g.ReadTxn()
	checkInvariants(t, gtxn)
	for _, arn := range arns {
		if got, want := fsm.SecretByARN(gtxn, arn), fsm.SecretByARN(txn, arn); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s restored as\n%+v\nwant\n%+v", arn, got, want)
		}
	}
	if got, want := fsm.Conflicts(gtxn), fsm.Conflicts(txn); len(want) != 1 || !reflect.DeepEqual(got, want) {
		t.Fatalf("restored Conflicts %+v, want %+v (one)", got, want)
	}
	if !reflect.DeepEqual(fsm.ReplTargets(gtxn), fsm.ReplTargets(txn)) || !reflect.DeepEqual(fsm.ReplSources(gtxn), fsm.ReplSources(txn)) {
		t.Fatal("restored replication tables differ")
	}

	// Both go on in step: f reconciles, p and d are promoted back, c's
	// primary ships again.
	gh := &harness{t: t, f: g, log: slices.Clone(h.log), check: true}
	fs := shipped("f", "ffffff", 60, replValue("w1", 3, cur))
	fs.ARN, fs.PrimaryARN, fs.Epoch = arns[1], regionARN(replRegion, "f", "ffffff"), 2
	cs := shipped("c", "cccccc", 35, replValue("w1", 1, prev), replValue("w2", 4, cur))
	cs.ARN, cs.PrimaryARN, cs.Epoch = arns[2], regionARN(replRegion2, "c", "cccccc"), 1
	for _, e := range [][]byte{
		encode(t, fsm.CmdApplyReplicated, &fsm.ApplyReplicated{Source: replRegion, Secrets: []fsm.ReplicatedSecret{fs}, Next: 61, Date: t0 + 20}),
		encode(t, fsm.CmdApplyReplicated, &fsm.ApplyReplicated{Source: replRegion2, Secrets: []fsm.ReplicatedSecret{cs}, Next: 36, Date: t0 + 21}),
		encode(t, fsm.CmdPromoteRegion, &fsm.PromoteRegion{From: replRegion2, Date: t0 + 22}),
		encode(t, fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion, Date: t0 + 23,
			Outcomes: []fsm.ReplOutcome{{ARN: arns[0], Status: fsm.ReplFenced, Epoch: 9, Primary: replRegion}}}),
	} {
		r1, r2 := h.applyRaw(e), gh.applyRaw(e)
		if !reflect.DeepEqual(r1, r2) {
			t.Fatalf("answers differ: %#v vs %#v", r1, r2)
		}
		if _, failed := r1.(*apierr.Error); failed {
			t.Fatalf("entry refused: %v", r1)
		}
		if digestOf(t, h.f) != digestOf(t, g) {
			t.Fatal("restored node and log node diverged")
		}
	}
	// f reconciled (v1, its own, kept as a conflict at epoch 0); c kept its
	// conflict; then c was promoted (epoch 2) and d, p undemoted; then d
	// learned it was superseded.
	s := h.secret(arns[1])
	if s.Reconcile || s.Epoch != 2 || s.Version("v1") == nil || s.Version("v1").Conflict == nil ||
		*s.Version("v1").Conflict != (fsm.Conflict{Region: testRegion, Epoch: 0, Date: t0 + 20}) {
		t.Fatalf("f after its new primary's state: %+v", s)
	}
	if s := h.secret(arns[2]); s.Epoch != 2 || s.IsReplica() || s.Version("v1") == nil || s.Version("v1").Conflict == nil {
		t.Fatalf("c: %+v", s)
	}
	if s := h.secret(arns[0]); s.Demoted || !s.Reconcile || s.PrimaryRegion != replRegion {
		t.Fatalf("d: %+v", s)
	}
	if h.secret(arns[3]).Demoted {
		t.Fatal("p still demoted")
	}
}

// ---------------------------------------------------------------------
// The log format of the new commands and fields.

func TestPromotion_CommandsEncode(t *testing.T) {
	if fsm.CmdPromoteRegion != 28 || fsm.CmdDemoteRegion != 29 ||
		fsm.CmdPromoteRegion.String() != "PromoteRegion" || fsm.CmdDemoteRegion.String() != "DemoteRegion" {
		t.Fatalf("PromoteRegion %d %q, DemoteRegion %d %q; want 28 and 29",
			uint8(fsm.CmdPromoteRegion), fsm.CmdPromoteRegion, uint8(fsm.CmdDemoteRegion), fsm.CmdDemoteRegion)
	}
	env := *replEnv(1)
	conflict := &fsm.Conflict{Region: regionA, Epoch: 3, Date: t0 + 9}
	for _, tc := range []struct {
		ct  fsm.CommandType
		cmd any
	}{
		{fsm.CmdPromoteRegion, &fsm.PromoteRegion{From: regionA, Date: t0}},
		{fsm.CmdPromoteRegion, &fsm.PromoteRegion{}},
		{fsm.CmdDemoteRegion, &fsm.DemoteRegion{Date: t0}},
		{fsm.CmdDemoteRegion, &fsm.DemoteRegion{}},
		{fsm.CmdApplyReplicated, &fsm.ApplyReplicated{Source: regionA, Next: 9, Date: t0, Secrets: []fsm.ReplicatedSecret{{
			ARN: "x", PrimaryARN: "y", Name: "n", SourceIndex: 8, Epoch: 7,
			Regions:  []fsm.Replica{{Region: regionA, KmsKeyID: "alias/a"}, {Region: testRegion}},
			Versions: []fsm.ReplicatedVersion{{VersionID: "v1", Stages: []string{cur}, Value: &env, Digest: []byte{1}, Conflict: conflict}},
		}}}},
		{fsm.CmdAckReplication, &fsm.AckReplication{Region: testRegion, Date: t0,
			Outcomes: []fsm.ReplOutcome{{ARN: "x", Status: fsm.ReplFenced, Message: "m", Epoch: 7, Primary: testRegion}}}},
	} {
		buf := encode(t, tc.ct, tc.cmd)
		ct, got, err := fsm.Decode(buf)
		if err != nil || ct != tc.ct || !reflect.DeepEqual(got, tc.cmd) {
			t.Fatalf("%s: decoded %v %#v (%v), want %#v", tc.ct, ct, got, err, tc.cmd)
		}
		if again := encode(t, ct, got); !bytes.Equal(again, buf) {
			t.Fatalf("%s: encoding is not canonical", tc.ct)
		}
	}
}

// A split brain (two regions promoted from the same epoch) is settled by
// demoting and promoting the region to keep: its secret moves to the
// next epoch and supersedes the other's, whose own writes stay as
// conflicts.
func TestPromotion_SplitBrainSettledByDemoteThenPromote(t *testing.T) {
	a, b := regionHarness(t, regionA), regionHarness(t, testRegion)
	arnA, arnB := regionARN(regionA, "db", "abcdef"), arnOf("db", "abcdef")
	a.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnA, Name: "db", Version: strVersionPtr("v1", "one"), Date: t0,
		Replicas: []fsm.Replica{{Region: testRegion}}})
	deliver(t, a, b, regionA, testRegion, arnA, t0+hour)
	// B is promoted to epoch 1 while A, cut off, demotes and promotes
	// itself (epoch 1 too) before it hears of B: both primaries at 1.
	b.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{Date: t0 + 2*hour})
	a.ok(fsm.CmdDemoteRegion, &fsm.DemoteRegion{Date: t0 + 2*hour})
	a.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{Date: t0 + 2*hour})
	if ea, eb := a.secret(arnA).Epoch, b.secret(arnB).Epoch; ea != 1 || eb != 1 {
		t.Fatalf("epochs A %d, B %d; want both 1 (a split brain)", ea, eb)
	}
	out := offer(t, a, b, regionA, testRegion, arnA, t0+3*hour)
	if len(out) != 1 || out[0].Status != fsm.ReplFailed {
		t.Fatalf("the split brain: %+v", out)
	}
	// Keep B: demote and promote it, then its state supersedes A's.
	b.ok(fsm.CmdDemoteRegion, &fsm.DemoteRegion{Date: t0 + 4*hour})
	b.ok(fsm.CmdPromoteRegion, &fsm.PromoteRegion{Date: t0 + 4*hour})
	if e := b.secret(arnB).Epoch; e != 2 {
		t.Fatalf("B's epoch after demote and promote: %d, want 2", e)
	}
	out = offer(t, b, a, testRegion, regionA, arnB, t0+5*hour)
	if len(out) != 1 || out[0].Status != fsm.ReplApplied {
		t.Fatalf("B's epoch-2 state in A: %+v", out)
	}
	if s := a.secret(arnA); s.PrimaryRegion != testRegion || s.Epoch != 2 {
		t.Fatalf("A after B's state: PrimaryRegion %q, Epoch %d", s.PrimaryRegion, s.Epoch)
	}
}
