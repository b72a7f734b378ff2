package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server/servertest"
)

// runKey runs `coffer key ARGS...` in-process.
func runKey(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := rootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"key"}, args...))
	err := cmd.Execute()
	return out.String(), err
}

// The key commands against an unsealed local region, signed with its root
// credentials: create with an alias, list, describe by alias and by ARN,
// rotate, disable and enable (a secret under the key is unreadable and
// unwritable meanwhile), a second alias created and deleted, and an
// unknown key refused with the server's message.
func TestKey_Commands(t *testing.T) {
	l := servertest.NewLocal(t)
	t.Setenv("AWS_ACCESS_KEY_ID", servertest.Credentials.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", servertest.Credentials.SecretAccessKey)
	t.Setenv("AWS_REGION", servertest.Region)
	ep := []string{"--endpoint", l.Endpoint}
	run := func(args ...string) string {
		t.Helper()
		out, err := runKey(t, append(args, ep...)...)
		if err != nil {
			t.Fatalf("coffer key %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	describe := func(ref string) region.KeyInfo {
		t.Helper()
		var k region.KeyInfo
		if out := run("describe", ref, "--format", "json"); json.Unmarshal([]byte(out), &k) != nil {
			t.Fatalf("describe %s --format json:\n%s", ref, out)
		}
		return k
	}

	// create: JSON, then the table of describe.
	var k region.KeyInfo
	out := run("create", "--description", "payments service", "--alias", "alias/payments", "--format", "json")
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.KeyID == "" || !k.Enabled || k.Default ||
		k.CurrentVersion != 1 || len(k.Versions) != 1 || len(k.Aliases) != 1 || k.Aliases[0] != "alias/payments" ||
		k.ARN != "arn:aws:kms:"+servertest.Region+":"+l.Region.AccountID()+":key/"+k.KeyID {
		t.Fatalf("create --format json: %v\n%s", err, out)
	}
	created := time.UnixMilli(k.CreatedDate).UTC().Format(time.RFC3339)

	// A secret under the key, named by the alias.
	sm := l.Client()
	ctx := context.Background()
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("db"),
		SecretString: aws.String("v1"), KmsKeyId: aws.String("alias/payments")}); err != nil {
		t.Fatal(err)
	}

	// list: the default key first, then the new one.
	out = squash(run("list"))
	if !strings.HasPrefix(out, "KEY ID ALIASES ENABLED VERSION SECRETS REWRAP PENDING default alias/aws/secretsmanager true 1 0 0 ") ||
		!strings.Contains(out, k.KeyID+" alias/payments true 1 1 0") {
		t.Fatalf("list:\n%s", out)
	}
	var keys []region.KeyInfo
	out = run("list", "--format", "json")
	if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 2 || keys[0].KeyID != "default" || !keys[0].Default || keys[1].KeyID != k.KeyID {
		t.Fatalf("list --format json: %v\n%s", err, out)
	}

	// describe by alias (table) and by ARN.
	out = squash(run("describe", "alias/payments"))
	want := "Key ID " + k.KeyID + " ARN " + k.ARN + " Description payments service Enabled true Default false Aliases alias/payments Created " + created +
		" Current version 1 Secrets 1 Version 1 created " + created + " data keys 1 Re-wrap complete"
	if out != want {
		t.Fatalf("describe alias/payments:\n%s\nwant:\n%s", out, want)
	}
	if d := describe(k.ARN); d.KeyID != k.KeyID {
		t.Fatalf("describe by ARN: %+v", d)
	}

	// rotate: version 2 is current; the leader re-wraps the secret's data
	// key under it.
	out = squash(run("rotate", k.KeyID))
	if !strings.Contains(out, "Current version 2") || !strings.Contains(out, "Version 2 created") {
		t.Fatalf("rotate:\n%s", out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for d := describe("alias/payments"); d.RewrapPending != 0 || d.Versions[1].DataKeys != 1; d = describe("alias/payments") {
		if time.Now().After(deadline) {
			t.Fatalf("the re-wrap did not finish: %+v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// disable: the secret is neither readable nor writable; enable: it is.
	out = squash(run("disable", "alias/payments"))
	if !strings.Contains(out, "Enabled false") {
		t.Fatalf("disable:\n%s", out)
	}
	if _, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("db")}); err == nil || !strings.Contains(err.Error(), "DecryptionFailure") {
		t.Fatalf("read under a disabled key: %v", err)
	}
	if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("db"), SecretString: aws.String("v2")}); err == nil || !strings.Contains(err.Error(), "EncryptionFailure") {
		t.Fatalf("write under a disabled key: %v", err)
	}
	out = squash(run("enable", k.ARN))
	if !strings.Contains(out, "Enabled true") {
		t.Fatalf("enable:\n%s", out)
	}
	if v, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("db")}); err != nil || aws.ToString(v.SecretString) != "v1" {
		t.Fatalf("read after enable: %v", err)
	}

	// A second alias, named through the first, then deleted.
	out = squash(run("alias", "alias/billing", "alias/payments"))
	if !strings.Contains(out, "Key ID "+k.KeyID) || !strings.Contains(out, "Aliases alias/billing, alias/payments") {
		t.Fatalf("alias:\n%s", out)
	}
	if d := describe("alias/billing"); d.KeyID != k.KeyID {
		t.Fatalf("describe alias/billing: %+v", d)
	}
	out = run("alias", "--delete", "alias/billing")
	if !strings.Contains(out, "Alias alias/billing deleted.") {
		t.Fatalf("alias --delete:\n%s", out)
	}
	if d := describe(k.KeyID); len(d.Aliases) != 1 || d.Aliases[0] != "alias/payments" {
		t.Fatalf("aliases after the delete: %+v", d.Aliases)
	}

	// Refusals carry the server's message.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"describe", "alias/billing"}, `no key "alias/billing" in this region`},
		{[]string{"rotate", "no-such-key"}, `no key "no-such-key" in this region`},
		{[]string{"disable", "default"}, "the default key (alias/aws/secretsmanager) cannot be disabled"},
		{[]string{"alias", "alias/x", "no-such-key"}, `no key "no-such-key" in this region`},
	} {
		out, err := runKey(t, append(tc.args, ep...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("coffer key %s: %v, want %q\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
	for _, args := range [][]string{{"describe"}, {"rotate", "a", "b"}, {"create", "x"}, {"alias", "alias/x"}, {"alias", "--delete", "alias/x", "k"}} {
		if _, err := runKey(t, append(args, ep...)...); err == nil {
			t.Errorf("coffer key %s: no error", strings.Join(args, " "))
		}
	}
}

// Each key command's help states what it must.
func TestKey_Help(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{"", []string{"key-encryption keys", "KmsKeyId", "arn:aws:kms:REGION:ACCOUNT:key/ID", "alias/NAME", "alias/aws/secretsmanager", `"default"`, "AWS_ACCESS_KEY_ID", "AWS_REGION", "--region"}},
		{"create", []string{"--alias", "--description", "coffer key create"}},
		{"list", []string{"default key", "JSON array", "coffer key list"}},
		{"describe", []string{"data keys", "re-wrapped", "coffer key describe"}},
		{"rotate", []string{"new version", "re-wraps", "coffer key rotate"}},
		{"disable", []string{"(DecryptionFailure)", "(EncryptionFailure)", "enabled again", "default key", "cannot be disabled", "coffer key disable"}},
		{"enable", []string{"(DecryptionFailure)", "(EncryptionFailure)", "coffer key enable"}},
		{"alias", []string{"--delete", "fixed when its KmsKeyId is set", "does not move existing secrets", "coffer key alias"}},
	} {
		args := []string{"--help"}
		if tc.cmd != "" {
			args = []string{tc.cmd, "--help"}
		}
		out, err := runKey(t, args...)
		if err != nil {
			t.Fatalf("coffer key %s --help: %v", tc.cmd, err)
		}
		flat := squash(out)
		for _, w := range tc.want {
			if !strings.Contains(flat, w) {
				t.Errorf("coffer key %s --help lacks %q:\n%s", tc.cmd, w, out)
			}
		}
	}
}
