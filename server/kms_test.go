package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server/servertest"
)

// keyCall sends a key admin call (server/keys.go) as the root identity:
// a GET when body is nil.
func keyCall(t *testing.T, endpoint, path string, body, out any) (int, string, string) {
	t.Helper()
	return adminCall(t, endpoint, path, body, out, true)
}

func describeKey(t *testing.T, endpoint, key string) region.KeyInfo {
	t.Helper()
	var info region.KeyInfo
	if code, typ, msg := keyCall(t, endpoint, "/v1/key?key="+url.QueryEscape(key), nil, &info); code != 200 {
		t.Fatalf("describe %s: %d %s %s", key, code, typ, msg)
	}
	return info
}

// Customer keys through the real SDK on a 3-node cluster: a secret names
// its key by alias, id, key ARN or alias ARN, on any node right after the
// key was created on another; an unknown key is EncryptionFailure; a
// disabled key blocks reading (DecryptionFailure) and writing
// (EncryptionFailure) its secrets on every node until it is enabled, and
// leaves the other secrets alone; UpdateSecret moves a secret's data keys
// to another key.
func TestCluster_CustomerKeys(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	f := c.Followers()
	var key region.KeyInfo
	if code, typ, msg := keyCall(t, c.Nodes[f[0]].Endpoint, "/v1/keys", map[string]string{"description": "app", "alias": "alias/app"}, &key); code != 200 {
		t.Fatalf("create key: %d %s %s", code, typ, msg)
	}
	if key.KeyID == "" || key.ARN != fsm.KeyARN(servertest.Region, region.DefaultAccountID, key.KeyID) || !key.Enabled ||
		key.CurrentVersion != 1 || len(key.Aliases) != 1 || key.Aliases[0] != "alias/app" {
		t.Fatalf("created key: %+v", key)
	}
	aliasARN := "arn:aws:kms:" + servertest.Region + ":" + region.DefaultAccountID + ":alias/app"
	cl := c.Client(f[1]) // another node than the one that created the key
	for name, kms := range map[string]string{"by-alias": "alias/app", "by-id": key.KeyID, "by-arn": key.ARN, "by-alias-arn": aliasARN} {
		if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), KmsKeyId: aws.String(kms), SecretString: aws.String("v-" + name)}); err != nil {
			t.Fatalf("CreateSecret with KmsKeyId %s: %v", kms, err)
		}
	}
	if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("plain"), SecretString: aws.String("v-plain")}); err != nil {
		t.Fatal(err)
	}
	for _, kms := range []string{"alias/nope", "1234abcd-0000-0000-0000-000000000000", "arn:aws:kms:eu-west-1:" + region.DefaultAccountID + ":key/" + key.KeyID} {
		_, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bad"), KmsKeyId: aws.String(kms), SecretString: aws.String("x")})
		if apiCode(err) != apierr.EncryptionFailure || !strings.Contains(err.Error(), "can't find the specified KMS key") {
			t.Fatalf("CreateSecret with unknown key %s: %v", kms, err)
		}
	}
	if _, err := cl.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("bad")}); apiCode(err) != apierr.ResourceNotFound {
		t.Fatalf("a refused CreateSecret left a secret: %v", err)
	}
	d, err := cl.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("by-alias")})
	if err != nil || aws.ToString(d.KmsKeyId) != "alias/app" {
		t.Fatalf("DescribeSecret KmsKeyId = %q, %v", aws.ToString(d.KmsKeyId), err)
	}
	if d, _ := cl.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("plain")}); d.KmsKeyId != nil {
		t.Fatalf("a secret on the default key shows KmsKeyId %q", aws.ToString(d.KmsKeyId))
	}
	vl, err := cl.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("by-id")})
	if err != nil || len(vl.Versions) != 1 || len(vl.Versions[0].KmsKeyIds) != 1 || vl.Versions[0].KmsKeyIds[0] != key.KeyID {
		t.Fatalf("ListSecretVersionIds: %+v %v", vl, err)
	}
	if info := describeKey(t, c.Nodes[0].Endpoint, "alias/app"); info.Secrets != 4 || info.Versions[0].DataKeys != 4 {
		t.Fatalf("key in use: %+v", info)
	}

	// Disabled: no node reads or writes its secrets; the others go on.
	if code, typ, msg := keyCall(t, c.Nodes[f[0]].Endpoint, "/v1/key/disable", map[string]string{"key": "alias/app"}, nil); code != 200 {
		t.Fatalf("disable: %d %s %s", code, typ, msg)
	}
	for i := range c.Nodes {
		_, err := c.Client(i).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("by-arn")})
		if apiCode(err) != apierr.DecryptionFailure || !strings.Contains(err.Error(), key.ARN+": the key is disabled") {
			t.Fatalf("read with the key disabled, on %s: %v", c.Nodes[i].ID, err)
		}
		if v, err := c.Client(i).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("plain")}); err != nil || aws.ToString(v.SecretString) != "v-plain" {
			t.Fatalf("a default-key secret with another key disabled: %v", err)
		}
	}
	_, err = cl.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("by-id"), SecretString: aws.String("new")})
	if apiCode(err) != apierr.EncryptionFailure || !strings.Contains(err.Error(), "is disabled") {
		t.Fatalf("write with the key disabled: %v", err)
	}
	_, err = cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("late"), KmsKeyId: aws.String("alias/app"), SecretString: aws.String("x")})
	if apiCode(err) != apierr.EncryptionFailure {
		t.Fatalf("create with the key disabled: %v", err)
	}
	bv, err := cl.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"plain", "by-alias"}})
	if err != nil || len(bv.SecretValues) != 1 || len(bv.Errors) != 1 || aws.ToString(bv.Errors[0].ErrorCode) != apierr.DecryptionFailure {
		t.Fatalf("BatchGetSecretValue with one key disabled: %+v %v", bv, err)
	}
	if code, typ, msg := keyCall(t, c.Nodes[0].Endpoint, "/v1/key/enable", map[string]string{"key": key.KeyID}, nil); code != 200 {
		t.Fatalf("enable: %d %s %s", code, typ, msg)
	}
	for i := range c.Nodes {
		if v, err := c.Client(i).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("by-arn")}); err != nil || aws.ToString(v.SecretString) != "v-by-arn" {
			t.Fatalf("read after enable on %s: %v", c.Nodes[i].ID, err)
		}
	}

	// UpdateSecret to the default key moves the labelled versions' data
	// keys: disabling the customer key no longer touches the secret.
	if _, err := cl.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("by-alias"), SecretString: aws.String("second")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("by-alias"), KmsKeyId: aws.String("")}); err != nil {
		t.Fatal(err)
	}
	keyCall(t, c.Nodes[0].Endpoint, "/v1/key/disable", map[string]string{"key": key.KeyID}, nil)
	for _, stage := range []string{"AWSCURRENT", "AWSPREVIOUS"} {
		v, err := c.Client(f[0]).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("by-alias"), VersionStage: aws.String(stage)})
		if err != nil {
			t.Fatalf("%s of a secret moved to the default key, its old key disabled: %v", stage, err)
		}
		if want := map[string]string{"AWSCURRENT": "second", "AWSPREVIOUS": "v-by-alias"}[stage]; aws.ToString(v.SecretString) != want {
			t.Fatalf("%s = %q, want %q", stage, aws.ToString(v.SecretString), want)
		}
	}
	if d, _ := cl.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("by-alias")}); d.KmsKeyId != nil {
		t.Fatalf("moved to the default key, KmsKeyId %q", aws.ToString(d.KmsKeyId))
	}
	// Moving a secret onto a disabled key is refused, and changes nothing.
	_, err = cl.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("plain"), KmsKeyId: aws.String("alias/app")})
	if apiCode(err) != apierr.EncryptionFailure {
		t.Fatalf("UpdateSecret onto a disabled key: %v", err)
	}
	if v, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("plain")}); err != nil || aws.ToString(v.SecretString) != "v-plain" {
		t.Fatalf("after a refused key change: %v", err)
	}

	// Bad admin input: a clear error, nothing changed.
	for _, tc := range []struct {
		path string
		body map[string]string
		code string
	}{
		{"/v1/key/rotate", map[string]string{"key": "alias/nope"}, apierr.ResourceNotFound},
		{"/v1/key/disable", map[string]string{"key": "default"}, apierr.InvalidParameter},
		{"/v1/key/rotate", map[string]string{"key": key.KeyID}, apierr.InvalidRequest}, // disabled
		{"/v1/key/alias", map[string]string{"alias": "alias/aws/x", "key": key.KeyID}, apierr.InvalidParameter},
		{"/v1/key/alias", map[string]string{"alias": "alias/app2", "key": "nope"}, apierr.ResourceNotFound},
		{"/v1/keys", map[string]string{"alias": "alias/app"}, apierr.ResourceExists},
	} {
		if code, typ, msg := keyCall(t, c.Nodes[0].Endpoint, tc.path, tc.body, nil); code != 400 || typ != tc.code || msg == "" {
			t.Errorf("%s %v: %d %s %q, want %s", tc.path, tc.body, code, typ, msg, tc.code)
		}
	}
	var all struct{ Keys []region.KeyInfo }
	keyCall(t, c.Nodes[0].Endpoint, "/v1/keys", nil, &all)
	if len(all.Keys) != 2 || !all.Keys[0].Default || all.Keys[1].KeyID != key.KeyID {
		t.Fatalf("keys after the refusals: %+v", all.Keys)
	}
	// Only the root identity manages keys.
	req, _ := http.NewRequest(http.MethodGet, c.Nodes[0].Endpoint+"/v1/keys", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an unsigned key call: %v %v", resp, err)
	}
}

// KEK rotation under concurrent writes: new values use the new version at
// once, the leader re-wraps every older data key in the background while
// writes go on, and at the end every secret reads back its last value on
// every node and every data key is wrapped by its key's newest version.
func TestCluster_KEKRotationUnderConcurrentWrites(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	ep := c.Nodes[c.Followers()[0]].Endpoint
	var key region.KeyInfo
	if code, typ, msg := keyCall(t, ep, "/v1/keys", map[string]string{"alias": "alias/rot"}, &key); code != 200 {
		t.Fatalf("create key: %d %s %s", code, typ, msg)
	}
	const secrets = 24
	cl := c.Client(0)
	for i := range secrets {
		in := &secretsmanager.CreateSecretInput{Name: aws.String(fmt.Sprintf("s%02d", i)), SecretString: aws.String("0")}
		if i%2 == 0 {
			in.KmsKeyId = aws.String("alias/rot")
		}
		if _, err := cl.CreateSecret(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	last := make([]string, secrets)
	for i := range last {
		last[i] = "0"
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := c.Client(w % len(c.Nodes))
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (w*7 + n) % secrets
				val := fmt.Sprintf("w%d-%d", w, n)
				mu.Lock() // one writer per secret at a time: the last value is known
				_, err := cl.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(fmt.Sprintf("s%02d", i)), SecretString: aws.String(val)})
				if err == nil {
					last[i] = val
				}
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	// The last rotation goes to a follower: the leader's re-wrap notices
	// the keyring change in its state.
	for i, k := range []string{"alias/rot", "alias/aws/secretsmanager", key.KeyID} {
		node := c.Leader()
		if i == 2 {
			node = c.Followers()[1]
		}
		var info region.KeyInfo
		if code, typ, msg := keyCall(t, c.Nodes[node].Endpoint, "/v1/key/rotate", map[string]string{"key": k}, &info); code != 200 {
			t.Fatalf("rotate %s: %d %s %s", k, code, typ, msg)
		}
		time.Sleep(300 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("a write during the rotations: %v", err)
	default:
	}
	c.Eventually(30*time.Second, "every data key re-wrapped", func() bool {
		for _, k := range []string{key.KeyID, "default"} {
			if describeKey(t, c.Nodes[0].Endpoint, k).RewrapPending != 0 {
				return false
			}
		}
		return true
	})
	if info := describeKey(t, ep, key.KeyID); info.CurrentVersion != 3 || info.Versions[0].DataKeys != 0 || info.Versions[1].DataKeys != 0 || info.Versions[2].DataKeys == 0 {
		t.Fatalf("customer key after two rotations: %+v", info)
	}
	leaderIndex := c.Nodes[c.Leader()].Region.FSM().AppliedIndex()
	c.Eventually(10*time.Second, "every node applied", func() bool {
		for _, n := range c.Nodes {
			if n.Region.FSM().AppliedIndex() < leaderIndex {
				return false
			}
		}
		return true
	})
	for i, n := range c.Nodes {
		txn, _ := n.Region.FSM().ReadTxn()
		if stale, _ := fsm.StaleDataKeys(txn, "", 1<<30, nil); len(stale) != 0 {
			t.Fatalf("%s: %d data keys not on their key's newest version", n.ID, len(stale))
		}
		for s := range secrets {
			v, err := c.Client(i).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(fmt.Sprintf("s%02d", s))})
			if err != nil || aws.ToString(v.SecretString) != last[s] {
				t.Fatalf("%s: s%02d = %q, %v; want %q", n.ID, s, aws.ToString(v.SecretString), err, last[s])
			}
		}
	}
}

// A secret stored before keys existed carries its KmsKeyId as an opaque
// string and no key: it keeps reading and writing under the default key,
// and shows its KmsKeyId as it was given.
func TestAPI_OpaqueKmsKeyIdOfEarlierSecretsKeepsWorking(t *testing.T) {
	l := servertest.NewLocal(t)
	ctx := ctxT(t)
	kr, err := l.Region.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	arn := l.Region.NewARN("old")
	nv, err := region.Seal(kr, kr.KEKID, arn, "v1-0123456789abcdef0123456789abcdef", []byte("old value"), false)
	if err != nil {
		t.Fatal(err)
	}
	// The command an earlier version wrote: KmsKeyID as given, no KeyID.
	if _, _, err := l.Region.Apply(ctx, fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: "old", KmsKeyID: "my-own-key-name",
		Version: &nv, Date: l.Region.Now().UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	cl := l.Client()
	if v, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("old")}); err != nil || aws.ToString(v.SecretString) != "old value" {
		t.Fatalf("read: %v", err)
	}
	if _, err := cl.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("old"), SecretString: aws.String("new value")}); err != nil {
		t.Fatalf("write: %v", err)
	}
	if v, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("old")}); err != nil || aws.ToString(v.SecretString) != "new value" {
		t.Fatalf("read after write: %v", err)
	}
	d, err := cl.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("old")})
	if err != nil || aws.ToString(d.KmsKeyId) != "my-own-key-name" {
		t.Fatalf("DescribeSecret KmsKeyId = %q, %v", aws.ToString(d.KmsKeyId), err)
	}
	vl, err := cl.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("old")})
	if err != nil || len(vl.Versions) != 2 || vl.Versions[0].KmsKeyIds[0] != "my-own-key-name" {
		t.Fatalf("ListSecretVersionIds: %+v %v", vl, err)
	}
}

// A rekey on one node replaces the root key the others hold: the next
// keyring change, made on another node, and the reads of values under
// the new key on every node still work (the others follow the rekey with
// the root key it left sealed under the keyring).
func TestCluster_KeyChangesAfterARekeyOnAnotherNode(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	if _, err := c.Nodes[c.Leader()].Region.Rekey(ctx, 1, 1); err != nil {
		t.Fatal(err)
	}
	f := c.Followers()
	var key region.KeyInfo
	if code, typ, msg := keyCall(t, c.Nodes[f[0]].Endpoint, "/v1/keys", map[string]string{"alias": "alias/after-rekey"}, &key); code != 200 {
		t.Fatalf("create key on a node that did not rekey: %d %s %s", code, typ, msg)
	}
	if _, err := c.Client(f[1]).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("s"), KmsKeyId: aws.String("alias/after-rekey"), SecretString: aws.String("v")}); err != nil {
		t.Fatal(err)
	}
	for i, n := range c.Nodes {
		if v, err := c.Client(i).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")}); err != nil || aws.ToString(v.SecretString) != "v" {
			t.Fatalf("%s reads %v", n.ID, err)
		}
		if n.Region.Sealed() {
			t.Fatalf("%s sealed itself after the rekey", n.ID)
		}
	}
}
