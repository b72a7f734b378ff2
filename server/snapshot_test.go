package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/server/servertest"
)

// saveSnapshot is `coffer operator snapshot save` against endpoint.
func saveSnapshot(t testing.TB, endpoint, region string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, endpoint+"/v1/operator/snapshot", nil)
	acl.Sign(req, nil, servertest.Credentials.AccessKeyID, servertest.Credentials.SecretAccessKey, region, "coffer", time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("snapshot save: %d %s %v", resp.StatusCode, body, err)
	}
	return body
}

// restoreSnapshot is `coffer operator snapshot restore`: file streamed as
// the body, the request signed with signedFile's SHA-256 (file's, unless
// a test sends something other than what it signed). It returns the
// status, the error type and message, and the answer on a 200.
func restoreSnapshot(t testing.TB, endpoint, region string, file, signedFile []byte) (int, string, string, server.SnapshotRestored) {
	t.Helper()
	if signedFile == nil {
		signedFile = file
	}
	sum := sha256.Sum256(signedFile)
	hash := hex.EncodeToString(sum[:])
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/v1/operator/snapshot", bytes.NewReader(file))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: servertest.Credentials.AccessKeyID, SecretAccessKey: servertest.Credentials.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, "coffer", region, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out server.SnapshotRestored
	var e struct {
		Type    string `json:"__type"`
		Message string
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
	} else {
		json.Unmarshal(raw, &e)
	}
	return resp.StatusCode, e.Type, e.Message, out
}

func readValue(ctx context.Context, c *secretsmanager.Client, name string) (string, error) {
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.SecretString), nil
}

// Save on a follower, write and delete more, restore through another
// follower: every node serves exactly the snapshot's secrets, at once
// (reads are linearizable), and takes writes after. Snapshots of another
// region, of another initialization of this one (another root key), a
// truncated or damaged file, and a body that is not the one signed are
// refused before anything changes.
func TestSnapshot_RestoreThroughFollower(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	f := c.Followers()
	cl := c.Client(f[0])
	kept := map[string]string{}
	for i := range 5 {
		name, value := fmt.Sprintf("kept-%d", i), fmt.Sprintf("value-%d", i)
		if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)}); err != nil {
			t.Fatal(err)
		}
		kept[name] = value
	}
	file := saveSnapshot(t, c.Nodes[f[0]].Endpoint, c.Name)

	// After the snapshot: new secrets, a changed value, a deleted secret.
	for i := range 3 {
		if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(fmt.Sprintf("later-%d", i)), SecretString: aws.String("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("kept-1"), SecretString: aws.String("changed")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("kept-2"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}

	// Refusals first: each leaves the state as it is.
	other := servertest.New(t, 1, servertest.Options{Region: "eu-west-1"})
	foreign := saveSnapshot(t, other.Nodes[0].Endpoint, other.Name)
	twin := servertest.New(t, 1) // us-east-1 too, another root key
	twinFile := saveSnapshot(t, twin.Nodes[0].Endpoint, twin.Name)
	damaged := bytes.Clone(file)
	damaged[len(damaged)-10] ^= 0xff
	target := c.Nodes[f[1]].Endpoint
	for _, tc := range []struct {
		name         string
		file, signed []byte
		code, msg    string
	}{
		{"another region", foreign, nil, apierr.InvalidParameter, "the snapshot is of region eu-west-1, and this request is for region us-east-1"},
		{"another root key", twinFile, nil, apierr.InvalidParameter, "this region's root key does not open the snapshot's keyring"},
		{"truncated", file[:len(file)/2], nil, apierr.InvalidParameter, "snapshot file is truncated"},
		{"damaged", damaged, nil, apierr.InvalidParameter, "checksum does not match"},
		{"not a snapshot", []byte("hello"), nil, apierr.InvalidParameter, "not a Coffer snapshot file"},
		{"cut short on the way", file[:len(file)-100], file, apierr.InvalidSignature, "does not match the SHA-256 it was signed with"},
	} {
		status, code, msg, _ := restoreSnapshot(t, target, c.Name, tc.file, tc.signed)
		if status != http.StatusBadRequest || code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Fatalf("%s: %d %s %q, want 400 %s %q", tc.name, status, code, msg, tc.code, tc.msg)
		}
		if v, err := readValue(ctx, c.Client(f[1]), "later-0"); err != nil || v != "x" {
			t.Fatalf("%s: the refused restore changed the state: %q %v", tc.name, v, err)
		}
	}
	// Unsigned, or signed by anyone but the root key pair: refused before
	// the body is read.
	unsigned, _ := http.NewRequest(http.MethodPost, target+"/v1/operator/snapshot", bytes.NewReader(file))
	resp, err := http.DefaultClient.Do(unsigned)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("an unsigned restore was accepted")
	}
	forged, _ := http.NewRequest(http.MethodPost, target+"/v1/operator/snapshot", bytes.NewReader(file))
	sum := sha256.Sum256(file)
	forged.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: servertest.Credentials.AccessKeyID, SecretAccessKey: "not-the-secret"},
		forged, hex.EncodeToString(sum[:]), "coffer", c.Name, time.Now()); err != nil {
		t.Fatal(err)
	}
	if resp, err = http.DefaultClient.Do(forged); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a restore signed with the wrong secret key: %d", resp.StatusCode)
	}
	if v, err := readValue(ctx, c.Client(f[1]), "later-0"); err != nil || v != "x" {
		t.Fatalf("a refused restore changed the state: %q %v", v, err)
	}
	// The foreign region's own servers refuse this region's snapshot too.
	if status, code, msg, _ := restoreSnapshot(t, other.Nodes[0].Endpoint, other.Name, file, nil); status != http.StatusBadRequest || !strings.Contains(msg, "is of region us-east-1") {
		t.Fatalf("us-east-1 snapshot into eu-west-1: %d %s %q", status, code, msg)
	}

	status, code, msg, out := restoreSnapshot(t, target, c.Name, file, nil)
	if status != http.StatusOK {
		t.Fatalf("restore: %d %s %q", status, code, msg)
	}
	if out.State.Records["secrets"] != 5 || out.Header.Region != c.Name || out.Index == 0 {
		t.Fatalf("restore answered %+v", out)
	}
	for i := range c.Nodes {
		cli := c.Client(i)
		for name, want := range kept {
			if got, err := readValue(ctx, cli, name); err != nil || got != want {
				t.Fatalf("node %d: %s = %q, %v; want %q from the snapshot", i, name, got, err, want)
			}
		}
		for j := range 3 {
			if _, err := readValue(ctx, cli, fmt.Sprintf("later-%d", j)); apiCode(err) != apierr.ResourceNotFound {
				t.Fatalf("node %d: later-%d, written after the snapshot, survived the restore: %v", i, j, err)
			}
		}
		list, err := cli.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
		if err != nil || len(list.SecretList) != len(kept) {
			t.Fatalf("node %d lists %d secrets (%v), want %d", i, len(list.SecretList), err, len(kept))
		}
	}
	// The region takes writes after, and every node converges.
	if _, err := c.Client(f[0]).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("after"), SecretString: aws.String("y")}); err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes {
		if v, err := readValue(ctx, c.Client(i), "after"); err != nil || v != "y" {
			t.Fatalf("node %d after the restore: %q %v", i, v, err)
		}
	}
	c.Eventually(10*time.Second, "equal state digests", func() bool {
		d0, i0, _ := c.Nodes[0].Region.StateDigest()
		for _, n := range c.Nodes[1:] {
			d, i, _ := n.Region.StateDigest()
			if d != d0 || i != i0 {
				return false
			}
		}
		return true
	})
}

// A restore can bring back a keyring under a generation a node has already
// cached with other keys in it: restore S1, create key k3 (generation g+1),
// restore S2, saved with key k2 at generation g+1. Every node must reopen
// the keyring, not keep the cached one without k2, and so read the secret
// under k2.
func TestSnapshot_RestoredKeyringAtACachedGeneration(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	f := c.Followers()
	gen := func(i int) uint64 {
		txn, _ := c.Nodes[i].Region.FSM().ReadTxn()
		return fsm.RegionRecord(txn).KeyringGen
	}
	// The leader adds the replication key once; let it, so the keyring
	// changes only as this test makes it.
	c.Eventually(10*time.Second, "the replication key", func() bool {
		_, pub := c.Nodes[f[0]].Region.ReplicationPublicKey()
		return pub != nil
	})
	createUnder := func(alias, secret string) {
		t.Helper()
		if code, typ, msg := keyCall(t, c.Nodes[f[0]].Endpoint, "/v1/keys", map[string]string{"alias": alias}, nil); code != 200 {
			t.Fatalf("create key %s: %d %s %s", alias, code, typ, msg)
		}
		if _, err := c.Client(f[0]).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(secret),
			KmsKeyId: aws.String(alias), SecretString: aws.String("v-" + secret)}); err != nil {
			t.Fatal(err)
		}
	}
	s1 := saveSnapshot(t, c.Nodes[f[0]].Endpoint, c.Name)
	createUnder("alias/k2", "under-k2")
	s2 := saveSnapshot(t, c.Nodes[f[0]].Endpoint, c.Name)
	g2 := gen(f[0])
	if status, code, msg, _ := restoreSnapshot(t, c.Nodes[f[1]].Endpoint, c.Name, s1, nil); status != http.StatusOK {
		t.Fatalf("restore S1: %d %s %s", status, code, msg)
	}
	createUnder("alias/k3", "under-k3")
	for i := range c.Nodes { // every node caches the keyring with k3
		if v, err := readValue(ctx, c.Client(i), "under-k3"); err != nil || v != "v-under-k3" {
			t.Fatalf("node %d: under-k3 = %q, %v", i, v, err)
		}
		if g := gen(i); g != g2 {
			t.Fatalf("node %d: keyring generation %d, want %d (as in S2) for this test to mean anything", i, g, g2)
		}
	}
	if status, code, msg, _ := restoreSnapshot(t, c.Nodes[f[1]].Endpoint, c.Name, s2, nil); status != http.StatusOK {
		t.Fatalf("restore S2: %d %s %s", status, code, msg)
	}
	for i := range c.Nodes {
		if v, err := readValue(ctx, c.Client(i), "under-k2"); err != nil || v != "v-under-k2" {
			t.Fatalf("node %d after restoring S2: under-k2 = %q, %v", i, v, err)
		}
	}
}
