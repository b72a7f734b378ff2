package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server/servertest"
)

// runOperator runs `coffer operator ARGS...` in-process.
func runOperator(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := rootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(append([]string{"operator"}, args...))
	err := cmd.Execute()
	return out.String(), err
}

// The seal commands against a node started without a root key: init
// prints the shares and the root key pair once, seal-status reports,
// unseal refuses on an unsealed node with the server's message, and rekey
// (signed with the root credentials from the environment) prints new
// shares.
func TestOperator_InitSealStatusUnsealRekey(t *testing.T) {
	l := servertest.NewLocal(t, func(c *region.Config) { c.RootKey = nil })
	ep := []string{"--endpoint", l.Endpoint}

	out, err := runOperator(t, "", append([]string{"seal-status"}, ep...)...)
	if err != nil || !strings.Contains(squash(out), "Initialized false Sealed true") {
		t.Fatalf("seal-status before init: %v\n%s", err, out)
	}
	out, err = runOperator(t, "", append([]string{"init", "--key-shares", "5", "--key-threshold", "3", "--format", "json"}, ep...)...)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	var res region.InitResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Shares) != 5 || res.Credentials == nil {
		t.Fatalf("init output: %v\n%s", err, out)
	}
	out, err = runOperator(t, res.Shares[0]+"\n", append([]string{"unseal"}, ep...)...)
	if err == nil || !strings.Contains(err.Error(), "InvalidRequestException: this node is already unsealed") {
		t.Fatalf("unseal of an unsealed node: %v\n%s", err, out)
	}
	out, err = runOperator(t, "", append([]string{"seal-status"}, ep...)...)
	if err != nil || !strings.Contains(squash(out), "Sealed false Shares 5 Threshold 3") {
		t.Fatalf("seal-status after init: %v\n%s", err, out)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", res.Credentials.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", res.Credentials.SecretAccessKey)
	t.Setenv("AWS_REGION", servertest.Region)
	out, err = runOperator(t, "", append([]string{"rekey", "--key-shares", "3", "--key-threshold", "2"}, ep...)...)
	if err != nil || strings.Count(out, "Unseal share ") != 3 || !strings.Contains(out, "Rekeyed with 3 shares and a threshold of 2") {
		t.Fatalf("rekey: %v\n%s", err, out)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-key-wrong-secret-key-wrong0")
	if _, err := runOperator(t, "", append([]string{"rekey"}, ep...)...); err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") && !strings.Contains(err.Error(), "InvalidSignature") {
		t.Fatalf("rekey with a wrong key: %v", err)
	}
}

// squash joins the words of a table with single spaces.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

// --insecure-plaintext leaves the cluster port's TLS a nil interface: a
// nil *Reloader inside one would be called on the first connection.
func TestSecurity_InsecurePlaintextLeavesClusterPortPlain(t *testing.T) {
	sec, err := loadSecurity(&serverFlags{insecurePlaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	if sec.clusterTLS() != nil || sec.api != nil || sec.gossipKey != nil {
		t.Fatalf("plaintext security carries material: %+v", sec)
	}
}
