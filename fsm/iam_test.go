package fsm_test

import (
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
)

func iamARN(kind, name string) string { return fsm.IAMARN(testAccount, kind, "/", name) }

func newUser(name string) *fsm.CreateUser {
	return &fsm.CreateUser{User: fsm.User{Name: name, UserID: "AIDA" + name, Path: "/", ARN: iamARN("user", name)}, Date: t0}
}

func newGroup(name string) *fsm.CreateGroup {
	return &fsm.CreateGroup{Group: fsm.Group{Name: name, GroupID: "AGPA" + name, Path: "/", ARN: iamARN("group", name)}, Date: t0}
}

func newPolicy(name, doc string) *fsm.CreatePolicy {
	return &fsm.CreatePolicy{Policy: fsm.ManagedPolicy{Name: name, PolicyID: "ANPA" + name, Path: "/", ARN: iamARN("policy", name),
		Document: doc}, Date: t0}
}

func newKey(user, id string) *fsm.CreateAccessKey {
	return &fsm.CreateAccessKey{UserName: user, AccessKeyID: id, SealedSecret: []byte("sealed " + id), KEKID: "kek-1", CreatedDate: t0}
}

// iamHarness is a harness with an initialized region (root key AKIAROOT).
func iamHarness(t *testing.T) *harness {
	h := newHarness(t)
	h.ok(fsm.CmdInitRegion, &fsm.InitRegion{Region: testRegion, AccountID: testAccount, KEKID: "kek-1", SealedKeyring: []byte("k"),
		RootKey: fsm.AccessKey{AccessKeyID: "AKIAROOT", Identity: "root", SealedSecret: []byte{1}, CreatedDate: t0}, Date: t0})
	return h
}

func iamSamples() map[fsm.CommandType]any {
	return map[fsm.CommandType]any{
		fsm.CmdCreateUser: &fsm.CreateUser{User: fsm.User{Name: "bob", UserID: "AIDAEXAMPLE", Path: "/ops/", ARN: "arn:aws:iam::123456789012:user/ops/bob",
			CreatedDate: t0, Groups: []string{"g"}, Policies: []string{"p"}}, Date: t0},
		fsm.CmdDeleteUser: &fsm.DeleteUser{Name: "bob"},
		fsm.CmdCreateGroup: &fsm.CreateGroup{Group: fsm.Group{Name: "g", GroupID: "AGPAEXAMPLE", Path: "/", ARN: "arn:aws:iam::123456789012:group/g",
			CreatedDate: t0, Policies: []string{"p"}}, Date: t0},
		fsm.CmdDeleteGroup:         &fsm.DeleteGroup{Name: "g"},
		fsm.CmdAddUserToGroup:      &fsm.AddUserToGroup{UserName: "bob", GroupName: "g"},
		fsm.CmdRemoveUserFromGroup: &fsm.RemoveUserFromGroup{UserName: "bob", GroupName: "g"},
		fsm.CmdCreatePolicy: &fsm.CreatePolicy{Policy: fsm.ManagedPolicy{Name: "p", PolicyID: "ANPAEXAMPLE", Path: "/", ARN: "arn:aws:iam::123456789012:policy/p",
			Description: "d", Document: `{"Statement":[]}`, CreatedDate: t0, UpdatedDate: t0}, Date: t0},
		fsm.CmdUpdatePolicy:    &fsm.UpdatePolicy{Name: "p", Document: "{}", Date: t0 + 1},
		fsm.CmdDeletePolicy:    &fsm.DeletePolicy{Name: "p"},
		fsm.CmdAttachPolicy:    &fsm.AttachPolicy{UserName: "bob", GroupName: "g", PolicyName: "p"},
		fsm.CmdDetachPolicy:    &fsm.DetachPolicy{UserName: "bob", GroupName: "g", PolicyName: "p"},
		fsm.CmdCreateAccessKey: &fsm.CreateAccessKey{UserName: "bob", AccessKeyID: "AKIABOB", SealedSecret: []byte{1, 2}, KEKID: "kek-1", CreatedDate: t0},
		fsm.CmdUpdateAccessKey: &fsm.UpdateAccessKey{AccessKeyID: "AKIABOB", Status: "Inactive"},
		fsm.CmdDeleteAccessKey: &fsm.DeleteAccessKey{AccessKeyID: "AKIABOB"},
		fsm.CmdRecordKeyUse:    &fsm.RecordKeyUse{Uses: []fsm.KeyUse{{AccessKeyID: "AKIABOB", Date: t0 + 2}}},
	}
}

func TestIAM_UsersAndGroups(t *testing.T) {
	h := iamHarness(t)
	res := h.ok(fsm.CmdCreateUser, newUser("bob"))
	if res.ARN != "arn:aws:iam::123456789012:user/bob" || res.Name != "bob" {
		t.Fatalf("CreateUser answered %+v", res)
	}
	h.fail(fsm.CmdCreateUser, newUser("bob"), apierr.EntityAlreadyExists, "User with name bob already exists.")
	h.fail(fsm.CmdCreateUser, newUser("root"), apierr.ValidationError, "The user name root is reserved: it is the region's root identity.")
	h.fail(fsm.CmdCreateUser, newUser("bad name"), apierr.ValidationError,
		`1 validation error detected: Value 'bad name' at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]+`)
	long := string(bytes.Repeat([]byte("a"), 65))
	h.fail(fsm.CmdCreateUser, newUser(long), apierr.ValidationError,
		"1 validation error detected: Value '"+long+"' at 'userName' failed to satisfy constraint: Member must have length less than or equal to 64")
	badPath := newUser("carol")
	badPath.User.Path = "ops"
	h.fail(fsm.CmdCreateUser, badPath, apierr.ValidationError,
		`1 validation error detected: Value 'ops' at 'path' failed to satisfy constraint: Member must satisfy regular expression pattern: (\u002F)|(\u002F[\u0021-\u007E]+\u002F)`)

	h.ok(fsm.CmdCreateGroup, newGroup("ops"))
	h.ok(fsm.CmdCreateGroup, newGroup("admins"))
	h.fail(fsm.CmdCreateGroup, newGroup("ops"), apierr.EntityAlreadyExists, "Group with name ops already exists.")
	h.fail(fsm.CmdAddUserToGroup, &fsm.AddUserToGroup{UserName: "nobody", GroupName: "ops"}, apierr.NoSuchEntity, "The user with name nobody cannot be found.")
	h.fail(fsm.CmdAddUserToGroup, &fsm.AddUserToGroup{UserName: "bob", GroupName: "nope"}, apierr.NoSuchEntity, "The group with name nope cannot be found.")
	h.ok(fsm.CmdAddUserToGroup, &fsm.AddUserToGroup{UserName: "bob", GroupName: "ops"})
	h.ok(fsm.CmdAddUserToGroup, &fsm.AddUserToGroup{UserName: "bob", GroupName: "admins"})
	h.ok(fsm.CmdAddUserToGroup, &fsm.AddUserToGroup{UserName: "bob", GroupName: "ops"}) // again: a success
	h.assertLastChangedNothing()
	u, _ := fsm.UserByName(h.txn(), "bob")
	if !slices.Equal(u.Groups, []string{"admins", "ops"}) || u.CreatedDate != t0 || u.UserID != "AIDAbob" {
		t.Fatalf("user %+v", u)
	}
	if m, _ := fsm.GroupMembers(h.txn(), "ops"); len(m) != 1 || m[0].Name != "bob" {
		t.Fatalf("members of ops: %v", m)
	}
	h.fail(fsm.CmdDeleteGroup, &fsm.DeleteGroup{Name: "ops"}, apierr.DeleteConflict, "Cannot delete entity, must remove users from group first.")
	h.fail(fsm.CmdDeleteUser, &fsm.DeleteUser{Name: "bob"}, apierr.DeleteConflict, "Cannot delete entity, must remove users from group first.")
	h.fail(fsm.CmdDeleteUser, &fsm.DeleteUser{Name: "nobody"}, apierr.NoSuchEntity, "The user with name nobody cannot be found.")
	h.fail(fsm.CmdDeleteGroup, &fsm.DeleteGroup{Name: "nope"}, apierr.NoSuchEntity, "The group with name nope cannot be found.")
	h.ok(fsm.CmdRemoveUserFromGroup, &fsm.RemoveUserFromGroup{UserName: "bob", GroupName: "ops"})
	h.fail(fsm.CmdRemoveUserFromGroup, &fsm.RemoveUserFromGroup{UserName: "bob", GroupName: "ops"}, apierr.NoSuchEntity,
		"The user with name bob is not in the group with name ops.")
	if m, _ := fsm.GroupMembers(h.txn(), "ops"); len(m) != 0 {
		t.Fatalf("members of ops after removal: %v", m)
	}
	h.ok(fsm.CmdDeleteGroup, &fsm.DeleteGroup{Name: "ops"})
	h.ok(fsm.CmdRemoveUserFromGroup, &fsm.RemoveUserFromGroup{UserName: "bob", GroupName: "admins"})
	h.ok(fsm.CmdDeleteUser, &fsm.DeleteUser{Name: "bob"})
	if u, _ := fsm.UserByName(h.txn(), "bob"); u != nil {
		t.Fatal("bob is still there")
	}
	// The quota of groups per user.
	h.ok(fsm.CmdCreateUser, newUser("dan"))
	for i := range fsm.MaxGroupsPerUser {
		name := string(rune('a'+i)) + "g"
		h.ok(fsm.CmdCreateGroup, newGroup(name))
		h.ok(fsm.CmdAddUserToGroup, &fsm.AddUserToGroup{UserName: "dan", GroupName: name})
	}
	h.fail(fsm.CmdAddUserToGroup, &fsm.AddUserToGroup{UserName: "dan", GroupName: "admins"}, apierr.IAMLimitExceeded, "Cannot exceed quota for GroupsPerUser: 10")
}

func TestIAM_Policies(t *testing.T) {
	h := iamHarness(t)
	h.ok(fsm.CmdCreateUser, newUser("bob"))
	h.ok(fsm.CmdCreateGroup, newGroup("ops"))
	h.ok(fsm.CmdCreatePolicy, newPolicy("read", `{"Statement":[{"Effect":"Allow"}]}`))
	h.fail(fsm.CmdCreatePolicy, newPolicy("read", "{}"), apierr.EntityAlreadyExists, "A policy called read already exists. Duplicate names are not allowed.")
	long := string(bytes.Repeat([]byte("p"), 129))
	h.fail(fsm.CmdCreatePolicy, newPolicy(long, "{}"), apierr.ValidationError,
		"1 validation error detected: Value '"+long+"' at 'policyName' failed to satisfy constraint: Member must have length less than or equal to 128")
	h.ok(fsm.CmdCreatePolicy, newPolicy(long[:128], "{}"))

	h.ok(fsm.CmdUpdatePolicy, &fsm.UpdatePolicy{Name: "read", Document: `{"Statement":[]}`, Date: t0 + hour})
	p, _ := fsm.PolicyByName(h.txn(), "read")
	if p.Document != `{"Statement":[]}` || p.UpdatedDate != t0+hour || p.CreatedDate != t0 {
		t.Fatalf("policy %+v", p)
	}
	h.fail(fsm.CmdUpdatePolicy, &fsm.UpdatePolicy{Name: "nope", Document: "{}"}, apierr.NoSuchEntity,
		"Policy arn:aws:iam::123456789012:policy/nope was not found.")

	h.fail(fsm.CmdAttachPolicy, &fsm.AttachPolicy{UserName: "bob", PolicyName: "nope"}, apierr.NoSuchEntity,
		"Policy arn:aws:iam::123456789012:policy/nope does not exist or is not attachable.")
	h.fail(fsm.CmdAttachPolicy, &fsm.AttachPolicy{UserName: "eve", PolicyName: "read"}, apierr.NoSuchEntity, "The user with name eve cannot be found.")
	h.fail(fsm.CmdAttachPolicy, &fsm.AttachPolicy{GroupName: "x", PolicyName: "read"}, apierr.NoSuchEntity, "The group with name x cannot be found.")
	h.fail(fsm.CmdAttachPolicy, &fsm.AttachPolicy{UserName: "bob", GroupName: "ops", PolicyName: "read"}, apierr.ValidationError,
		"Name exactly one of a user and a group.")
	h.ok(fsm.CmdAttachPolicy, &fsm.AttachPolicy{UserName: "bob", PolicyName: "read"})
	h.ok(fsm.CmdAttachPolicy, &fsm.AttachPolicy{GroupName: "ops", PolicyName: "read"})
	h.ok(fsm.CmdAttachPolicy, &fsm.AttachPolicy{GroupName: "ops", PolicyName: "read"})
	h.assertLastChangedNothing()
	h.fail(fsm.CmdDeletePolicy, &fsm.DeletePolicy{Name: "read"}, apierr.DeleteConflict, "Cannot delete a policy attached to entities.")
	h.fail(fsm.CmdDeleteUser, &fsm.DeleteUser{Name: "bob"}, apierr.DeleteConflict, "Cannot delete entity, must detach all policies first.")
	h.fail(fsm.CmdDeleteGroup, &fsm.DeleteGroup{Name: "ops"}, apierr.DeleteConflict, "Cannot delete entity, must detach all policies first.")
	users, groups, _ := fsm.PolicyAttachments(h.txn(), "read")
	if len(users) != 1 || len(groups) != 1 {
		t.Fatalf("attachments %v %v", users, groups)
	}
	h.ok(fsm.CmdDetachPolicy, &fsm.DetachPolicy{UserName: "bob", PolicyName: "read"})
	h.fail(fsm.CmdDetachPolicy, &fsm.DetachPolicy{UserName: "bob", PolicyName: "read"}, apierr.NoSuchEntity,
		"Policy arn:aws:iam::123456789012:policy/read was not found.")
	h.fail(fsm.CmdDeletePolicy, &fsm.DeletePolicy{Name: "read"}, apierr.DeleteConflict, "Cannot delete a policy attached to entities.")
	h.ok(fsm.CmdDetachPolicy, &fsm.DetachPolicy{GroupName: "ops", PolicyName: "read"})
	h.ok(fsm.CmdDeletePolicy, &fsm.DeletePolicy{Name: "read"})
	h.fail(fsm.CmdDeletePolicy, &fsm.DeletePolicy{Name: "read"}, apierr.NoSuchEntity, "Policy arn:aws:iam::123456789012:policy/read was not found.")
	h.ok(fsm.CmdDeleteUser, &fsm.DeleteUser{Name: "bob"})
	h.ok(fsm.CmdDeleteGroup, &fsm.DeleteGroup{Name: "ops"})

	// The quota of policies per user.
	h.ok(fsm.CmdCreateUser, newUser("dan"))
	for i := range fsm.MaxPoliciesPerEntity {
		name := string(rune('a'+i)) + "p"
		h.ok(fsm.CmdCreatePolicy, newPolicy(name, "{}"))
		h.ok(fsm.CmdAttachPolicy, &fsm.AttachPolicy{UserName: "dan", PolicyName: name})
	}
	h.fail(fsm.CmdAttachPolicy, &fsm.AttachPolicy{UserName: "dan", PolicyName: long[:128]}, apierr.IAMLimitExceeded, "Cannot exceed quota for PoliciesPerUser: 10")
}

func TestIAM_AccessKeys(t *testing.T) {
	h := iamHarness(t)
	h.fail(fsm.CmdCreateAccessKey, newKey("bob", "AKIABOB1"), apierr.NoSuchEntity, "The user with name bob cannot be found.")
	h.ok(fsm.CmdCreateUser, newUser("bob"))
	h.ok(fsm.CmdCreateAccessKey, newKey("bob", "AKIABOB1"))
	h.fail(fsm.CmdCreateAccessKey, newKey("bob", "AKIABOB1"), apierr.EntityAlreadyExists, "Access key with id AKIABOB1 already exists.")
	h.ok(fsm.CmdCreateAccessKey, newKey("bob", "AKIABOB2"))
	h.fail(fsm.CmdCreateAccessKey, newKey("bob", "AKIABOB3"), apierr.IAMLimitExceeded, "Cannot exceed quota for AccessKeysPerUser: 2")
	k := fsm.LookupAccessKey(h.txn(), "AKIABOB1")
	if k.Identity != "bob" || k.UserName != "bob" || !k.Active() || k.StatusName() != "Active" || string(k.SealedSecret) != "sealed AKIABOB1" {
		t.Fatalf("key %+v", k)
	}
	if keys, _ := fsm.UserAccessKeys(h.txn(), "bob"); len(keys) != 2 || keys[0].AccessKeyID != "AKIABOB1" {
		t.Fatalf("bob's keys %v", keys)
	}
	h.fail(fsm.CmdDeleteUser, &fsm.DeleteUser{Name: "bob"}, apierr.DeleteConflict, "Cannot delete entity, must delete access keys first.")

	h.ok(fsm.CmdUpdateAccessKey, &fsm.UpdateAccessKey{AccessKeyID: "AKIABOB1", Status: "Inactive"})
	if k := fsm.LookupAccessKey(h.txn(), "AKIABOB1"); k.Active() || k.StatusName() != "Inactive" {
		t.Fatalf("key %+v", k)
	}
	h.fail(fsm.CmdUpdateAccessKey, &fsm.UpdateAccessKey{AccessKeyID: "AKIABOB1", Status: "Off"}, apierr.ValidationError,
		"1 validation error detected: Value 'Off' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]")
	h.fail(fsm.CmdUpdateAccessKey, &fsm.UpdateAccessKey{AccessKeyID: "AKIANONE", Status: "Active"}, apierr.NoSuchEntity,
		"The Access Key with id AKIANONE cannot be found.")
	rootMsg := "The access key AKIAROOT belongs to the region's root identity, which IAM does not manage: it cannot be updated or deleted here."
	h.fail(fsm.CmdUpdateAccessKey, &fsm.UpdateAccessKey{AccessKeyID: "AKIAROOT", Status: "Inactive"}, apierr.ValidationError, rootMsg)
	h.fail(fsm.CmdDeleteAccessKey, &fsm.DeleteAccessKey{AccessKeyID: "AKIAROOT"}, apierr.ValidationError, rootMsg)
	h.fail(fsm.CmdDeleteAccessKey, &fsm.DeleteAccessKey{AccessKeyID: "AKIANONE"}, apierr.NoSuchEntity, "The Access Key with id AKIANONE cannot be found.")
	h.ok(fsm.CmdUpdateAccessKey, &fsm.UpdateAccessKey{AccessKeyID: "AKIABOB1", Status: "Active"})
	if k := fsm.LookupAccessKey(h.txn(), "AKIABOB1"); !k.Active() || k.Status != "" {
		t.Fatalf("key %+v", k)
	}

	// Last use moves forward only, skips keys that are gone and the root key.
	h.ok(fsm.CmdRecordKeyUse, &fsm.RecordKeyUse{Uses: []fsm.KeyUse{{AccessKeyID: "AKIABOB1", Date: t0 + 10}, {AccessKeyID: "AKIAGONE", Date: t0}}})
	h.ok(fsm.CmdRecordKeyUse, &fsm.RecordKeyUse{Uses: []fsm.KeyUse{{AccessKeyID: "AKIABOB1", Date: t0 + 5}}})
	h.assertLastChangedNothing()
	h.ok(fsm.CmdRecordKeyUse, &fsm.RecordKeyUse{Uses: []fsm.KeyUse{{AccessKeyID: "AKIAROOT", Date: t0 + 5}}})
	h.assertLastChangedNothing()
	if k := fsm.LookupAccessKey(h.txn(), "AKIABOB1"); k.LastUsedDate != t0+10 {
		t.Fatalf("last used %d", k.LastUsedDate)
	}

	h.ok(fsm.CmdDeleteAccessKey, &fsm.DeleteAccessKey{AccessKeyID: "AKIABOB1"})
	h.ok(fsm.CmdDeleteAccessKey, &fsm.DeleteAccessKey{AccessKeyID: "AKIABOB2"})
	if fsm.LookupAccessKey(h.txn(), "AKIABOB1") != nil || fsm.LookupAccessKey(h.txn(), "AKIAROOT") == nil {
		t.Fatal("keys after delete")
	}
	h.ok(fsm.CmdDeleteUser, &fsm.DeleteUser{Name: "bob"})
}

// A user's policies: its own, then its groups', each once.
func TestIAM_CallerPolicies(t *testing.T) {
	h := iamHarness(t)
	h.ok(fsm.CmdCreateUser, newUser("bob"))
	h.ok(fsm.CmdCreateGroup, newGroup("ops"))
	h.ok(fsm.CmdCreateGroup, newGroup("dev"))
	for _, p := range []string{"a", "b", "c"} {
		h.ok(fsm.CmdCreatePolicy, newPolicy(p, "doc-"+p))
	}
	if got := fsm.CallerPolicies(h.txn(), "bob"); len(got) != 0 {
		t.Fatalf("no policies yet: %v", got)
	}
	h.ok(fsm.CmdAttachPolicy, &fsm.AttachPolicy{UserName: "bob", PolicyName: "b"})
	h.ok(fsm.CmdAttachPolicy, &fsm.AttachPolicy{GroupName: "ops", PolicyName: "b"})
	h.ok(fsm.CmdAttachPolicy, &fsm.AttachPolicy{GroupName: "ops", PolicyName: "c"})
	h.ok(fsm.CmdAttachPolicy, &fsm.AttachPolicy{GroupName: "dev", PolicyName: "a"})
	if got := fsm.CallerPolicies(h.txn(), "bob"); !slices.Equal(got, []string{"doc-b"}) {
		t.Fatalf("without groups: %v", got)
	}
	h.ok(fsm.CmdAddUserToGroup, &fsm.AddUserToGroup{UserName: "bob", GroupName: "ops"})
	h.ok(fsm.CmdAddUserToGroup, &fsm.AddUserToGroup{UserName: "bob", GroupName: "dev"})
	// bob's own b, then dev's a, then ops' b (again: dropped) and c.
	if got := fsm.CallerPolicies(h.txn(), "bob"); !slices.Equal(got, []string{"doc-b", "doc-a", "doc-c"}) {
		t.Fatalf("with groups: %v", got)
	}
	h.ok(fsm.CmdUpdatePolicy, &fsm.UpdatePolicy{Name: "a", Document: "doc-a2", Date: t0 + 1})
	if got := fsm.CallerPolicies(h.txn(), "bob"); !slices.Equal(got, []string{"doc-b", "doc-a2", "doc-c"}) {
		t.Fatalf("after update: %v", got)
	}
	if got := fsm.CallerPolicies(h.txn(), "nobody"); got != nil {
		t.Fatalf("unknown user: %v", got)
	}
}

// The IAM tables survive a snapshot (records 11-13) and a replay, and a
// reset of the region keeps them.
func TestIAM_SnapshotReplayAndReset(t *testing.T) {
	h := iamHarness(t)
	h.ok(fsm.CmdCreateUser, newUser("bob"))
	h.ok(fsm.CmdCreateGroup, newGroup("ops"))
	h.ok(fsm.CmdCreatePolicy, newPolicy("read", "{}"))
	h.ok(fsm.CmdAddUserToGroup, &fsm.AddUserToGroup{UserName: "bob", GroupName: "ops"})
	h.ok(fsm.CmdAttachPolicy, &fsm.AttachPolicy{GroupName: "ops", PolicyName: "read"})
	h.ok(fsm.CmdCreateAccessKey, newKey("bob", "AKIABOB1"))
	h.ok(fsm.CmdUpdateAccessKey, &fsm.UpdateAccessKey{AccessKeyID: "AKIABOB1", Status: "Inactive"})
	h.ok(fsm.CmdRecordKeyUse, &fsm.RecordKeyUse{Uses: []fsm.KeyUse{{AccessKeyID: "AKIABOB1", Date: t0 + 9}}})
	h.ok(fsm.CmdCreateSecret, createCmd("s", "ssssss", strVersionPtr("v1", "x"), t0))
	want := digestOf(t, h.f)
	if got := digestOf(t, h.replay()); got != want {
		t.Fatalf("replay digest %s, want %s", got, want)
	}
	snap := snapshotBytes(t, h.f)
	for _, rec := range []byte{11, 12, 13} {
		if !bytes.Contains(snap, []byte{rec}) {
			t.Fatalf("no record %d in the snapshot", rec)
		}
	}
	restored := fsm.New(nil)
	if err := restored.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, restored); got != want {
		t.Fatalf("restored digest %s, want %s", got, want)
	}
	check := func(what string, f *fsm.FSM) {
		t.Helper()
		txn, _ := f.ReadTxn()
		u, _ := fsm.UserByName(txn, "bob")
		g, _ := fsm.GroupByName(txn, "ops")
		p, _ := fsm.PolicyByName(txn, "read")
		k := fsm.LookupAccessKey(txn, "AKIABOB1")
		if u == nil || !slices.Equal(u.Groups, []string{"ops"}) || g == nil || !slices.Equal(g.Policies, []string{"read"}) || p == nil ||
			k == nil || k.Active() || k.LastUsedDate != t0+9 {
			t.Fatalf("%s: %+v %+v %+v %+v", what, u, g, p, k)
		}
		if m, _ := fsm.GroupMembers(txn, "ops"); len(m) != 1 {
			t.Fatalf("%s: members %v", what, m)
		}
		if got := fsm.CallerPolicies(txn, "bob"); !slices.Equal(got, []string{"{}"}) {
			t.Fatalf("%s: caller policies %v", what, got)
		}
	}
	check("restored", restored)
	h.ok(fsm.CmdResetRegion, &fsm.ResetRegion{Region: testRegion, Date: t0 + 1})
	if fsm.SecretByName(h.txn(), "s") != nil {
		t.Fatal("the reset kept the secret")
	}
	check("after reset", h.f)
}

// IdentityGeneration moves with every committed change to users, groups,
// policies and attachments, and with a restore, and not otherwise: the
// server keeps each caller's parsed policies while it stays put.
func TestIAM_IdentityGeneration(t *testing.T) {
	h := iamHarness(t)
	gen := h.f.IdentityGeneration()
	moved := func(what string, want bool) {
		t.Helper()
		now := h.f.IdentityGeneration()
		if (now != gen) != want {
			t.Fatalf("%s: generation %d → %d, want moved=%v", what, gen, now, want)
		}
		gen = now
	}
	h.ok(fsm.CmdCreateUser, newUser("bob"))
	moved("CreateUser", true)
	h.ok(fsm.CmdCreatePolicy, newPolicy("read", `{"Statement":[]}`))
	moved("CreatePolicy", true)
	h.ok(fsm.CmdAttachPolicy, &fsm.AttachPolicy{UserName: "bob", PolicyName: "read"})
	moved("AttachPolicy", true)
	h.ok(fsm.CmdUpdatePolicy, &fsm.UpdatePolicy{Name: "read", Document: `{"Statement":[{}]}`, Date: t0 + 1})
	moved("UpdatePolicy", true)
	h.fail(fsm.CmdCreateUser, newUser("bob"), apierr.EntityAlreadyExists, "User with name bob already exists.")
	moved("a refused CreateUser", true) // conservative: a refused IAM entry still counts
	h.ok(fsm.CmdCreateAccessKey, newKey("bob", "AKIABOB"))
	h.ok(fsm.CmdRecordKeyUse, &fsm.RecordKeyUse{Uses: []fsm.KeyUse{{AccessKeyID: "AKIABOB", Date: t0 + 2}}})
	h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnOf("s", "aB3dE6"), Name: "s", Date: t0})
	moved("access keys and secrets", false)
	g := fsm.New(nil)
	before := g.IdentityGeneration()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, h.f)))); err != nil || g.IdentityGeneration() == before {
		t.Fatalf("restore: %v, generation %d → %d", err, before, g.IdentityGeneration())
	}
}
