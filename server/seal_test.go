package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server/servertest"
)

// sysCall posts (or gets, with a nil body) a seal endpoint and decodes the
// answer; it returns the HTTP status and the error type and message, if any.
func sysCall(t *testing.T, endpoint, path string, body any, out any) (int, string, string) {
	t.Helper()
	return adminCall(t, endpoint, path, body, out, false)
}

// adminCall posts (or gets, with a nil body) an operator endpoint, signed
// by the root identity when signed is set, and decodes the answer into
// out on a 200; it returns the HTTP status and the error type and
// message, if any.
func adminCall(t testing.TB, endpoint, path string, body, out any, signed bool) (int, string, string) {
	t.Helper()
	return adminCallIn(t, endpoint, servertest.Region, path, body, out, signed)
}

// adminCallIn is adminCall scoped to region.
func adminCallIn(t testing.TB, endpoint, regionName, path string, body, out any, signed bool) (int, string, string) {
	t.Helper()
	var creds *region.Credentials
	if signed {
		creds = &servertest.Credentials
	}
	return adminCallAs(t, endpoint, regionName, creds, path, body, out)
}

// adminCallAs is an admin call signed with creds (nil: unsigned); body nil
// is a GET. It answers the status, the error type and the message, and
// decodes a 200's body into out.
func adminCallAs(t testing.TB, endpoint, regionName string, creds *region.Credentials, path string, body, out any) (int, string, string) {
	t.Helper()
	method, payload := http.MethodGet, []byte(nil)
	if body != nil {
		payload, _ = json.Marshal(body)
		method = http.MethodPost
	}
	req, _ := http.NewRequest(method, endpoint+path, bytes.NewReader(payload))
	if creds != nil {
		acl.Sign(req, payload, creds.AccessKeyID, creds.SecretAccessKey, regionName, "coffer", time.Now())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	json.NewDecoder(resp.Body).Decode(&raw)
	var e struct {
		Type    string `json:"__type"`
		Message string
	}
	json.Unmarshal(raw, &e)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, e.Type, e.Message
}

// A node started without a root key is sealed: every API call, signed or
// not, gets ServiceUnavailable saying so (never an authentication
// error), while health and the seal endpoints answer. `init` through the
// API unseals it and hands out the shares and the root key pair once.
func TestAPI_SealedNodeSaysSoUntilInitialized(t *testing.T) {
	l := servertest.NewLocal(t, func(c *region.Config) { c.RootKey = nil })
	_, err := l.Client().ListSecrets(ctxT(t), &secretsmanager.ListSecretsInput{})
	if apiCode(err) != apierr.ServiceUnavailable || !strings.Contains(err.Error(), "node is sealed: the region is not initialized") {
		t.Fatalf("ListSecrets on a sealed node: %v", err)
	}
	var st region.SealStatus
	if code, _, _ := sysCall(t, l.Endpoint, "/v1/sys/seal-status", nil, &st); code != 200 || !st.Sealed || st.Initialized {
		t.Fatalf("seal-status: %d %+v", code, st)
	}
	if resp, err := http.Get(l.Endpoint + "/v1/health"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("health of a sealed node: %v %v", resp, err)
	}
	if code, typ, _ := sysCall(t, l.Endpoint, "/v1/sys/unseal", map[string]string{"key": "x"}, nil); code != 400 || typ != apierr.InvalidRequest {
		t.Fatalf("unseal before init: %d %s", code, typ)
	}
	if code, typ, _ := sysCall(t, l.Endpoint, "/v1/sys/init", map[string]int{"key_shares": 3, "key_threshold": 5}, nil); code != 400 || typ != apierr.InvalidParameter {
		t.Fatalf("init with threshold above shares: %d %s", code, typ)
	}
	var out region.InitResult
	if code, typ, msg := sysCall(t, l.Endpoint, "/v1/sys/init", map[string]int{"key_shares": 5, "key_threshold": 3}, &out); code != 200 {
		t.Fatalf("init: %d %s %s", code, typ, msg)
	}
	if len(out.Shares) != 5 || out.Credentials == nil {
		t.Fatalf("init answer: %+v", out)
	}
	if _, err := l.Client().ListSecrets(ctxT(t), &secretsmanager.ListSecretsInput{}); err != nil {
		t.Fatalf("ListSecrets after init: %v", err)
	}
	if code, typ, _ := sysCall(t, l.Endpoint, "/v1/sys/init", map[string]int{"key_shares": 5, "key_threshold": 3}, nil); code != 400 || typ != apierr.InvalidRequest {
		t.Fatalf("second init: %d %s", code, typ)
	}
	if code, typ, msg := sysCall(t, l.Endpoint, "/v1/sys/unseal", map[string]string{"key": out.Shares[0]}, nil); code != 400 || !strings.Contains(msg, "already unsealed") {
		t.Fatalf("unseal of an unsealed node: %d %s %s", code, typ, msg)
	}
	// Rekey needs the root identity's signature.
	if code, typ, _ := sysCall(t, l.Endpoint, "/v1/sys/rekey", map[string]int{"key_shares": 5, "key_threshold": 3}, nil); code != 403 && typ != apierr.MissingAuthenticationTok {
		t.Fatalf("unsigned rekey: %d %s", code, typ)
	}
}

// On a 3-node cluster: after a rekey into 5 shares of which 3 unseal, a
// node restarted without the root key stays sealed and says so; 2 shares
// do not unseal it, the third does, and it then serves reads of what was
// written while it was down.
func TestCluster_RestartedNodeStaysSealedUntilThresholdShares(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	out, err := c.Nodes[c.Leader()].Region.Rekey(ctx, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	victim := c.Followers()[0]
	c.Kill(victim)
	if _, err := c.Client(c.Leader()).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("while-down"), SecretString: aws.String("v")}); err != nil {
		t.Fatal(err)
	}
	c.RootKey = nil // the node comes back without its key file
	c.Restart(victim)
	ep := c.Nodes[victim].Endpoint
	c.Eventually(10*time.Second, "the restarted node to replay its state", func() bool {
		var st region.SealStatus
		sysCall(t, ep, "/v1/sys/seal-status", nil, &st)
		return st.Initialized
	})
	_, err = c.Client(victim).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("while-down")})
	if apiCode(err) != apierr.ServiceUnavailable || !strings.Contains(err.Error(), "node is sealed: give it 3 of the 5 unseal shares") {
		t.Fatalf("a read on the restarted node: %v", err)
	}
	for i, share := range out.Shares[1:3] {
		var st region.SealStatus
		if code, typ, msg := sysCall(t, ep, "/v1/sys/unseal", map[string]string{"key": share}, &st); code != 200 || !st.Sealed || st.Progress != i+1 {
			t.Fatalf("share %d: %d %s %s %+v", i+1, code, typ, msg, st)
		}
	}
	if _, err := c.Client(victim).ListSecrets(ctx, &secretsmanager.ListSecretsInput{}); apiCode(err) != apierr.ServiceUnavailable {
		t.Fatalf("after 2 of 3 shares: %v", err)
	}
	var st region.SealStatus
	if code, typ, msg := sysCall(t, ep, "/v1/sys/unseal", map[string]string{"key": out.Shares[4]}, &st); code != 200 || st.Sealed {
		t.Fatalf("third share: %d %s %s %+v", code, typ, msg, st)
	}
	got, err := c.Client(victim).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("while-down")})
	if err != nil || aws.ToString(got.SecretString) != "v" {
		t.Fatalf("read after unseal: %v", err)
	}
}
