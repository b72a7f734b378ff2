package fsm_test

import (
	"bytes"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
)

// Table and scenario tests of replication between regions as FSM state
// (replication.go, apply_replication.go): SetReplication and CreateSecret
// with replicas in a primary region, ApplyReplicated and PromoteReplica in
// a replica region, AckReplication back in the primary, and the
// replication tables through snapshots. Every command goes through
// encode → Apply as raft delivers it, and the harness checks the state
// invariants (checkInvariants) after each one.

// Regions other than testRegion.
const (
	replRegion  = "eu-west-1"
	replRegion2 = "ap-south-1"
)

// regionARN is arnOf for a secret of another region.
func regionARN(region, name, suffix string) string {
	return strings.Replace(arnOf(name, suffix), testRegion, region, 1)
}

// replicaARN is the ARN, in region, of the replica of testRegion's secret arn.
func replicaARN(arn, region string) string { return strings.Replace(arn, testRegion, region, 1) }

// replEnv is an envelope as a replication receiver hands it over (data key
// re-wrapped under the replica region's KEK); n tells values apart.
func replEnv(n byte) *crypto.Envelope {
	return &crypto.Envelope{KEKID: "k1", WrappedKey: []byte{1}, Ciphertext: []byte{2, n}}
}

func replDigest(n byte) []byte { return []byte{'d', n} }

// replValue is a shipped version with its value n.
func replValue(id string, n byte, stages ...string) fsm.ReplicatedVersion {
	return fsm.ReplicatedVersion{VersionID: id, Stages: stages, CreatedDate: t0 + int64(n), Value: replEnv(n), Digest: replDigest(n)}
}

// replNoValue is a shipped version whose value the shipper left out (the
// replica should have it).
func replNoValue(id string, n byte, stages ...string) fsm.ReplicatedVersion {
	return fsm.ReplicatedVersion{VersionID: id, Stages: stages, CreatedDate: t0 + int64(n)}
}

// replPlaceholder is a shipped rotation placeholder: a version without a value.
func replPlaceholder(id string, n byte, stages ...string) fsm.ReplicatedVersion {
	return fsm.ReplicatedVersion{VersionID: id, Stages: stages, CreatedDate: t0 + int64(n), Placeholder: true}
}

// shipped is testRegion's secret name-suffix as of sourceIndex, as
// replRegion applies it.
func shipped(name, suffix string, sourceIndex uint64, versions ...fsm.ReplicatedVersion) fsm.ReplicatedSecret {
	primary := arnOf(name, suffix)
	for i := range versions {
		versions[i].PrimaryARN = primary
	}
	return fsm.ReplicatedSecret{ARN: replicaARN(primary, replRegion), PrimaryARN: primary, Name: name,
		Description: "replica of " + name, KmsKeyID: "alias/r", KeyID: "key-r",
		Tags: []fsm.Tag{{Key: "team", Value: "ops"}}, TagsEverSet: true,
		CreatedDate: t0, LastChangedDate: t0 + int64(sourceIndex), Type: "partner", ResourcePolicy: `{"Statement":[]}`,
		SourceIndex: sourceIndex, Versions: versions}
}

// replicaRegion is a harness for region replRegion: its region record
// names it in ApplyReplicated's refusals.
func replicaRegion(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.ok(fsm.CmdInitRegion, &fsm.InitRegion{Region: replRegion, AccountID: testAccount, KEKID: "kek-1",
		RootKey: fsm.AccessKey{AccessKeyID: "AKIAREPLICA", Identity: "root", SealedSecret: []byte{1}, CreatedDate: t0}, Date: t0})
	return h
}

// replicate applies a shipment (from testRegion unless it says) and
// returns its outcomes.
func (h *harness) replicate(c *fsm.ApplyReplicated) []fsm.ReplOutcome {
	h.t.Helper()
	if c.Source == "" {
		c.Source = testRegion
	}
	return h.ok(fsm.CmdApplyReplicated, c).Replication
}

func wantOutcomes(t *testing.T, got []fsm.ReplOutcome, want ...fsm.ReplOutcome) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes\n got %+v\nwant %+v", got, want)
	}
}

// inFeedAfter reports whether the change feed after index lists the secret.
func (h *harness) inFeedAfter(after uint64, arn string) bool {
	h.t.Helper()
	page, err := fsm.ChangesAfter(h.txn(), after, 1<<20)
	if err != nil {
		h.t.Fatalf("ChangesAfter(%d): %v", after, err)
	}
	for _, c := range page.Items {
		if c.Secret != nil && c.Secret.ARN == arn {
			return true
		}
	}
	return false
}

func (h *harness) modifyIndex(arn string) uint64 {
	h.t.Helper()
	return h.secret(arn).ModifyIndex
}

func wantReplicas(t *testing.T, h *harness, arn string, want []fsm.Replica) {
	t.Helper()
	if got := h.secret(arn).Replicas; !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: Replicas\n got %+v\nwant %+v", arn, got, want)
	}
}

// wantTarget checks the ReplTarget of region; nil wants none.
func wantTarget(t *testing.T, h *harness, region string, want *fsm.ReplTarget) {
	t.Helper()
	got := fsm.ReplTargetOf(h.txn(), region)
	if (got == nil) != (want == nil) || (got != nil && *got != *want) {
		t.Fatalf("ReplTarget %s = %+v, want %+v", region, got, want)
	}
}

func dropsOf(h *harness, region string) []fsm.ReplDrop {
	var out []fsm.ReplDrop
	for _, d := range fsm.ReplDrops(h.txn(), region) {
		out = append(out, *d)
	}
	return out
}

func wantDrops(t *testing.T, h *harness, region string, want ...fsm.ReplDrop) {
	t.Helper()
	if got := dropsOf(h, region); !reflect.DeepEqual(got, want) {
		t.Fatalf("ReplDrops(%s)\n got %+v\nwant %+v", region, got, want)
	}
}

func drop(region, arn string, index uint64) fsm.ReplDrop {
	return fsm.ReplDrop{ID: region + "\x00" + arn, Region: region, ARN: arn, Index: index}
}

func sourceOf(h *harness, region string) *fsm.ReplSource {
	for _, s := range fsm.ReplSources(h.txn()) {
		if s.Region == region {
			return s
		}
	}
	return nil
}

// wantVersion checks a replica version's value, digest, Index and labels.
// A nil value wants a version without one.
func wantVersion(t *testing.T, s *fsm.Secret, id string, value *crypto.Envelope, digest []byte, index uint64, stages ...string) {
	t.Helper()
	v := s.Version(id)
	if v == nil {
		t.Fatalf("%s: no version %s", s.ARN, id)
	}
	if value == nil {
		if v.HasValue() || len(v.Digest) != 0 || v.Index != 0 {
			t.Fatalf("%s %s: value %+v, digest %x, Index %d; want a version without a value", s.ARN, id, v.Value, v.Digest, v.Index)
		}
	} else if !reflect.DeepEqual(v.Value, *value) || !bytes.Equal(v.Digest, digest) || v.Index != index {
		t.Fatalf("%s %s: value %+v, digest %x, Index %d; want %+v, %x, %d", s.ARN, id, v.Value, v.Digest, v.Index, *value, digest, index)
	}
	if !slices.Equal(v.Stages, stages) {
		t.Fatalf("%s %s: stages %q, want %q", s.ARN, id, v.Stages, stages)
	}
}

func versionIDs(s *fsm.Secret) []string {
	var ids []string
	for _, v := range s.Versions {
		ids = append(ids, v.VersionID)
	}
	return ids
}

// ---------------------------------------------------------------------
// SetReplication and CreateSecret with replicas (the primary region).

func TestReplication_SetReplication(t *testing.T) {
	h := newHarness(t)
	resetTestRegion(h)
	a, b := arnOf("a", "aaaaaa"), arnOf("b", "bbbbbb")
	h.ok(fsm.CmdCreateSecret, createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0+1))
	h.ok(fsm.CmdCreateSecret, createCmd("b", "bbbbbb", nil, t0+2))

	// Adding regions: each gets the command's index (whatever AddedIndex
	// and Failure the command carried) and a target just before it.
	res := h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: a, Add: []fsm.Replica{
		{Region: replRegion, KmsKeyID: "alias/r", Force: true, AddedIndex: 999, Failure: "stale"},
		{Region: replRegion2},
	}, Date: t0 + 3})
	added := h.index()
	if res.ARN != a || res.Name != "a" {
		t.Fatalf("SetReplication answered %+v, want ARN %s, Name a", res, a)
	}
	wantReplicas(t, h, a, []fsm.Replica{
		{Region: replRegion, KmsKeyID: "alias/r", Force: true, AddedIndex: added},
		{Region: replRegion2, AddedIndex: added},
	})
	wantTarget(t, h, replRegion, &fsm.ReplTarget{Region: replRegion, Acked: added - 1})
	wantTarget(t, h, replRegion2, &fsm.ReplTarget{Region: replRegion2, Acked: added - 1})
	if m := h.modifyIndex(a); m != added || !h.inFeedAfter(added-1, a) {
		t.Fatalf("after SetReplication at %d: ModifyIndex %d, in the feed %v", added, m, h.inFeedAfter(added-1, a))
	}
	if got := fsm.SecretsReplicatedTo(h.txn(), replRegion); len(got) != 1 || got[0].ARN != a {
		t.Fatalf("SecretsReplicatedTo(%s) = %d secrets, want a", replRegion, len(got))
	}

	// A second secret replicated to the region later: the existing
	// target keeps its cursor.
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: b, Add: []fsm.Replica{{Region: replRegion}}, Date: t0 + 4})
	bAdded := h.index()
	wantReplicas(t, h, b, []fsm.Replica{{Region: replRegion, AddedIndex: bAdded}})
	wantTarget(t, h, replRegion, &fsm.ReplTarget{Region: replRegion, Acked: added - 1})

	// A region already there is left as it is (its key, Force and
	// AddedIndex); a new one in the same command is added.
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: a, Add: []fsm.Replica{
		{Region: replRegion, KmsKeyID: "alias/other"}, {Region: "us-east-2"},
	}, Date: t0 + 5})
	east := h.index()
	wantReplicas(t, h, a, []fsm.Replica{
		{Region: replRegion, KmsKeyID: "alias/r", Force: true, AddedIndex: added},
		{Region: replRegion2, AddedIndex: added},
		{Region: "us-east-2", AddedIndex: east},
	})
	wantTarget(t, h, "us-east-2", &fsm.ReplTarget{Region: "us-east-2", Acked: east - 1})

	// Removing a region: it leaves Replicas and a drop stays until the
	// region acknowledges it; a region the secret does not have is no
	// change. The target stays (b still replicates there).
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: a, Remove: []string{replRegion, "sa-east-1"}, Date: t0 + 6})
	removed := h.index()
	wantReplicas(t, h, a, []fsm.Replica{{Region: replRegion2, AddedIndex: added}, {Region: "us-east-2", AddedIndex: east}})
	wantDrops(t, h, replRegion, drop(replRegion, a, removed))
	wantDrops(t, h, "sa-east-1")
	wantTarget(t, h, replRegion, &fsm.ReplTarget{Region: replRegion, Acked: added - 1})
	if m := h.modifyIndex(a); m != removed || !h.inFeedAfter(removed-1, a) {
		t.Fatalf("after the removal at %d: ModifyIndex %d", removed, m)
	}
	// Removing it again leaves the drop as it was.
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: a, Remove: []string{replRegion}, Add: []fsm.Replica{{Region: "sa-east-1"}}, Date: t0 + 7})
	sa := h.index()
	wantDrops(t, h, replRegion, drop(replRegion, a, removed))
	if r := h.secret(a).Replica("sa-east-1"); r == nil || r.AddedIndex != sa {
		t.Fatalf("sa-east-1 added at %d: %+v", sa, r)
	}

	// Re-adding the region cancels the pending drop; the replica is new
	// (its index, this command's key and Force).
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: a, Add: []fsm.Replica{{Region: replRegion}}, Date: t0 + 8})
	readded := h.index()
	wantDrops(t, h, replRegion)
	if r := h.secret(a).Replica(replRegion); r == nil || *r != (fsm.Replica{Region: replRegion, AddedIndex: readded}) {
		t.Fatalf("re-added replica %+v, want AddedIndex %d, no key, no Force", r, readded)
	}

	// Removed and added in one command: the region is replicated anew,
	// with no drop left behind.
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: a, Remove: []string{replRegion2}, Add: []fsm.Replica{{Region: replRegion2}}, Date: t0 + 9})
	both := h.index()
	if r := h.secret(a).Replica(replRegion2); r == nil || r.AddedIndex != both {
		t.Fatalf("%s removed and added at %d: %+v", replRegion2, both, r)
	}
	wantDrops(t, h, replRegion2)

	// Removing every region: Replicas is nil again, one drop per region.
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: a, Remove: []string{replRegion, replRegion2, "us-east-2", "sa-east-1"}, Date: t0 + 10})
	all := h.index()
	if s := h.secret(a); s.Replicas != nil {
		t.Fatalf("Replicas after removing every region: %#v, want nil", s.Replicas)
	}
	for _, r := range []string{replRegion, replRegion2, "us-east-2", "sa-east-1"} {
		wantDrops(t, h, r, drop(r, a, all))
	}

	// Refusals change nothing (h.fail compares with a Noop).
	c := arnOf("c", "cccccc")
	h.ok(fsm.CmdCreateSecret, createCmd("c", "cccccc", nil, t0+11))
	scheduled(h, c, t0+12)
	h.fail(fsm.CmdSetReplication, &fsm.SetReplication{ARN: c, Add: []fsm.Replica{{Region: "ca-central-1"}}, Date: t0 + 13},
		apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
	// Removing regions is allowed during the recovery window: c has
	// none, so nothing changes.
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: c, Remove: []string{"ca-central-1"}, Date: t0 + 13})
	h.assertLastChangedNothing()
	h.fail(fsm.CmdSetReplication, &fsm.SetReplication{ARN: arnOf("absent", "zzzzzz"), Add: []fsm.Replica{{Region: "ca-central-1"}}, Date: t0 + 13},
		apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	wantTarget(t, h, "ca-central-1", nil)
}

// A SetReplication that changes no region (a region added that is there,
// one removed that is not) succeeds and, like every other command that
// changes nothing (changes_test.go), moves no index: the secret is not
// shipped again.
func TestReplication_SetReplication_NoChangeMovesNoIndex(t *testing.T) {
	h := newHarness(t)
	a := arnOf("a", "aaaaaa")
	cmd := createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0)
	cmd.Replicas = []fsm.Replica{{Region: replRegion}}
	h.ok(fsm.CmdCreateSecret, cmd)
	before := h.secret(a)
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: a, Add: []fsm.Replica{{Region: replRegion, KmsKeyID: "alias/x"}},
		Remove: []string{replRegion2}, Date: t0 + 1})
	if after := h.secret(a); after.ModifyIndex != before.ModifyIndex || !reflect.DeepEqual(after.Replicas, before.Replicas) {
		t.Fatalf("SetReplication changing no region: ModifyIndex %d → %d, Replicas %+v → %+v",
			before.ModifyIndex, after.ModifyIndex, before.Replicas, after.Replicas)
	}
	h.assertLastChangedNothing()
}

func TestReplication_CreateSecretWithReplicas(t *testing.T) {
	h := newHarness(t)
	resetTestRegion(h)
	// A target that exists keeps its cursor.
	first := createCmd("first", "ffffff", nil, t0)
	first.Replicas = []fsm.Replica{{Region: replRegion2}}
	h.ok(fsm.CmdCreateSecret, first)
	firstAt := h.index()

	a := arnOf("a", "aaaaaa")
	cmd := createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0+1)
	cmd.Replicas = []fsm.Replica{
		{Region: replRegion, KmsKeyID: "alias/r", Force: true, AddedIndex: 7, Failure: "stale"},
		{Region: replRegion2},
		{Region: replRegion, KmsKeyID: "alias/twice"}, // a region twice: the first wins
	}
	res := h.ok(fsm.CmdCreateSecret, cmd)
	at := h.index()
	if res.ARN != a || res.VersionID != "v1" {
		t.Fatalf("CreateSecret answered %+v", res)
	}
	wantReplicas(t, h, a, []fsm.Replica{
		{Region: replRegion, KmsKeyID: "alias/r", Force: true, AddedIndex: at},
		{Region: replRegion2, AddedIndex: at},
	})
	wantTarget(t, h, replRegion, &fsm.ReplTarget{Region: replRegion, Acked: at - 1})
	wantTarget(t, h, replRegion2, &fsm.ReplTarget{Region: replRegion2, Acked: firstAt - 1})
	s := h.secret(a)
	if s.CreateIndex != at || s.ModifyIndex != at || s.Version("v1").Index != at {
		t.Fatalf("created at %d: CreateIndex %d, ModifyIndex %d, v1 Index %d", at, s.CreateIndex, s.ModifyIndex, s.Version("v1").Index)
	}

	// An idempotent retry answers as the first call and changes nothing.
	retry := createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0+2)
	retry.Replicas = []fsm.Replica{{Region: "us-east-2"}}
	if res := h.ok(fsm.CmdCreateSecret, retry); res.ARN != a || res.VersionID != "v1" {
		t.Fatalf("retry answered %+v", res)
	}
	h.assertLastChangedNothing()
	// A refused one adds no target.
	taken := createCmd("a", "bbbbbb", nil, t0+3)
	taken.Replicas = []fsm.Replica{{Region: "us-east-2"}}
	h.fail(fsm.CmdCreateSecret, taken, apierr.ResourceExists, "The operation failed because the secret a already exists.")
	wantTarget(t, h, "us-east-2", nil)
}

func TestReplication_DeletePrimaryWithReplicas(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  func(arn string) *fsm.DeleteSecret
	}{
		{"forced", func(arn string) *fsm.DeleteSecret { return &fsm.DeleteSecret{ARN: arn, Force: true, Date: t0 + 2} }},
		{"scheduled", func(arn string) *fsm.DeleteSecret {
			return &fsm.DeleteSecret{ARN: arn, DeletionDate: t0 + 7*day, Date: t0 + 2}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			a := arnOf("a", "aaaaaa")
			cmd := createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0)
			cmd.Replicas = []fsm.Replica{{Region: replRegion}, {Region: replRegion2}}
			h.ok(fsm.CmdCreateSecret, cmd)
			h.fail(fsm.CmdDeleteSecret, tc.cmd(a), apierr.InvalidParameter,
				"You can't delete secret "+a+" that still has replica regions [eu-west-1, ap-south-1].")
			// With one region left, the message names it alone.
			h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: a, Remove: []string{replRegion}, Date: t0 + 1})
			h.fail(fsm.CmdDeleteSecret, tc.cmd(a), apierr.InvalidParameter,
				"You can't delete secret "+a+" that still has replica regions [ap-south-1].")
			// Once replication is removed, the delete goes through.
			h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: a, Remove: []string{replRegion2}, Date: t0 + 1})
			h.ok(fsm.CmdDeleteSecret, tc.cmd(a))
		})
	}
}

// ---------------------------------------------------------------------
// ApplyReplicated (the replica region).

func TestReplication_ApplyReplicated_CreatesReplica(t *testing.T) {
	h := replicaRegion(t)
	primary := arnOf("db", "abcdef")
	local := replicaARN(primary, replRegion)
	rs := shipped("db", "abcdef", 40,
		replValue("v1", 1, fsm.StageCurrent),
		replValue("v0", 2, fsm.StagePrevious),
		replPlaceholder("v2", 3, fsm.StagePending),
		replValue("old", 4))
	rs.DeletedDate, rs.DeletionDate = t0+5, t0+5+7*day
	out := h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{rs}, Next: 41, Date: t0 + hour})
	at := h.index()
	wantOutcomes(t, out, fsm.ReplOutcome{ARN: primary, Status: fsm.ReplApplied})

	s := h.secret(local)
	want := fsm.Secret{ARN: local, Name: "db", Description: "replica of db", KmsKeyID: "alias/r", KeyID: "key-r",
		Tags: []fsm.Tag{{Key: "team", Value: "ops"}}, TagsEverSet: true, CreatedDate: t0, LastChangedDate: t0 + 40,
		DeletedDate: t0 + 5, DeletionDate: t0 + 5 + 7*day, ListKey: fsm.ListKey(t0, local), Type: "partner",
		ResourcePolicy: `{"Statement":[]}`, CreateIndex: at, ModifyIndex: at, PrimaryRegion: testRegion, SourceIndex: 40}
	got := *s
	got.Versions = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("replica\n got %+v\nwant %+v", got, want)
	}
	if !s.IsReplica() || s.Replicas != nil {
		t.Fatalf("IsReplica %v, Replicas %+v", s.IsReplica(), s.Replicas)
	}
	if ids := versionIDs(s); !slices.Equal(ids, []string{"v1", "v0", "v2", "old"}) {
		t.Fatalf("versions %q", ids)
	}
	wantVersion(t, s, "v1", replEnv(1), replDigest(1), at, fsm.StageCurrent)
	wantVersion(t, s, "v0", replEnv(2), replDigest(2), at, fsm.StagePrevious)
	wantVersion(t, s, "v2", nil, nil, 0, fsm.StagePending)
	wantVersion(t, s, "old", replEnv(4), replDigest(4), at)
	for _, v := range s.Versions {
		if v.PrimaryARN != primary || v.AADARN(s) != primary || v.CreatedDate == 0 {
			t.Fatalf("version %s: PrimaryARN %q (AAD %q), CreatedDate %d; want the primary's ARN", v.VersionID, v.PrimaryARN, v.AADARN(s), v.CreatedDate)
		}
	}
	if byName := fsm.SecretByName(h.txn(), "db"); byName == nil || byName.ARN != local {
		t.Fatalf("SecretByName(db) = %+v", byName)
	}
	if !h.inFeedAfter(at-1, local) {
		t.Fatal("the new replica is not in the change feed")
	}
	if src := sourceOf(h, testRegion); src == nil || *src != (fsm.ReplSource{Region: testRegion, Applied: 41, Date: t0 + hour}) {
		t.Fatalf("ReplSource %+v, want Applied 41", src)
	}
	// A replica scheduled for deletion is its primary's to purge, never
	// this region's.
	if due, err := fsm.ExpiredSecrets(h.txn(), t0+365*day, 10); err != nil || len(due) != 0 {
		t.Fatalf("ExpiredSecrets lists %v, %v; want no replica", due, err)
	}
}

func TestReplication_ApplyReplicated_Duplicates(t *testing.T) {
	primary := arnOf("db", "abcdef")
	local := replicaARN(primary, replRegion)
	for _, tc := range []struct {
		name        string
		sourceIndex uint64
	}{
		{"same SourceIndex", 40},
		{"older SourceIndex", 39},
		{"much older SourceIndex", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := replicaRegion(t)
			h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{
				shipped("db", "abcdef", 40, replValue("v1", 1, fsm.StageCurrent))}, Next: 41, Date: t0})
			before := h.secret(local)
			// Whatever an old shipment says, it changes nothing.
			old := shipped("db", "abcdef", tc.sourceIndex, replValue("v9", 9, fsm.StageCurrent), replNoValue("v1", 1))
			old.Description = "changed"
			out := h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{old}, Date: t0 + hour})
			wantOutcomes(t, out, fsm.ReplOutcome{ARN: primary, Status: fsm.ReplApplied})
			h.assertLastChangedNothing()
			if after := h.secret(local); !reflect.DeepEqual(after, before) {
				t.Fatalf("a duplicate changed the replica\n got %+v\nwant %+v", after, before)
			}
		})
	}
}

func TestReplication_ApplyReplicated_NewerState(t *testing.T) {
	h := replicaRegion(t)
	primary := arnOf("db", "abcdef")
	local := replicaARN(primary, replRegion)
	h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{shipped("db", "abcdef", 40,
		replValue("v1", 1, fsm.StageCurrent), replValue("v0", 2, fsm.StagePrevious), replPlaceholder("v2", 3, fsm.StagePending))},
		Next: 41, Date: t0})
	created := h.index()
	// Reads in the replica region are recorded here (not a change).
	h.ok(fsm.CmdRecordAccess, &fsm.RecordAccess{Day: t0 + day, Secrets: []fsm.AccessedSecret{{ARN: local, VersionIDs: []string{"v1"}}}})
	if m := h.modifyIndex(local); m != created {
		t.Fatalf("RecordAccess on a replica moved ModifyIndex to %d", m)
	}

	// The primary moved on: v1 (value left out: the replica has it) is
	// previous, a new v3 is current, v0 is gone, v2 still a placeholder.
	next := shipped("db", "abcdef", 50,
		replNoValue("v1", 1, fsm.StagePrevious), replValue("v3", 5, fsm.StageCurrent), replPlaceholder("v2", 3, fsm.StagePending))
	next.Description, next.Tags = "new description", nil
	out := h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{next}, Next: 51, Date: t0 + 2*day})
	at := h.index()
	wantOutcomes(t, out, fsm.ReplOutcome{ARN: primary, Status: fsm.ReplApplied})
	s := h.secret(local)
	if s.SourceIndex != 50 || s.ModifyIndex != at || s.CreateIndex != created || s.Description != "new description" || len(s.Tags) != 0 || !s.TagsEverSet {
		t.Fatalf("replica after the newer state: SourceIndex %d, ModifyIndex %d (want %d), CreateIndex %d (want %d), %q, tags %+v",
			s.SourceIndex, s.ModifyIndex, at, s.CreateIndex, created, s.Description, s.Tags)
	}
	if ids := versionIDs(s); !slices.Equal(ids, []string{"v1", "v3", "v2"}) {
		t.Fatalf("versions %q, want v1 v3 v2 (v0 removed)", ids)
	}
	wantVersion(t, s, "v1", replEnv(1), replDigest(1), created, fsm.StagePrevious) // value kept, with its index
	wantVersion(t, s, "v3", replEnv(5), replDigest(5), at, fsm.StageCurrent)
	wantVersion(t, s, "v2", nil, nil, 0, fsm.StagePending)
	if s.LastAccessedDate != t0+day || s.Version("v1").LastAccessedDate != t0+day {
		t.Fatalf("LastAccessedDate %d, v1's %d; want the replica's own %d kept", s.LastAccessedDate, s.Version("v1").LastAccessedDate, t0+day)
	}
	if !h.inFeedAfter(at-1, local) {
		t.Fatal("the changed replica is not in the feed")
	}

	// The placeholder gets its value (the rotation finished).
	out = h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{shipped("db", "abcdef", 60,
		replNoValue("v1", 1), replNoValue("v3", 5, fsm.StagePrevious), replValue("v2", 3, fsm.StageCurrent))}, Next: 61, Date: t0 + 3*day})
	filled := h.index()
	wantOutcomes(t, out, fsm.ReplOutcome{ARN: primary, Status: fsm.ReplApplied})
	s = h.secret(local)
	wantVersion(t, s, "v1", replEnv(1), replDigest(1), created)
	wantVersion(t, s, "v3", replEnv(5), replDigest(5), at, fsm.StagePrevious)
	wantVersion(t, s, "v2", replEnv(3), replDigest(3), filled, fsm.StageCurrent)
}

func TestReplication_ApplyReplicated_NeedValues(t *testing.T) {
	primary := arnOf("db", "abcdef")
	local := replicaARN(primary, replRegion)
	other := shipped("other", "oooooo", 45, replValue("v1", 7, fsm.StageCurrent))
	for _, tc := range []struct {
		name     string
		existing bool // the replica was applied at 40 first: v1[cur] with a value, v2[pend] a placeholder
		versions []fsm.ReplicatedVersion
	}{
		{"a version the replica lacks", true, []fsm.ReplicatedVersion{
			replNoValue("v1", 1, fsm.StagePrevious), replNoValue("v9", 9, fsm.StageCurrent)}},
		{"a placeholder's value left out", true, []fsm.ReplicatedVersion{
			replNoValue("v1", 1, fsm.StagePrevious), replNoValue("v2", 2, fsm.StageCurrent)}},
		{"no replica yet", false, []fsm.ReplicatedVersion{replNoValue("v1", 1, fsm.StageCurrent)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := replicaRegion(t)
			var before *fsm.Secret
			if tc.existing {
				h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{shipped("db", "abcdef", 40,
					replValue("v1", 1, fsm.StageCurrent), replPlaceholder("v2", 2, fsm.StagePending))}, Date: t0})
				before = h.secret(local)
			}
			// The other secret of the shipment applies all the same.
			out := h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{
				shipped("db", "abcdef", 50, tc.versions...), other}, Date: t0 + hour})
			wantOutcomes(t, out, fsm.ReplOutcome{ARN: primary, Status: fsm.ReplNeedValues},
				fsm.ReplOutcome{ARN: other.PrimaryARN, Status: fsm.ReplApplied})
			after := fsm.SecretByARN(h.txn(), local)
			if !reflect.DeepEqual(after, before) {
				t.Fatalf("the secret that needs values changed\n got %+v\nwant %+v", after, before)
			}
			if fsm.SecretByARN(h.txn(), other.ARN) == nil {
				t.Fatal("the other secret of the shipment was not applied")
			}
			if fsm.TombstoneByARN(h.txn(), local) != nil {
				t.Fatal("NeedValues left a tombstone")
			}
		})
	}
}

func TestReplication_ApplyReplicated_NameTaken(t *testing.T) {
	primary := arnOf("db", "abcdef")
	local := replicaARN(primary, replRegion)
	taken := regionARN(replRegion, "db", "zzzzzz") // this region's own secret named db
	for _, tc := range []struct {
		name      string
		region    bool // the harness has its region record
		schedule  bool // the secret holding the name is scheduled for deletion
		force     bool
		wantOut   fsm.ReplOutcome
		wantTaken bool // the secret holding the name is still there
	}{
		{"refused", true, false, false, fsm.ReplOutcome{ARN: primary, Status: fsm.ReplFailed,
			Message: "Replication failed: Secret name db already exists in region eu-west-1."}, true},
		{"refused while the other is scheduled for deletion", true, true, false, fsm.ReplOutcome{ARN: primary, Status: fsm.ReplFailed,
			Message: "Replication failed: Secret name db already exists in region eu-west-1."}, true},
		{"refused without a region record", false, false, false, fsm.ReplOutcome{ARN: primary, Status: fsm.ReplFailed,
			Message: "Replication failed: Secret name db already exists in this region."}, true},
		{"forced", true, false, true, fsm.ReplOutcome{ARN: primary, Status: fsm.ReplApplied}, false},
		{"forced over a scheduled one", true, true, true, fsm.ReplOutcome{ARN: primary, Status: fsm.ReplApplied}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if tc.region {
				h = replicaRegion(t)
			}
			h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: taken, Name: "db", Version: strVersionPtr("v1", "mine"), Date: t0})
			if tc.schedule {
				scheduled(h, taken, t0+1)
			}
			rs := shipped("db", "abcdef", 40, replValue("v1", 1, fsm.StageCurrent))
			rs.Force = tc.force
			out := h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{rs}, Date: t0 + hour})
			at := h.index()
			wantOutcomes(t, out, tc.wantOut)
			if tc.wantTaken {
				h.assertLastChangedNothing()
				if fsm.SecretByARN(h.txn(), local) != nil {
					t.Fatal("a refused replica was created")
				}
				return
			}
			if fsm.SecretByARN(h.txn(), taken) != nil {
				t.Fatal("Force left the secret that held the name")
			}
			want := fsm.Tombstone{ARN: taken, Name: "db", DeleteIndex: at, Date: t0 + hour}
			if tb := fsm.TombstoneByARN(h.txn(), taken); tb == nil || *tb != want {
				t.Fatalf("tombstone of the replaced secret %+v, want %+v", tb, want)
			}
			if s := h.secret(local); s.PrimaryRegion != testRegion || s.CreateIndex != at {
				t.Fatalf("replica %+v", s)
			}
			if byName := fsm.SecretByName(h.txn(), "db"); byName == nil || byName.ARN != local {
				t.Fatalf("SecretByName(db) = %+v, want the replica", byName)
			}
		})
	}
}

// A forced replica that needs values must not have removed the secret it
// was to replace: the outcome says nothing was applied for it.
func TestReplication_ApplyReplicated_ForcedNeedValuesChangesNothing(t *testing.T) {
	h := replicaRegion(t)
	primary := arnOf("db", "abcdef")
	taken := regionARN(replRegion, "db", "zzzzzz")
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: taken, Name: "db", Version: strVersionPtr("v1", "mine"), Date: t0})
	rs := shipped("db", "abcdef", 40, replNoValue("v1", 1, fsm.StageCurrent))
	rs.Force = true
	out := h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{rs}, Date: t0 + hour})
	wantOutcomes(t, out, fsm.ReplOutcome{ARN: primary, Status: fsm.ReplNeedValues})
	if fsm.SecretByARN(h.txn(), taken) == nil || fsm.TombstoneByARN(h.txn(), taken) != nil {
		t.Fatalf("ReplNeedValues, yet the secret holding the name was removed (tombstone %+v)", fsm.TombstoneByARN(h.txn(), taken))
	}
	h.assertLastChangedNothing()
}

// A secret removed from replication, deleted and re-created under the same
// name in the primary: one shipment carries the drop of the old replica
// and the new secret (the shipper puts the drops in the last shipment
// with the secrets). The old replica goes, so the name is free for the
// new one.
func TestReplication_ApplyReplicated_DropFreesTheNameInTheSameShipment(t *testing.T) {
	h := replicaRegion(t)
	oldPrimary, newPrimary := arnOf("db", "111111"), arnOf("db", "222222")
	oldLocal, newLocal := replicaARN(oldPrimary, replRegion), replicaARN(newPrimary, replRegion)
	h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{
		shipped("db", "111111", 10, replValue("v1", 1, fsm.StageCurrent))}, Next: 11, Date: t0})

	out := h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{
		shipped("db", "222222", 20, replValue("v1", 2, fsm.StageCurrent))}, Drops: []string{oldLocal}, Next: 21, Date: t0 + hour})
	// Drops have no outcome: the shipper needs none.
	wantOutcomes(t, out, fsm.ReplOutcome{ARN: newPrimary, Status: fsm.ReplApplied})
	if fsm.SecretByARN(h.txn(), oldLocal) != nil {
		t.Fatal("the dropped replica is still there")
	}
	if s := fsm.SecretByName(h.txn(), "db"); s == nil || s.ARN != newLocal {
		t.Fatalf("SecretByName(db) = %+v, want the new replica %s", s, newLocal)
	}
}

func TestReplication_ApplyReplicated_Drops(t *testing.T) {
	h := replicaRegion(t)
	mine := regionARN(replRegion, "mine", "mmmmmm")       // this region's own secret
	ofUS := replicaARN(arnOf("db", "abcdef"), replRegion) // a replica of testRegion's
	ofAP := regionARN(replRegion, "ap", "pppppp")         // a replica of replRegion2's
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: mine, Name: "mine", Version: strVersionPtr("v1", "x"), Date: t0})
	h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{shipped("db", "abcdef", 40, replValue("v1", 1, fsm.StageCurrent))}, Date: t0})
	ap := shipped("ap", "pppppp", 7, replValue("v1", 2, fsm.StageCurrent))
	ap.PrimaryARN, ap.ARN = regionARN(replRegion2, "ap", "pppppp"), ofAP
	h.replicate(&fsm.ApplyReplicated{Source: replRegion2, Secrets: []fsm.ReplicatedSecret{ap}, Date: t0})
	keep := map[string]*fsm.Secret{mine: h.secret(mine), ofAP: h.secret(ofAP)}

	absent := replicaARN(arnOf("gone", "gggggg"), replRegion)
	out := h.replicate(&fsm.ApplyReplicated{Drops: []string{ofUS, ofAP, mine, absent}, Date: t0 + hour})
	at := h.index()
	wantOutcomes(t, out)
	if fsm.SecretByARN(h.txn(), ofUS) != nil {
		t.Fatal("the replica of the shipment's source was not removed")
	}
	want := fsm.Tombstone{ARN: ofUS, Name: "db", DeleteIndex: at, Date: t0 + hour}
	if tb := fsm.TombstoneByARN(h.txn(), ofUS); tb == nil || *tb != want {
		t.Fatalf("tombstone %+v, want %+v", tb, want)
	}
	for arn, before := range keep {
		if after := fsm.SecretByARN(h.txn(), arn); !reflect.DeepEqual(after, before) || fsm.TombstoneByARN(h.txn(), arn) != nil {
			t.Fatalf("a drop from %s touched %s, which is not its replica", testRegion, arn)
		}
	}
	if fsm.TombstoneByARN(h.txn(), absent) != nil {
		t.Fatal("a drop of an absent replica left a tombstone")
	}
	// The same drop again: nothing to do.
	out = h.replicate(&fsm.ApplyReplicated{Drops: []string{ofUS}, Date: t0 + 2*hour})
	wantOutcomes(t, out)
	h.assertLastChangedNothing()
}

// A shipment from another region than the replica's primary changes
// nothing and is refused for that secret.
func TestReplication_ApplyReplicated_OtherSource(t *testing.T) {
	h := replicaRegion(t)
	primary := arnOf("db", "abcdef")
	h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{shipped("db", "abcdef", 40, replValue("v1", 1, fsm.StageCurrent))}, Date: t0})
	out := h.replicate(&fsm.ApplyReplicated{Source: replRegion2, Secrets: []fsm.ReplicatedSecret{
		shipped("db", "abcdef", 90, replValue("v2", 2, fsm.StageCurrent))}, Date: t0 + hour})
	wantOutcomes(t, out, fsm.ReplOutcome{ARN: primary, Status: fsm.ReplFailed,
		Message: "Replication failed: the secret is a replica of region us-west-2."})
	h.assertLastChangedNothing()
}

func TestReplication_ApplyReplicated_ReplSources(t *testing.T) {
	h := replicaRegion(t)
	for i, step := range []struct {
		source string
		next   uint64
		want   map[string]uint64 // Applied by source; absent: no record
	}{
		{testRegion, 0, map[string]uint64{}},
		{testRegion, 10, map[string]uint64{testRegion: 10}},
		{testRegion, 20, map[string]uint64{testRegion: 20}},
		{testRegion, 15, map[string]uint64{testRegion: 20}}, // never back
		{replRegion2, 5, map[string]uint64{testRegion: 20, replRegion2: 5}},
		{testRegion, 0, map[string]uint64{testRegion: 20, replRegion2: 5}},
		{testRegion, 21, map[string]uint64{testRegion: 21, replRegion2: 5}},
	} {
		date := t0 + int64(i)*hour
		h.replicate(&fsm.ApplyReplicated{Source: step.source, Next: step.next, Date: date})
		got := map[string]uint64{}
		for _, s := range fsm.ReplSources(h.txn()) {
			got[s.Region] = s.Applied
		}
		if !reflect.DeepEqual(got, step.want) {
			t.Fatalf("step %d (%s, Next %d): Applied %v, want %v", i, step.source, step.next, got, step.want)
		}
		if step.next > 0 {
			if s := sourceOf(h, step.source); s.Date != date {
				t.Fatalf("step %d: ReplSource %s Date %d, want %d", i, step.source, s.Date, date)
			}
		} else {
			h.assertLastChangedNothing()
		}
	}
}

// ---------------------------------------------------------------------
// Client commands on a replica; PromoteReplica.

func TestReplication_ReplicaRefusesClientWrites(t *testing.T) {
	h := replicaRegion(t)
	local := replicaARN(arnOf("db", "abcdef"), replRegion)
	h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{shipped("db", "abcdef", 40,
		replValue("v1", 1, fsm.StageCurrent), replValue("v0", 2, fsm.StagePrevious))}, Date: t0})
	// A replica of a secret scheduled for deletion in its primary.
	sched := shipped("old", "oooooo", 41, replValue("v1", 3, fsm.StageCurrent))
	sched.DeletedDate, sched.DeletionDate = t0, t0+7*day
	schedLocal := sched.ARN
	h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{sched}, Date: t0})

	for _, tc := range []struct {
		name string
		ct   fsm.CommandType
		cmd  any
	}{
		{"PutSecretValue", fsm.CmdPutSecretValue, putCmd(local, "v9", nil, t0+day)},
		{"UpdateSecret metadata", fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: local, Description: sp("x"), Date: t0 + day}},
		{"UpdateSecret value", fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: local, Version: strVersionPtr("v9", "y"), Date: t0 + day}},
		{"TagResource", fsm.CmdTagResource, &fsm.TagResource{ARN: local, Tags: []fsm.Tag{{Key: "k", Value: "v"}}, Date: t0 + day}},
		{"UntagResource", fsm.CmdUntagResource, &fsm.UntagResource{ARN: local, Keys: []string{"team"}, Date: t0 + day}},
		{"DeleteSecret scheduled", fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: local, DeletionDate: t0 + 8*day, Date: t0 + day}},
		{"DeleteSecret forced", fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: local, Force: true, Date: t0 + day}},
		{"RestoreSecret", fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: local, Date: t0 + day}},
		{"RestoreSecret of a scheduled replica", fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: schedLocal, Date: t0 + day}},
		{"PutResourcePolicy", fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: local, Policy: "{}", Date: t0 + day}},
		{"DeleteResourcePolicy", fsm.CmdDeleteResourcePolicy, &fsm.DeleteResourcePolicy{ARN: local, Date: t0 + day}},
		{"UpdateSecretVersionStage", fsm.CmdUpdateSecretVersionStage, stageCmd(local, fsm.StageCurrent, "v1", "v0", t0+day)},
		{"SetReplication", fsm.CmdSetReplication, &fsm.SetReplication{ARN: local, Add: []fsm.Replica{{Region: "us-east-2"}}, Date: t0 + day}},
		{"SetReplication removing", fsm.CmdSetReplication, &fsm.SetReplication{ARN: local, Remove: []string{testRegion}, Date: t0 + day}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			h.fail(tc.ct, tc.cmd, apierr.InvalidParameter, apierr.MsgReplicaWrite)
		})
	}
	h.t = t
	wantTarget(t, h, "us-east-2", nil)
}

func TestReplication_PromoteReplica(t *testing.T) {
	h := replicaRegion(t)
	primary := arnOf("db", "abcdef")
	local := replicaARN(primary, replRegion)
	h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{shipped("db", "abcdef", 40,
		replValue("v1", 1, fsm.StageCurrent))}, Next: 41, Date: t0})
	before := h.secret(local)

	res := h.ok(fsm.CmdPromoteReplica, &fsm.PromoteReplica{ARN: local, Date: t0 + day})
	at := h.index()
	if res.ARN != local || res.Name != "db" {
		t.Fatalf("PromoteReplica answered %+v", res)
	}
	s := h.secret(local)
	if s.IsReplica() || s.PrimaryRegion != "" || s.SourceIndex != 0 || s.ModifyIndex != at || s.CreateIndex != before.CreateIndex ||
		s.LastChangedDate != t0+day {
		t.Fatalf("promoted: PrimaryRegion %q, SourceIndex %d, ModifyIndex %d (want %d), CreateIndex %d (want %d), LastChangedDate %d",
			s.PrimaryRegion, s.SourceIndex, s.ModifyIndex, at, s.CreateIndex, before.CreateIndex, s.LastChangedDate)
	}
	if !h.inFeedAfter(at-1, local) {
		t.Fatal("the promotion is not in the change feed")
	}
	// The values stay bound to the primary's ARN: they still decrypt.
	wantVersion(t, s, "v1", replEnv(1), replDigest(1), before.Version("v1").Index, fsm.StageCurrent)
	if s.Version("v1").AADARN(s) != primary {
		t.Fatalf("AAD ARN %q after the promotion, want %q", s.Version("v1").AADARN(s), primary)
	}

	// Shipments from the old primary change it no more, and say why; a
	// drop of it is not a drop of a replica.
	out := h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{shipped("db", "abcdef", 50,
		replValue("v2", 2, fsm.StageCurrent), replNoValue("v1", 1, fsm.StagePrevious))}, Date: t0 + 2*day})
	wantOutcomes(t, out, fsm.ReplOutcome{ARN: primary, Status: fsm.ReplPromoted,
		Message: "The replica was promoted to a standalone secret in its region."})
	h.assertLastChangedNothing()
	out = h.replicate(&fsm.ApplyReplicated{Drops: []string{local}, Date: t0 + 2*day})
	wantOutcomes(t, out)
	h.assertLastChangedNothing()

	// Clients write it now.
	h.ok(fsm.CmdPutSecretValue, putCmd(local, "v2", nil, t0+3*day))
	h.ok(fsm.CmdTagResource, &fsm.TagResource{ARN: local, Tags: []fsm.Tag{{Key: "k", Value: "v"}}, Date: t0 + 3*day})
	h.ok(fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: local, Description: sp("promoted"), Date: t0 + 3*day})
	h.ok(fsm.CmdUpdateSecretVersionStage, stageCmd(local, "custom", "", "v1", t0+3*day))
	h.ok(fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: local, Policy: "{}", Date: t0 + 3*day})
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: local, Add: []fsm.Replica{{Region: replRegion2}}, Date: t0 + 3*day})
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: local, Remove: []string{replRegion2}, Date: t0 + 3*day})
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: local, DeletionDate: t0 + 10*day, Date: t0 + 3*day})
	h.ok(fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: local, Date: t0 + 3*day})
	assertStages(t, h, local, map[string]L{"v1": {fsm.StagePrevious, "custom"}, "v2": {fsm.StageCurrent}})

	// Refusals.
	h.fail(fsm.CmdPromoteReplica, &fsm.PromoteReplica{ARN: local, Date: t0 + 4*day}, apierr.InvalidRequest,
		"The secret "+local+" is not a replica: there is no replication to stop.")
	mine := regionARN(replRegion, "mine", "mmmmmm")
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: mine, Name: "mine", Date: t0})
	h.fail(fsm.CmdPromoteReplica, &fsm.PromoteReplica{ARN: mine, Date: t0 + 4*day}, apierr.InvalidRequest,
		"The secret "+mine+" is not a replica: there is no replication to stop.")
	h.fail(fsm.CmdPromoteReplica, &fsm.PromoteReplica{ARN: regionARN(replRegion, "absent", "aaaaaa"), Date: t0 + 4*day},
		apierr.ResourceNotFound, apierr.MsgSecretNotFound)
}

// ---------------------------------------------------------------------
// AckReplication (the primary region).

func TestReplication_AckReplication(t *testing.T) {
	h := newHarness(t)
	resetTestRegion(h)
	a, b, c := arnOf("a", "aaaaaa"), arnOf("b", "bbbbbb"), arnOf("c", "cccccc")
	ca := createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0)
	ca.Replicas = []fsm.Replica{{Region: replRegion}, {Region: replRegion2}}
	h.ok(fsm.CmdCreateSecret, ca)
	start := h.index() - 1
	cb := createCmd("b", "bbbbbb", nil, t0)
	cb.Replicas = []fsm.Replica{{Region: replRegion}}
	h.ok(fsm.CmdCreateSecret, cb)
	cc := createCmd("c", "cccccc", nil, t0)
	cc.Replicas = []fsm.Replica{{Region: replRegion2}}
	h.ok(fsm.CmdCreateSecret, cc)
	wantTarget(t, h, replRegion, &fsm.ReplTarget{Region: replRegion, Acked: start})

	ack := func(c *fsm.AckReplication) {
		t.Helper()
		if res := h.ok(fsm.CmdAckReplication, c); res == nil {
			t.Fatal("no answer")
		}
	}

	// Progress moves the cursor forward, never back; a change only to
	// the target is a change of state (the digest sees it).
	acked := h.index()
	ack(&fsm.AckReplication{Region: replRegion, Index: acked, Date: t0 + hour})
	wantTarget(t, h, replRegion, &fsm.ReplTarget{Region: replRegion, Acked: acked, AckedDate: t0 + hour})
	if digestOf(t, h.f) == digestOf(t, h.replay(h.index())) {
		t.Fatal("an ack that moved the target left the digest as a Noop does")
	}
	ack(&fsm.AckReplication{Region: replRegion, Index: acked - 1, Date: t0 + 2*hour})
	wantTarget(t, h, replRegion, &fsm.ReplTarget{Region: replRegion, Acked: acked, AckedDate: t0 + hour})
	h.assertLastChangedNothing()
	ack(&fsm.AckReplication{Region: replRegion, Index: acked, Date: t0 + 2*hour})
	wantTarget(t, h, replRegion, &fsm.ReplTarget{Region: replRegion, Acked: acked, AckedDate: t0 + hour})
	wantTarget(t, h, replRegion2, &fsm.ReplTarget{Region: replRegion2, Acked: start})

	// Drops go once the region acknowledges the index that made them,
	// and only those; another region's stay.
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: b, Remove: []string{replRegion}, Date: t0 + 3*hour})
	dropB := h.index()
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: a, Remove: []string{replRegion, replRegion2}, Date: t0 + 3*hour})
	dropA := h.index()
	ack(&fsm.AckReplication{Region: replRegion, Index: dropB - 1, Date: t0 + 4*hour})
	wantDrops(t, h, replRegion, drop(replRegion, a, dropA), drop(replRegion, b, dropB))
	ack(&fsm.AckReplication{Region: replRegion, Index: dropB, Date: t0 + 4*hour})
	wantDrops(t, h, replRegion, drop(replRegion, a, dropA))
	wantDrops(t, h, replRegion2, drop(replRegion2, a, dropA))
	ack(&fsm.AckReplication{Region: replRegion, Index: dropA + 5, Date: t0 + 5*hour})
	wantDrops(t, h, replRegion)
	wantDrops(t, h, replRegion2, drop(replRegion2, a, dropA))
	acked = dropA + 5
	wantTarget(t, h, replRegion, &fsm.ReplTarget{Region: replRegion, Acked: acked, AckedDate: t0 + 5*hour})

	// Errors: ErrorSince stays while the region keeps failing, an ack
	// without progress does not clear it, progress does.
	ack(&fsm.AckReplication{Region: replRegion, Error: "unreachable", Date: t0 + 6*hour})
	wantTarget(t, h, replRegion, &fsm.ReplTarget{Region: replRegion, Acked: acked, AckedDate: t0 + 5*hour,
		Error: "unreachable", ErrorSince: t0 + 6*hour})
	ack(&fsm.AckReplication{Region: replRegion, Error: "connection refused", Date: t0 + 7*hour})
	wantTarget(t, h, replRegion, &fsm.ReplTarget{Region: replRegion, Acked: acked, AckedDate: t0 + 5*hour,
		Error: "connection refused", ErrorSince: t0 + 6*hour})
	ack(&fsm.AckReplication{Region: replRegion, Date: t0 + 8*hour})
	wantTarget(t, h, replRegion, &fsm.ReplTarget{Region: replRegion, Acked: acked, AckedDate: t0 + 5*hour,
		Error: "connection refused", ErrorSince: t0 + 6*hour})
	h.assertLastChangedNothing()
	ack(&fsm.AckReplication{Region: replRegion, Index: acked, Date: t0 + 9*hour})
	wantTarget(t, h, replRegion, &fsm.ReplTarget{Region: replRegion, Acked: acked, AckedDate: t0 + 5*hour})

	// A refusal by the replica region is the replica's status, not a
	// change of the secret: ModifyIndex stays, the feed does not list it.
	cMod := h.modifyIndex(c)
	msg := "Replication failed: Secret name c already exists in region ap-south-1."
	ack(&fsm.AckReplication{Region: replRegion2, Outcomes: []fsm.ReplOutcome{
		{ARN: c, Status: fsm.ReplFailed, Message: msg},
		{ARN: b, Status: fsm.ReplFailed, Message: "b is not replicated there"},
		{ARN: arnOf("absent", "zzzzzz"), Status: fsm.ReplFailed, Message: "no such secret"},
	}, Date: t0 + 10*hour})
	if r := h.secret(c).Replica(replRegion2); r == nil || r.Failure != msg {
		t.Fatalf("replica after a refusal: %+v, want Failure %q", r, msg)
	}
	if m := h.modifyIndex(c); m != cMod || h.inFeedAfter(h.index()-1, c) {
		t.Fatalf("a refusal moved ModifyIndex %d → %d (or put c in the feed)", cMod, m)
	}
	if digestOf(t, h.f) == digestOf(t, h.replay(h.index())) {
		t.Fatal("a recorded refusal left the digest as a Noop does")
	}
	if s := h.secret(b); s.Replicas != nil {
		t.Fatalf("an outcome for a region b is not replicated to changed it: %+v", s.Replicas)
	}
	// The same refusal again writes nothing.
	ack(&fsm.AckReplication{Region: replRegion2, Outcomes: []fsm.ReplOutcome{{ARN: c, Status: fsm.ReplFailed, Message: msg}}, Date: t0 + 11*hour})
	h.assertLastChangedNothing()
	// Applied later: the failure clears, still without a change of the secret.
	ack(&fsm.AckReplication{Region: replRegion2, Outcomes: []fsm.ReplOutcome{{ARN: c, Status: fsm.ReplApplied}}, Date: t0 + 12*hour})
	if r := h.secret(c).Replica(replRegion2); r == nil || r.Failure != "" {
		t.Fatalf("replica after it applied: %+v, want no Failure", r)
	}
	if m := h.modifyIndex(c); m != cMod {
		t.Fatalf("clearing the failure moved ModifyIndex %d → %d", cMod, m)
	}

	// Promoted in the replica region: the region leaves the secret's
	// replicas (a change), with no drop (the promoted secret stays).
	ack(&fsm.AckReplication{Region: replRegion2, Outcomes: []fsm.ReplOutcome{{ARN: c, Status: fsm.ReplPromoted,
		Message: "The replica was promoted to a standalone secret in its region."}}, Date: t0 + 13*hour})
	promoted := h.index()
	if s := h.secret(c); s.Replicas != nil || s.ModifyIndex != promoted || !h.inFeedAfter(promoted-1, c) {
		t.Fatalf("after the promotion: Replicas %+v, ModifyIndex %d (want %d)", s.Replicas, s.ModifyIndex, promoted)
	}
	wantDrops(t, h, replRegion2, drop(replRegion2, a, dropA))
	if fsm.ReplTargetOf(h.txn(), replRegion2) == nil {
		t.Fatal("the promotion removed the region's target")
	}
	// Now c can be deleted.
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: c, Force: true, Date: t0 + 14*hour})

	// A region this one does not ship to: nothing changes.
	d := arnOf("d", "dddddd")
	cd := createCmd("d", "dddddd", nil, t0)
	cd.Replicas = []fsm.Replica{{Region: replRegion}}
	h.ok(fsm.CmdCreateSecret, cd)
	ack(&fsm.AckReplication{Region: "us-east-2", Index: h.index(), Error: "x", Outcomes: []fsm.ReplOutcome{
		{ARN: d, Status: fsm.ReplFailed, Message: "m"}}, Date: t0 + 15*hour})
	h.assertLastChangedNothing()
	wantTarget(t, h, "us-east-2", nil)
}

// ---------------------------------------------------------------------
// Snapshots and resets.

// buildReplicationLog gives the harness's region (testRegion) every kind
// of replication state: as a primary (targets, a drop, a failure), and as
// a replica of replRegion2 (a source, replica secrets, a dropped one).
func buildReplicationLog(h *harness) (replicas []string) {
	h.t.Helper()
	resetTestRegion(h)
	a, b := arnOf("a", "aaaaaa"), arnOf("b", "bbbbbb")
	ca := createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0+1)
	ca.Replicas = []fsm.Replica{{Region: replRegion, KmsKeyID: "alias/r", Force: true}, {Region: replRegion2}}
	h.ok(fsm.CmdCreateSecret, ca)
	h.ok(fsm.CmdCreateSecret, createCmd("b", "bbbbbb", strVersionPtr("v1", "y"), t0+2))
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: b, Add: []fsm.Replica{{Region: replRegion}}, Date: t0 + 3})
	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: b, Remove: []string{replRegion}, Date: t0 + 4}) // a drop
	h.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion2, Index: 3, Date: t0 + 5})
	h.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion, Error: "unreachable", Date: t0 + 6,
		Outcomes: []fsm.ReplOutcome{{ARN: a, Status: fsm.ReplFailed, Message: "Replication failed: no."}}})

	// Replicas of replRegion2's secrets here.
	ship := func(name, suffix string, sourceIndex uint64, versions ...fsm.ReplicatedVersion) fsm.ReplicatedSecret {
		rs := shipped(name, suffix, sourceIndex, versions...)
		rs.PrimaryARN = regionARN(replRegion2, name, suffix)
		rs.ARN = arnOf(name, suffix)
		for i := range rs.Versions {
			rs.Versions[i].PrimaryARN = rs.PrimaryARN
		}
		return rs
	}
	r1 := ship("r1", "111111", 30, replValue("v1", 1, fsm.StageCurrent), replPlaceholder("v2", 2, fsm.StagePending))
	r2 := ship("r2", "222222", 31, replValue("v1", 3, fsm.StageCurrent))
	r3 := ship("r3", "333333", 32, replValue("v1", 4, fsm.StageCurrent))
	h.replicate(&fsm.ApplyReplicated{Source: replRegion2, Secrets: []fsm.ReplicatedSecret{r1, r2, r3}, Next: 33, Date: t0 + 7})
	h.replicate(&fsm.ApplyReplicated{Source: replRegion2, Drops: []string{r3.ARN}, Next: 34, Date: t0 + 8})
	h.ok(fsm.CmdRecordAccess, &fsm.RecordAccess{Day: t0 + day, Secrets: []fsm.AccessedSecret{{ARN: r1.ARN, VersionIDs: []string{"v1"}}}})
	return []string{r1.ARN, r2.ARN}
}

func TestReplication_SnapshotRestore(t *testing.T) {
	h := newHarness(t)
	replicas := buildReplicationLog(h)
	txn := h.txn()
	if len(fsm.ReplTargets(txn)) != 2 || len(fsm.ReplSources(txn)) != 1 || len(fsm.ReplDrops(txn, replRegion)) != 1 {
		t.Fatalf("the log built %d targets, %d sources, %d drops; want 2, 1, 1",
			len(fsm.ReplTargets(txn)), len(fsm.ReplSources(txn)), len(fsm.ReplDrops(txn, replRegion)))
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
	if !reflect.DeepEqual(fsm.ReplTargets(gtxn), fsm.ReplTargets(txn)) ||
		!reflect.DeepEqual(fsm.ReplSources(gtxn), fsm.ReplSources(txn)) ||
		!reflect.DeepEqual(fsm.ReplDrops(gtxn, replRegion), fsm.ReplDrops(txn, replRegion)) {
		t.Fatalf("restored replication tables differ:\n targets %+v vs %+v\n sources %+v vs %+v",
			fsm.ReplTargets(gtxn), fsm.ReplTargets(txn), fsm.ReplSources(gtxn), fsm.ReplSources(txn))
	}
	for _, arn := range append(replicas, arnOf("a", "aaaaaa")) {
		if got, want := fsm.SecretByARN(gtxn, arn), fsm.SecretByARN(txn, arn); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s restored as\n%+v\nwant\n%+v", arn, got, want)
		}
	}

	// Both go on in step.
	gh := &harness{t: t, f: g, log: slices.Clone(h.log), check: true}
	r1 := replicas[0]
	next := shipped("r1", "111111", 40, replNoValue("v1", 1, fsm.StagePrevious), replValue("v2", 2, fsm.StageCurrent))
	next.PrimaryARN, next.ARN = regionARN(replRegion2, "r1", "111111"), r1
	for i := range next.Versions {
		next.Versions[i].PrimaryARN = next.PrimaryARN
	}
	for _, e := range [][]byte{
		encode(t, fsm.CmdApplyReplicated, &fsm.ApplyReplicated{Source: replRegion2, Secrets: []fsm.ReplicatedSecret{next}, Next: 41, Date: t0 + 20}),
		encode(t, fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion, Index: 100, Date: t0 + 21,
			Outcomes: []fsm.ReplOutcome{{ARN: arnOf("a", "aaaaaa"), Status: fsm.ReplApplied}}}),
		encode(t, fsm.CmdPromoteReplica, &fsm.PromoteReplica{ARN: replicas[1], Date: t0 + 22}),
		encode(t, fsm.CmdSetReplication, &fsm.SetReplication{ARN: arnOf("a", "aaaaaa"), Remove: []string{replRegion2}, Date: t0 + 23}),
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
}

// ResetRegion forgets the region's replication state with its secrets.
func TestReplication_ResetRegionForgetsReplication(t *testing.T) {
	h := newHarness(t)
	buildReplicationLog(h)
	h.ok(fsm.CmdResetRegion, &fsm.ResetRegion{Region: testRegion, Date: t0 + 30})
	txn := h.txn()
	if n, m, d := len(fsm.ReplTargets(txn)), len(fsm.ReplSources(txn)), len(fsm.ReplDrops(txn, replRegion)); n+m+d != 0 {
		t.Fatalf("after ResetRegion: %d targets, %d sources, %d drops", n, m, d)
	}
	// An ack from before the reset finds no target: nothing to record.
	h.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion, Index: 5, Date: t0 + 31})
	h.assertLastChangedNothing()
}

// ---------------------------------------------------------------------
// ReplicationPending (what coffer dev waits for before answering a write).

func TestReplication_ReplicationPending(t *testing.T) {
	h := newHarness(t)
	resetTestRegion(h)
	a, b := arnOf("a", "aaaaaa"), arnOf("b", "bbbbbb")
	pending := func(index uint64, want bool, what string) {
		t.Helper()
		if got := fsm.ReplicationPending(h.txn(), index); got != want {
			t.Fatalf("%s: ReplicationPending(%d) = %v, want %v", what, index, got, want)
		}
	}
	h.ok(fsm.CmdCreateSecret, createCmd("b", "bbbbbb", nil, t0)) // not replicated
	pending(h.index(), false, "no target")
	ca := createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0)
	ca.Replicas = []fsm.Replica{{Region: replRegion}}
	h.ok(fsm.CmdCreateSecret, ca)
	created := h.index()
	pending(created-1, false, "before the replicated secret existed")
	pending(created, true, "a replicated secret created, not acknowledged")
	h.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion, Index: created, Date: t0 + 1})
	pending(created, false, "acknowledged")

	h.ok(fsm.CmdPutSecretValue, putCmd(b, "v1", nil, t0+2))
	pending(h.index(), false, "a change of a secret that is not replicated")
	h.ok(fsm.CmdPutSecretValue, putCmd(a, "v2", nil, t0+3))
	put := h.index()
	pending(put, true, "a value put, not acknowledged")
	pending(created, false, "an index the region acknowledged")

	h.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion, Error: "unreachable", Date: t0 + 4})
	pending(put, false, "a region that cannot be reached is not waited for")
	h.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion, Index: put, Date: t0 + 5})
	pending(put, false, "acknowledged")

	h.ok(fsm.CmdSetReplication, &fsm.SetReplication{ARN: a, Remove: []string{replRegion}, Date: t0 + 6})
	removed := h.index()
	pending(removed, true, "a drop not acknowledged")
	h.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion, Index: removed, Date: t0 + 7})
	pending(removed, false, "the drop acknowledged")
}

// A change that a later change of the same secret superseded is still
// not acknowledged: waiting for it must wait for the region.
func TestReplication_ReplicationPending_SupersededChange(t *testing.T) {
	h := newHarness(t)
	a := arnOf("a", "aaaaaa")
	ca := createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0)
	ca.Replicas = []fsm.Replica{{Region: replRegion}}
	h.ok(fsm.CmdCreateSecret, ca)
	h.ok(fsm.CmdAckReplication, &fsm.AckReplication{Region: replRegion, Index: h.index(), Date: t0 + 1})
	h.ok(fsm.CmdPutSecretValue, putCmd(a, "v2", nil, t0+2))
	first := h.index()
	h.ok(fsm.CmdPutSecretValue, putCmd(a, "v3", nil, t0+3)) // a's ModifyIndex moves past first
	if !fsm.ReplicationPending(h.txn(), first) {
		t.Fatalf("ReplicationPending(%d) = false, though a changed at %d and %s acknowledged only %d",
			first, first, replRegion, fsm.ReplTargetOf(h.txn(), replRegion).Acked)
	}
}

// ApplyReplicated with Force replaces this region's secret of the same
// name. When that secret is itself a primary with replicas, removing it
// must not orphan them: either it is refused, as DeleteSecret refuses, or
// its regions get drops.
func TestReplication_ApplyReplicated_ForceOverAPrimaryWithReplicas(t *testing.T) {
	h := replicaRegion(t)
	taken := regionARN(replRegion, "db", "zzzzzz")
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: taken, Name: "db", Version: strVersionPtr("v1", "mine"), Date: t0,
		Replicas: []fsm.Replica{{Region: "us-east-2"}}})
	rs := shipped("db", "abcdef", 40, replValue("v1", 1, fsm.StageCurrent))
	rs.Force = true
	out := h.replicate(&fsm.ApplyReplicated{Secrets: []fsm.ReplicatedSecret{rs}, Date: t0 + hour})
	if fsm.SecretByARN(h.txn(), taken) == nil {
		t.Fatalf("outcomes %+v: %s, a primary replicated to us-east-2, was removed", out, taken)
	}
	if len(out) != 1 || out[0].Status != fsm.ReplFailed || !strings.Contains(out[0].Message, "replica regions of its own") {
		t.Fatalf("outcomes %+v, want ReplFailed saying the secret has replicas of its own", out)
	}
}
