package crypto

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestKeyring_SealOpenRoundTrip(t *testing.T) {
	root := RandomKey()
	kr := NewKeyring("k1")
	sealed, err := kr.Seal(root, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenKeyring(root, sealed, "us-east-1", "k1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.kek, kr.kek) || !bytes.Equal(got.mac, kr.mac) {
		t.Fatal("keyring changed in round trip")
	}
	if _, err := OpenKeyring(RandomKey(), sealed, "us-east-1", "k1"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong root key: got %v, want ErrDecrypt", err)
	}
	if _, err := OpenKeyring(root, sealed, "us-west-2", "k1"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("other region: got %v, want ErrDecrypt", err)
	}
}

func TestEnvelope_AADBindsArnAndVersion(t *testing.T) {
	kr := NewKeyring("k1")
	aad := ValueAAD("arn:aws:secretsmanager:us-east-1:000000000000:secret:a-AbCdEf", "v1")
	env, err := kr.Encrypt([]byte("hunter2"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(env.Ciphertext, []byte("hunter2")) {
		t.Fatal("plaintext visible in ciphertext")
	}
	pt, err := kr.Decrypt(env, aad)
	if err != nil || string(pt) != "hunter2" {
		t.Fatalf("decrypt = %q, %v", pt, err)
	}
	other := ValueAAD("arn:aws:secretsmanager:us-east-1:000000000000:secret:a-AbCdEf", "v2")
	if _, err := kr.Decrypt(env, other); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("moved to another version: got %v, want ErrDecrypt", err)
	}
	env.Ciphertext[len(env.Ciphertext)-1] ^= 1
	if _, err := kr.Decrypt(env, aad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered: got %v, want ErrDecrypt", err)
	}
}

func TestDigest_KindMatters(t *testing.T) {
	kr := NewKeyring("k1")
	if bytes.Equal(kr.Digest("s", []byte("x")), kr.Digest("b", []byte("x"))) {
		t.Fatal("string and binary values with the same bytes must differ")
	}
	if !bytes.Equal(kr.Digest("s", []byte("x")), kr.Digest("s", []byte("x"))) {
		t.Fatal("digest not deterministic")
	}
}

func TestLoadRootKey(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "root.key")
	if err := os.WriteFile(good, EncodeRootKey(RandomKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRootKey(good); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "short.key")
	os.WriteFile(bad, []byte("c2hvcnQ=\n"), 0o600)
	if _, err := LoadRootKey(bad); err == nil {
		t.Fatal("short key accepted")
	}
}
