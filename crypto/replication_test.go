package crypto

import (
	"bytes"
	"errors"
	"testing"
)

// A data key shipped from one region's keyring to another's: the replica
// opens it with its replication key and wraps it under its own KEK, and
// the value ciphertext, untouched, decrypts there. A data key sealed to
// another region's key, bound to another secret or version, or tampered
// with does not open; nor does a value ciphertext swapped in transit.
func TestShipAndReceiveDataKey(t *testing.T) {
	primary := NewKeyring("k1")
	replica, err := NewKeyring("k1").WithKEK(ReplicationKeyPrefix + "1")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewKeyring("k1").WithKEK(ReplicationKeyPrefix + "1")
	pub, err := replica.ReplicationPublicKey(ReplicationKeyPrefix + "1")
	if err != nil || len(pub) != 32 {
		t.Fatalf("public key: %d bytes, %v", len(pub), err)
	}
	arn := "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf"
	aad := ValueAAD(arn, "v1")
	env, err := primary.Encrypt("k1", []byte("s3cr3t"), aad)
	if err != nil {
		t.Fatal(err)
	}
	info := ReplicationInfo("eu-west-1", arn, "v1")
	shipped, err := primary.ShipDataKey(env, aad, pub, info)
	if err != nil {
		t.Fatal(err)
	}
	dek, _, _ := primary.KeysForLeakTest(env, aad)
	if bytes.Contains(shipped, dek) {
		t.Fatal("the shipped data key is in the clear")
	}
	got, digest, err := replica.ReceiveDataKey(ReplicationKeyPrefix+"1", shipped, info, env.Ciphertext, aad, "k1", "s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(digest, replica.Digest("s", []byte("s3cr3t"))) {
		t.Fatal("the digest is not the replica's digest of the value")
	}
	if pt, err := replica.Decrypt(got, aad); err != nil || string(pt) != "s3cr3t" {
		t.Fatalf("the replica reads %q, %v", pt, err)
	}
	if _, err := primary.Decrypt(got, aad); err == nil {
		t.Fatal("the replica's wrapped data key opens with the primary's KEK")
	}
	for name, try := range map[string]func() error{
		"another region's key": func() error {
			_, _, err := other.ReceiveDataKey(ReplicationKeyPrefix+"1", shipped, info, env.Ciphertext, aad, "k1", "s")
			return err
		},
		"another version's info": func() error {
			_, _, err := replica.ReceiveDataKey(ReplicationKeyPrefix+"1", shipped, ReplicationInfo("eu-west-1", arn, "v2"), env.Ciphertext, aad, "k1", "s")
			return err
		},
		"another replica region's info": func() error {
			_, _, err := replica.ReceiveDataKey(ReplicationKeyPrefix+"1", shipped, ReplicationInfo("ap-south-1", arn, "v1"), env.Ciphertext, aad, "k1", "s")
			return err
		},
		"a tampered shipped key": func() error {
			bad := bytes.Clone(shipped)
			bad[len(bad)-1] ^= 1
			_, _, err := replica.ReceiveDataKey(ReplicationKeyPrefix+"1", bad, info, env.Ciphertext, aad, "k1", "s")
			return err
		},
		"a swapped value ciphertext": func() error {
			e2, _ := primary.Encrypt("k1", []byte("other"), aad)
			_, _, err := replica.ReceiveDataKey(ReplicationKeyPrefix+"1", shipped, info, e2.Ciphertext, aad, "k1", "s")
			return err
		},
	} {
		if err := try(); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v, want ErrDecrypt", name, err)
		}
	}
	// A replication key is never a KEK, and a KEK never a replication key.
	if _, err := replica.Encrypt(ReplicationKeyPrefix+"1", []byte("x"), aad); err == nil {
		t.Error("a replication key wrapped a data key")
	}
	if _, err := replica.ReplicationPublicKey("k1"); !errors.Is(err, ErrNotReplicationKey) {
		t.Errorf("a KEK as a replication key: %v", err)
	}
	if _, err := primary.ShipDataKey(env, aad, []byte("short"), info); err == nil {
		t.Error("a malformed public key was accepted")
	}
	if fp := KeyFingerprint(pub); len(fp) != 32 {
		t.Errorf("fingerprint %q", fp)
	}
}

func BenchmarkShipReceive(b *testing.B) {
	primary := NewKeyring("k1")
	replica, _ := NewKeyring("k1").WithKEK(ReplicationKeyPrefix + "1")
	pub, _ := replica.ReplicationPublicKey(ReplicationKeyPrefix + "1")
	aad := ValueAAD("arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf", "v1")
	env, _ := primary.Encrypt("k1", make([]byte, 1<<10), aad)
	info := ReplicationInfo("eu-west-1", "arn", "v1")
	shipped, _ := primary.ShipDataKey(env, aad, pub, info)
	b.Run("ship", func(b *testing.B) {
		for b.Loop() {
			if _, err := primary.ShipDataKey(env, aad, pub, info); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("receive-1KiB", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := replica.ReceiveDataKey(ReplicationKeyPrefix+"1", shipped, info, env.Ciphertext, aad, "k1", "s"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
