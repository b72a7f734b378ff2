package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/server/servertest"
)

// A user's key made through the admin API signs Secrets Manager calls on
// a follower at once; Inactive or deleted, it is refused exactly as an
// unknown key; its last use shows after a flush; every bad input gets
// IAM's code and status and changes nothing; a user cannot call the
// admin API.
func TestIAM_UserKeysAndAdminAPI(t *testing.T) {
	c := servertest.New(t, 3, servertest.Options{TuneRegion: func(rc *region.Config) { rc.AccessFlushInterval = 100 * time.Millisecond }})
	leader := c.Nodes[c.Leader()].Endpoint
	follower := c.Nodes[c.Followers()[0]].Endpoint
	root := servertest.Credentials
	ok := func(path string, body, out any) {
		t.Helper()
		if code, typ, msg := adminCallAs(t, leader, servertest.Region, &root, path, body, out); code != http.StatusOK {
			t.Fatalf("%s %v: %d %s %s", path, body, code, typ, msg)
		}
	}
	var user server.UserInfo
	ok("/v1/iam/users", map[string]string{"name": "bob", "path": "/ops/"}, &user)
	if user.ARN != "arn:aws:iam::000000000000:user/ops/bob" || !strings.HasPrefix(user.UserID, "AIDA") || len(user.UserID) != 20 {
		t.Fatalf("created %+v", user)
	}
	var key server.NewAccessKey
	ok("/v1/iam/keys", map[string]string{"user": "bob"}, &key)
	if !strings.HasPrefix(key.AccessKeyID, "AKIA") || len(key.SecretAccessKey) != 40 || key.Status != "Active" || key.User != "bob" {
		t.Fatalf("key %+v", key)
	}
	bob := region.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}
	ctx := ctxT(t)
	// The key signs on a follower at once: bob is known, and refused by
	// authorization (no policy allows him anything), not by SigV4.
	if _, err := servertest.NewClient(follower, c.Name, bob, 0).ListSecrets(ctx, &secretsmanager.ListSecretsInput{}); apiCode(err) != apierr.AccessDenied ||
		apiMessage(err) != "User: arn:aws:iam::000000000000:user/ops/bob is not authorized to perform: secretsmanager:ListSecrets because no identity-based policy allows the secretsmanager:ListSecrets action" {
		t.Fatalf("bob's new key on a follower: %v", err)
	}
	// The secret is never stored in plaintext.
	for _, n := range c.Nodes {
		var snap bytes.Buffer
		if _, err := n.Region.SaveSnapshot(&snap); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(snap.Bytes(), []byte(key.SecretAccessKey)) {
			t.Fatal("the secret access key is in the state")
		}
	}
	// Last used: noted on the follower, flushed within the interval.
	c.Eventually(10*time.Second, "LastUsedDate", func() bool {
		var keys struct {
			AccessKeys []server.AccessKeyInfo `json:"access_keys"`
		}
		adminCallAs(t, leader, servertest.Region, &root, "/v1/iam/keys?user=bob", nil, &keys)
		return len(keys.AccessKeys) == 1 && keys.AccessKeys[0].LastUsedDate > 0
	})

	// No policy allows bob an admin action.
	if code, typ, msg := adminCallAs(t, follower, servertest.Region, &bob, "/v1/iam/users", nil, nil); code != 400 || typ != apierr.AccessDenied ||
		msg != "User: arn:aws:iam::000000000000:user/ops/bob is not authorized to perform: coffer:ListUsers because no identity-based policy allows the coffer:ListUsers action" {
		t.Fatalf("bob on the admin API: %d %s %s", code, typ, msg)
	}
	if code, typ, msg := adminCallAs(t, leader, servertest.Region, &bob, "/v1/iam/policy/attach", map[string]string{"policy": "p", "group": "g"}, nil); code != 400 ||
		typ != apierr.AccessDenied || msg != "User: arn:aws:iam::000000000000:user/ops/bob is not authorized to perform: coffer:AttachGroupPolicy because no identity-based policy allows the coffer:AttachGroupPolicy action" {
		t.Fatalf("bob attaching: %d %s %s", code, typ, msg)
	}

	// What an unknown key gets.
	unknown := region.GenerateCredentials()
	_, err := servertest.NewClient(leader, c.Name, unknown, 0).ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
	if apiCode(err) != apierr.UnrecognizedClient {
		t.Fatalf("unknown key: %v", err)
	}
	refusedLikeUnknown := func(endpoint string) bool {
		_, e := servertest.NewClient(endpoint, c.Name, bob, 0).ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
		return e != nil && apiCode(e) == apiCode(err) && apiMessage(e) == apiMessage(err)
	}
	var updated server.AccessKeyInfo
	ok("/v1/iam/key/update", map[string]string{"access_key_id": bob.AccessKeyID, "status": "Inactive"}, &updated)
	if updated.Status != "Inactive" {
		t.Fatalf("updated %+v", updated)
	}
	if !refusedLikeUnknown(leader) {
		t.Fatal("an Inactive key signed on the leader")
	}
	c.Eventually(5*time.Second, "the Inactive key refused on the follower", func() bool { return refusedLikeUnknown(follower) })
	ok("/v1/iam/key/update", map[string]string{"access_key_id": bob.AccessKeyID, "status": "Active"}, &updated)
	if refusedLikeUnknown(leader) {
		t.Fatal("the key active again is refused")
	}

	// Bad input: each refused with IAM's code and status, nothing changed.
	ok("/v1/iam/keys", map[string]string{"user": "bob"}, nil)
	ok("/v1/iam/groups", map[string]string{"name": "ops"}, nil)
	ok("/v1/iam/group/add-user", map[string]string{"group": "ops", "user": "bob"}, nil)
	ok("/v1/iam/policies", map[string]string{"name": "read", "document": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`}, nil)
	ok("/v1/iam/policy/attach", map[string]string{"policy": "read", "group": "ops"}, nil)
	state := func() string {
		var all []any
		for _, p := range []string{"/v1/iam/users", "/v1/iam/groups", "/v1/iam/policies", "/v1/iam/keys?user=bob", "/v1/iam/user?name=bob"} {
			var out any
			ok(p, nil, &out)
			all = append(all, out)
		}
		raw, _ := json.Marshal(all)
		return string(raw)
	}
	// bob's key signs nothing from here on: flush every node's notes of
	// its use, so LastUsedDate stays as it is.
	for _, n := range c.Nodes {
		if err := n.Region.FlushAccess(ctx); err != nil {
			t.Fatal(err)
		}
	}
	before := state()
	for _, tc := range []struct {
		path      string
		body      map[string]string
		status    int
		code, msg string
		msgPrefix bool
	}{
		{"/v1/iam/keys", map[string]string{"user": "nobody"}, 404, apierr.NoSuchEntity, "The user with name nobody cannot be found.", false},
		{"/v1/iam/users", map[string]string{"name": "bob"}, 409, apierr.EntityAlreadyExists, "User with name bob already exists.", false},
		{"/v1/iam/users", map[string]string{"name": "root"}, 400, apierr.ValidationError, "The user name root is reserved: it is the region's root identity.", false},
		{"/v1/iam/users", map[string]string{"name": "bad name"}, 400, apierr.ValidationError,
			`1 validation error detected: Value 'bad name' at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]+`, false},
		{"/v1/iam/users", map[string]string{"name": "carol", "path": "ops"}, 400, apierr.ValidationError, "1 validation error detected: Value 'ops' at 'path'", true},
		{"/v1/iam/groups", map[string]string{"name": "ops"}, 409, apierr.EntityAlreadyExists, "Group with name ops already exists.", false},
		{"/v1/iam/keys", map[string]string{"user": "bob"}, 409, apierr.IAMLimitExceeded, "Cannot exceed quota for AccessKeysPerUser: 2", false},
		{"/v1/iam/user/delete", map[string]string{"name": "bob"}, 409, apierr.DeleteConflict, "Cannot delete entity, must delete access keys first.", false},
		{"/v1/iam/group/delete", map[string]string{"name": "ops"}, 409, apierr.DeleteConflict, "Cannot delete entity, must remove users from group first.", false},
		{"/v1/iam/policy/delete", map[string]string{"name": "read"}, 409, apierr.DeleteConflict, "Cannot delete a policy attached to entities.", false},
		{"/v1/iam/policies", map[string]string{"name": "bad", "document": "not json"}, 400, apierr.IAMMalformedPolicyDocument,
			"Syntax errors in policy. The policy must be a JSON object.", false},
		{"/v1/iam/policies", map[string]string{"name": "bad", "document": `{"Statement":[]}`}, 400, apierr.IAMMalformedPolicyDocument,
			"Syntax errors in policy. Statement must not be empty.", false},
		{"/v1/iam/policies", map[string]string{"name": "bad", "document": `{"Statement":{"Effect":"Allow"},"Pad":"` + strings.Repeat("x", 6200) + `"}`}, 400,
			apierr.IAMMalformedPolicyDocument, "Syntax errors in policy. The policy is ", true},
		{"/v1/iam/policy/update", map[string]string{"name": "read", "document": "{}"}, 400, apierr.IAMMalformedPolicyDocument,
			"Syntax errors in policy. The policy has no Statement.", false},
		{"/v1/iam/policies", map[string]string{"name": "bad", "document": `{"Statement":{}}`}, 400, apierr.IAMMalformedPolicyDocument,
			"Syntax errors in policy. Statement 1: Effect must be \"Allow\" or \"Deny\". Statement 1: the statement has no Action. Statement 1: the statement has no Resource.", false},
		{"/v1/iam/policies", map[string]string{"name": "read", "document": `{"Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}`}, 409, apierr.EntityAlreadyExists,
			"A policy called read already exists. Duplicate names are not allowed.", false},
		{"/v1/iam/policy/attach", map[string]string{"policy": "nope", "user": "bob"}, 404, apierr.NoSuchEntity,
			"Policy arn:aws:iam::000000000000:policy/nope does not exist or is not attachable.", false},
		{"/v1/iam/policy/attach", map[string]string{"policy": "read"}, 400, apierr.ValidationError, "Name exactly one of a user and a group.", false},
		{"/v1/iam/group/add-user", map[string]string{"group": "nope", "user": "bob"}, 404, apierr.NoSuchEntity, "The group with name nope cannot be found.", false},
		{"/v1/iam/key/update", map[string]string{"access_key_id": bob.AccessKeyID, "status": "Off"}, 400, apierr.ValidationError,
			"1 validation error detected: Value 'Off' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]", false},
		{"/v1/iam/key/delete", map[string]string{"access_key_id": root.AccessKeyID}, 400, apierr.ValidationError,
			"The access key " + root.AccessKeyID + " belongs to the region's root identity, which IAM does not manage: it cannot be updated or deleted here.", false},
		{"/v1/iam/key/delete", map[string]string{"access_key_id": "AKIANOTAKEY"}, 404, apierr.NoSuchEntity, "The Access Key with id AKIANOTAKEY cannot be found.", false},
	} {
		status, code, msg := adminCallAs(t, follower, servertest.Region, &root, tc.path, tc.body, nil)
		if status != tc.status || code != tc.code || (msg != tc.msg && !(tc.msgPrefix && strings.HasPrefix(msg, tc.msg))) {
			t.Errorf("%s %v: %d %s %q\nwant %d %s %q", tc.path, tc.body, status, code, msg, tc.status, tc.code, tc.msg)
		}
	}
	if code, typ, msg := adminCallAs(t, follower, servertest.Region, &root, "/v1/iam/user?name=nobody", nil, nil); code != 404 || typ != apierr.NoSuchEntity ||
		msg != "The user with name nobody cannot be found." {
		t.Errorf("GET unknown user: %d %s %s", code, typ, msg)
	}
	if after := state(); after != before {
		t.Fatalf("a refusal changed the state:\n%s\n%s", before, after)
	}
	var described server.UserInfo
	ok("/v1/iam/user?name=bob", nil, &described)
	if len(described.AccessKeys) != 2 || strings.Join(described.Groups, ",") != "ops" {
		t.Fatalf("described %+v", described)
	}

	// Deleted, the key is refused as an unknown one, on every node.
	ok("/v1/iam/key/delete", map[string]string{"access_key_id": bob.AccessKeyID}, nil)
	if !refusedLikeUnknown(leader) {
		t.Fatal("a deleted key signed")
	}
	c.Eventually(5*time.Second, "the deleted key refused on the follower", func() bool { return refusedLikeUnknown(follower) })
	// The root identity as the authorization slice will see it.
	caller, found := c.Nodes[0].Region.Caller("root")
	if !found || !caller.Root || caller.ARN != "arn:aws:iam::000000000000:root" || caller.UserID != "000000000000" {
		t.Fatalf("root caller %+v", caller)
	}
	c.Eventually(5*time.Second, "bob's policies on every node", func() bool {
		for _, n := range c.Nodes {
			cl, found := n.Region.Caller("bob")
			if !found || cl.Root || cl.UserName != "bob" || cl.ARN != user.ARN || len(cl.Policies) != 1 || !strings.Contains(cl.Policies[0], "GetSecretValue") {
				return false
			}
		}
		return true
	})
}
