package region_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
)

// A new region starts with its replication key pair: the private half in
// the keyring, the public half published in the region record.
func TestReplicationKey_NewRegionHasOne(t *testing.T) {
	r := startSealed(t)
	if _, err := r.Init(context.Background(), 1, 1); err != nil {
		t.Fatal(err)
	}
	id, pub := r.ReplicationPublicKey()
	kr, err := r.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kr.ReplicationPublicKey(id); err != nil || !bytes.Equal(got, pub) || len(pub) != 32 {
		t.Fatalf("replication key %q: record %x, keyring %x, %v", id, pub, got, err)
	}
}

// A region initialized before replication existed (no replication key in
// its keyring) gets one from its leader once the leader can open the
// keyring, through a keyring change.
func TestReplicationKey_EarlierRegionGetsOneWhenUnsealed(t *testing.T) {
	r := startSealed(t)
	root := crypto.RandomKey()
	kr := crypto.NewKeyring("k1")
	sealed, err := kr.Seal(root, r.Name())
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := kr.SealSecret("k1", []byte(testCreds.SecretAccessKey), testCreds.AccessKeyID)
	if _, _, err := r.Apply(context.Background(), fsm.CmdInitRegion, &fsm.InitRegion{Region: r.Name(), AccountID: r.AccountID(),
		KEKID: "k1", SealedKeyring: sealed, KeyringFormat: 2, Date: time.Now().UnixMilli(),
		RootKey: fsm.AccessKey{AccessKeyID: testCreds.AccessKeyID, Identity: "root", SealedSecret: secret, KEKID: "k1"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, pub := r.ReplicationPublicKey(); pub != nil {
		t.Fatal("a sealed leader made a replication key")
	}
	if _, err := r.Unseal(string(bytes.TrimSpace(crypto.EncodeRootKey(root)))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		id, pub := r.ReplicationPublicKey()
		if pub != nil {
			kr, err := r.Keyring()
			if err != nil {
				t.Fatal(err)
			}
			if got, err := kr.ReplicationPublicKey(id); err != nil || !bytes.Equal(got, pub) {
				t.Fatalf("the keyring's replication key %x does not match the record's %x: %v", got, pub, err)
			}
			if _, secret, ok := r.AccessKey(context.Background(), testCreds.AccessKeyID); !ok || secret != testCreds.SecretAccessKey {
				t.Fatal("the access key does not open after the keyring change")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no replication key 10s after the leader was unsealed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
