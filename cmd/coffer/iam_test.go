package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/server/servertest"
)

// runIAM runs `coffer iam ARGS...` in-process, with stdin.
func runIAM(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := rootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(append([]string{"iam"}, args...))
	err := cmd.Execute()
	return out.String(), err
}

// The iam commands against a local region, signed with its root
// credentials: a user, a key (printed once, in the credentials JSON shape
// with --format json, and working with the SDK), a group, a policy from a
// file, stdin and inline JSON, attached; describe shows them all; the JSON
// output parses; a refusal exits non-zero with the server's message.
func TestIAM_Commands(t *testing.T) {
	l := servertest.NewLocal(t)
	t.Setenv("AWS_ACCESS_KEY_ID", servertest.Credentials.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", servertest.Credentials.SecretAccessKey)
	t.Setenv("AWS_REGION", servertest.Region)
	ep := []string{"--endpoint", l.Endpoint}
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, err := runIAM(t, stdin, append(args, ep...)...)
		if err != nil {
			t.Fatalf("coffer iam %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	if out := run("", "user", "create", "bob", "--path", "/ops/"); !strings.Contains(out, "arn:aws:iam::000000000000:user/ops/bob") {
		t.Fatalf("user create printed:\n%s", out)
	}
	out := run("", "key", "create", "bob")
	if !strings.Contains(out, "cannot be shown again") || !strings.Contains(out, "AWS_SECRET_ACCESS_KEY=") {
		t.Fatalf("key create printed:\n%s", out)
	}
	var creds struct {
		Version         int
		AccessKeyId     string //nolint:revive // AWS's spelling
		SecretAccessKey string
	}
	if err := json.Unmarshal([]byte(run("", "key", "create", "bob", "--format", "json")), &creds); err != nil ||
		creds.Version != 1 || !strings.HasPrefix(creds.AccessKeyId, "AKIA") || len(creds.SecretAccessKey) != 40 {
		t.Fatalf("key create --format json: %v %+v", err, creds)
	}
	cl := servertest.NewClient(l.Endpoint, servertest.Region, region.Credentials{AccessKeyID: creds.AccessKeyId, SecretAccessKey: creds.SecretAccessKey}, 0)
	// The new key signs: bob is refused by authorization (no policy yet),
	// not by SigV4.
	if _, err := cl.ListSecrets(t.Context(), &secretsmanager.ListSecretsInput{}); err == nil || !strings.Contains(err.Error(), "AccessDeniedException: User: arn:aws:iam::000000000000:user/ops/bob is not authorized") {
		t.Fatalf("the new key does not sign: %v", err)
	}
	if out, err := runIAM(t, "", append([]string{"key", "create", "bob"}, ep...)...); err == nil ||
		!strings.Contains(err.Error(), "LimitExceeded: Cannot exceed quota for AccessKeysPerUser: 2") {
		t.Fatalf("a third key: %v\n%s", err, out)
	}
	run("", "key", "update", creds.AccessKeyId, "--status", "Inactive")
	if out := run("", "key", "list", "bob"); !strings.Contains(out, creds.AccessKeyId+"  Inactive") {
		t.Fatalf("key list:\n%s", out)
	}

	run("", "group", "create", "readers")
	run("", "group", "add-user", "readers", "bob")
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`
	file := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	run("", "policy", "create", "read-file", "--document", file, "--description", "from a file")
	run(doc, "policy", "create", "read-stdin", "--document", "-")
	run("", "policy", "create", "read-inline", "--document", doc)
	run("", "policy", "attach", "read-file", "--group", "readers")
	run("", "policy", "attach", "read-inline", "--user", "bob")
	if out, err := runIAM(t, "", append([]string{"policy", "create", "bad", "--document", "{}"}, ep...)...); err == nil ||
		!strings.Contains(err.Error(), "MalformedPolicyDocument: Syntax errors in policy.") {
		t.Fatalf("a malformed policy: %v\n%s", err, out)
	}
	if out, err := runIAM(t, "", append([]string{"policy", "attach", "read-file"}, ep...)...); err == nil {
		t.Fatalf("attach without --user or --group succeeded:\n%s", out)
	}

	out = run("", "user", "describe", "bob")
	for _, want := range []string{"user/ops/bob", "readers", "read-inline", creds.AccessKeyId, "Inactive"} {
		if !strings.Contains(out, want) {
			t.Fatalf("user describe lacks %q:\n%s", want, out)
		}
	}
	var user server.UserInfo
	if err := json.Unmarshal([]byte(run("", "user", "describe", "bob", "--format", "json")), &user); err != nil ||
		len(user.AccessKeys) != 2 || strings.Join(user.Groups, ",") != "readers" || strings.Join(user.Policies, ",") != "read-inline" {
		t.Fatalf("user describe --format json: %v %+v", err, user)
	}
	var group server.GroupInfo
	if err := json.Unmarshal([]byte(run("", "group", "describe", "readers", "--format", "json")), &group); err != nil ||
		strings.Join(group.Members, ",") != "bob" || strings.Join(group.Policies, ",") != "read-file" {
		t.Fatalf("group describe: %v %+v", err, group)
	}
	var policies []server.PolicyInfo
	if err := json.Unmarshal([]byte(run("", "policy", "list", "--format", "json")), &policies); err != nil || len(policies) != 3 ||
		policies[0].Name != "read-file" || policies[0].Description != "from a file" || policies[0].Document != doc ||
		strings.Join(policies[0].AttachedGroups, ",") != "readers" || policies[1].Document != doc {
		t.Fatalf("policy list: %v %+v", err, policies)
	}
	if out := run("", "policy", "describe", "read-inline"); !strings.Contains(out, "Users        bob") && !strings.Contains(out, "bob") {
		t.Fatalf("policy describe:\n%s", out)
	}
	var users []server.UserInfo
	if err := json.Unmarshal([]byte(run("", "user", "list", "--format", "json")), &users); err != nil || len(users) != 1 {
		t.Fatalf("user list: %v %+v", err, users)
	}
	if out, err := runIAM(t, "", append([]string{"user", "delete", "bob"}, ep...)...); err == nil ||
		!strings.Contains(err.Error(), "DeleteConflict: Cannot delete entity, must delete access keys first.") {
		t.Fatalf("deleting bob with keys: %v\n%s", err, out)
	}
	// Everything undone, in the order IAM requires.
	for _, k := range user.AccessKeys {
		run("", "key", "delete", k.AccessKeyID)
	}
	run("", "policy", "detach", "read-inline", "--user", "bob")
	run("", "group", "remove-user", "readers", "bob")
	run("", "policy", "detach", "read-file", "--group", "readers")
	run("", "group", "delete", "readers")
	run("", "policy", "update", "read-file", "--document", `{"Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}`)
	run("", "policy", "delete", "read-file")
	if out := run("", "user", "delete", "bob"); !strings.Contains(out, "Deleted user bob.") {
		t.Fatalf("user delete printed:\n%s", out)
	}
	if out := run("", "user", "list"); strings.Contains(out, "bob") {
		t.Fatalf("bob is still listed:\n%s", out)
	}
}
