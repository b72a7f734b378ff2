package server_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/server/servertest"
)

const token1 = "00000000-0000-4000-8000-000000000001"

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// A write acknowledged by one follower is visible at once on another:
// reads are linearizable on every node by default.
func TestCluster_CreateOnFollowerReadOnOtherFollower(t *testing.T) {
	c := servertest.New(t, 3)
	f := c.Followers()
	ctx := ctxT(t)
	for i := range 20 {
		name := "lin-" + string(rune('a'+i))
		_, err := c.Client(f[0]).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String(name), SecretString: aws.String("v-" + name)})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		out, err := c.Client(f[1]).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
		if err != nil {
			t.Fatalf("read %s on the other follower right after the write: %v", name, err)
		}
		if aws.ToString(out.SecretString) != "v-"+name {
			t.Fatalf("read %q, want %q", aws.ToString(out.SecretString), "v-"+name)
		}
	}
}

func TestCluster_IdempotentClientRequestToken(t *testing.T) {
	c := servertest.New(t, 3)
	f := c.Followers()
	ctx := ctxT(t)
	cl := c.Client(f[0])
	created, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("idem"), SecretString: aws.String("v0")})
	if err != nil {
		t.Fatal(err)
	}
	put := func(node int, value string) (*secretsmanager.PutSecretValueOutput, error) {
		return c.Client(node).PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: aws.String("idem"), ClientRequestToken: aws.String(token1), SecretString: aws.String(value)})
	}
	first, err := put(f[0], "v1")
	if err != nil {
		t.Fatal(err)
	}
	// The retry goes to another node, as a client retry after a timeout may.
	again, err := put(f[1], "v1")
	if err != nil {
		t.Fatalf("retry with the same token and value: %v", err)
	}
	if aws.ToString(again.VersionId) != aws.ToString(first.VersionId) || aws.ToString(first.VersionId) != token1 {
		t.Fatalf("retry answered version %s, first %s", aws.ToString(again.VersionId), aws.ToString(first.VersionId))
	}
	desc, err := cl.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: created.ARN})
	if err != nil {
		t.Fatal(err)
	}
	if len(desc.VersionIdsToStages) != 2 {
		t.Fatalf("versions after an idempotent retry: %v, want 2", desc.VersionIdsToStages)
	}
	_, err = put(c.Leader(), "different")
	var exists *types.ResourceExistsException
	if !errors.As(err, &exists) {
		t.Fatalf("same token, other value: got %v, want ResourceExistsException", err)
	}
	got, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("idem")})
	if err != nil || aws.ToString(got.SecretString) != "v1" {
		t.Fatalf("current value after refused write: %q, %v", aws.ToString(got.SecretString), err)
	}
}

func TestCluster_LeaderKilledWritesContinue(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	old := c.Leader()
	f := c.Followers()
	if _, err := c.Client(f[0]).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("k"), SecretString: aws.String("before")}); err != nil {
		t.Fatal(err)
	}
	c.Kill(old)
	newLeader := c.Leader()
	if newLeader == old {
		t.Fatal("killed node still leads")
	}
	// Writes through every survivor succeed once a new leader is elected.
	for _, i := range c.Running() {
		var err error
		c.Eventually(20*time.Second, "a write through a survivor", func() bool {
			_, err = c.Client(i).PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("k"), SecretString: aws.String("after-" + c.Nodes[i].ID)})
			return err == nil
		})
	}
	for _, i := range c.Running() {
		if _, err := c.Client(i).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("k")}); err != nil {
			t.Fatalf("read on %s after failover: %v", c.Nodes[i].ID, err)
		}
	}
}

// A restarted node rebuilds its state from its snapshot and log, and the
// cluster's state digests agree.
func TestCluster_RestartRecoversFromLogAndSnapshot(t *testing.T) {
	c := servertest.New(t, 3, servertest.Options{Tune: func(cfg *cluster.Config) {
		cfg.SnapshotThreshold, cfg.SnapshotInterval, cfg.TrailingLogs = 16, 100*time.Millisecond, 8
	}})
	ctx := ctxT(t)
	victim := c.Followers()[0]
	cl := c.Client(c.Leader())
	for i := range 60 {
		if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name(i)), SecretString: aws.String("value")}); err != nil {
			t.Fatal(err)
		}
	}
	snaps := filepath.Join(c.Nodes[victim].DataDir, "raft", "snapshots")
	c.Eventually(20*time.Second, "a snapshot on disk", func() bool {
		entries, _ := os.ReadDir(snaps)
		return len(entries) > 0
	})
	c.Kill(victim)
	for i := 60; i < 80; i++ { // written while the node is down
		if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name(i)), SecretString: aws.String("value")}); err != nil {
			t.Fatal(err)
		}
	}
	c.Restart(victim)
	c.WaitServing()
	rc := c.Client(victim)
	for i := range 80 {
		if _, err := rc.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name(i))}); err != nil {
			t.Fatalf("%s missing on the restarted node: %v", name(i), err)
		}
	}
	// Stale reads on the restarted node also see everything once applied.
	leaderIndex := c.Nodes[c.Leader()].Region.FSM().AppliedIndex()
	c.Eventually(10*time.Second, "the restarted node to catch up", func() bool {
		return c.Nodes[victim].Region.FSM().AppliedIndex() >= leaderIndex
	})
	d1, i1, _ := c.Nodes[victim].Region.FSM().Digest()
	d2, i2, _ := c.Nodes[c.Leader()].Region.FSM().Digest()
	if i1 == i2 && d1 != d2 {
		t.Fatalf("state digests differ at index %d: %s vs %s", i1, d1, d2)
	}
}

func name(i int) string { return "secret-" + string(rune('A'+i/26)) + string(rune('a'+i%26)) }

// With two of three nodes gone, the survivor refuses writes and
// linearizable reads with an error inside the request timeout, and still
// answers stale reads.
func TestCluster_MinorityRefusesButServesStale(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	if _, err := c.Client(0).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("m"), SecretString: aws.String("kept")}); err != nil {
		t.Fatal(err)
	}
	survivor := c.Followers()[0]
	c.Eventually(10*time.Second, "the survivor to apply the write", func() bool {
		return c.Nodes[survivor].Region.FSM().AppliedIndex() >= c.Nodes[c.Leader()].Region.FSM().AppliedIndex()
	})
	for _, i := range c.Running() {
		if i != survivor {
			c.Kill(i)
		}
	}
	cl := c.Client(survivor)
	start := time.Now()
	_, err := cl.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("m"), SecretString: aws.String("lost?")})
	if err == nil {
		t.Fatal("a minority accepted a write")
	}
	if code := apiCode(err); code != "ServiceUnavailable" {
		t.Fatalf("write on minority: %v, want ServiceUnavailable", err)
	}
	_, err = cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("m")})
	if code := apiCode(err); code != "ServiceUnavailable" {
		t.Fatalf("linearizable read on minority: %v, want ServiceUnavailable", err)
	}
	if waited := time.Since(start); waited > 15*time.Second {
		t.Fatalf("refusals took %s; they must come within the request timeout", waited)
	}
	out, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("m")}, withHeader("X-Coffer-Consistency", "stale"))
	if err != nil {
		t.Fatalf("stale read on minority: %v", err)
	}
	if aws.ToString(out.SecretString) != "kept" {
		t.Fatalf("stale read = %q", aws.ToString(out.SecretString))
	}
}

// No plaintext value, data key, KEK or root key reaches any file in any
// node's data directory, after writes, a customer key, KEK rotations
// with their background re-wrap, and snapshots.
func TestCluster_NoPlaintextOnDisk(t *testing.T) {
	c := servertest.New(t, 3, servertest.Options{Tune: func(cfg *cluster.Config) {
		cfg.SnapshotThreshold, cfg.SnapshotInterval, cfg.TrailingLogs = 8, 100*time.Millisecond, 4
	}})
	ctx := ctxT(t)
	marker := "MARKER-7f3a9c-plaintext-must-not-reach-disk"
	cl := c.Client(c.Followers()[0])
	if code, typ, msg := keyCall(t, c.Nodes[0].Endpoint, "/v1/keys", map[string]string{"alias": "alias/marker"}, nil); code != 200 {
		t.Fatalf("create key: %d %s %s", code, typ, msg)
	}
	if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("marker"), SecretString: aws.String(marker)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("marker-bin"), SecretBinary: []byte(marker), KmsKeyId: aws.String("alias/marker")}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if i == 10 {
			for _, k := range []string{"default", "alias/marker"} {
				if code, typ, msg := keyCall(t, c.Nodes[c.Leader()].Endpoint, "/v1/key/rotate", map[string]string{"key": k}, nil); code != 200 {
					t.Fatalf("rotate %s: %d %s %s", k, code, typ, msg)
				}
			}
		}
		if _, err := cl.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("marker"), SecretString: aws.String(marker + string(rune('a'+i)))}); err != nil {
			t.Fatal(err)
		}
	}
	c.Eventually(20*time.Second, "the re-wrap", func() bool {
		for _, k := range []string{"default", "alias/marker"} {
			if describeKey(t, c.Nodes[0].Endpoint, k).RewrapPending != 0 {
				return false
			}
		}
		return true
	})
	// More writes after the re-wrap, so the last snapshots hold it.
	for i := range 10 {
		if _, err := cl.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("marker-bin"), SecretBinary: []byte(marker + string(rune('a'+i)))}); err != nil {
			t.Fatal(err)
		}
	}
	// The plaintext keys to look for: every data key and KEK, as the
	// leader's keyring unwraps them.
	leader := c.Nodes[c.Leader()].Region
	kr, err := leader.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]byte{}
	txn, _ := leader.FSM().ReadTxn()
	for _, name := range []string{"marker", "marker-bin"} {
		s := leader.Resolve(txn, name)
		for _, v := range s.Versions {
			dek, kek, err := kr.KeysForLeakTest(v.Value, crypto.ValueAAD(v.AADARN(s), v.VersionID))
			if err != nil {
				t.Fatal(err)
			}
			keys["data key of "+name+"/"+v.VersionID] = dek
			keys["KEK "+v.Value.KEKID] = kek
		}
	}
	for _, n := range c.Nodes {
		snaps := filepath.Join(n.DataDir, "raft", "snapshots")
		c.Eventually(20*time.Second, "a snapshot on "+n.ID, func() bool {
			entries, _ := os.ReadDir(snaps)
			return len(entries) > 0
		})
	}
	c.Shutdown() // flush and close every file
	scanned := 0
	for _, n := range c.Nodes {
		filepath.WalkDir(n.DataDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			scanned++
			if bytes.Contains(data, []byte(marker)) || bytes.Contains(data, []byte("MARKER-7f3a9c")) {
				t.Errorf("plaintext marker found in %s", path)
			}
			// Nor the root key (raw or in its file format), nor the
			// root access key's secret.
			for what, secret := range map[string][]byte{
				"root key":               c.RootKey,
				"root key (base64)":      bytes.TrimSpace(crypto.EncodeRootKey(c.RootKey)),
				"root access key secret": []byte(servertest.Credentials.SecretAccessKey),
			} {
				keys[what] = secret
			}
			for what, secret := range keys {
				if bytes.Contains(data, secret) {
					t.Errorf("%s found in %s", what, path)
				}
			}
			return nil
		})
	}
	if scanned < 6 {
		t.Fatalf("scanned only %d files; expected raft.db and snapshots on every node", scanned)
	}
}
