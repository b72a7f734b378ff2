package crypto

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestKeyring_SealOpenRoundTrip(t *testing.T) {
	root := RandomKey()
	kr := NewKeyring("k1")
	sealed, err := kr.Seal(root, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenKeyring(root, sealed, "us-east-1", "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.keks["k1"], kr.keks["k1"]) || !bytes.Equal(got.mac, kr.mac) || got.KEKID != "k1" {
		t.Fatal("keyring changed in round trip")
	}
	if _, err := OpenKeyring(RandomKey(), sealed, "us-east-1", ""); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong root key: got %v, want ErrDecrypt", err)
	}
	if _, err := OpenKeyring(root, sealed, "us-west-2", ""); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("other region: got %v, want ErrDecrypt", err)
	}
}

func TestEnvelope_AADBindsArnAndVersion(t *testing.T) {
	kr := NewKeyring("k1")
	aad := ValueAAD("arn:aws:secretsmanager:us-east-1:000000000000:secret:a-AbCdEf", "v1")
	env, err := kr.Encrypt("k1", []byte("hunter2"), aad)
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

// A keyring sealed by an earlier version (the first format: one KEK, then
// the HMAC key, bound to the KEK id) still opens, and seals again in the
// second format with every KEK it has gained.
func TestKeyring_OpensTheFirstFormat(t *testing.T) {
	root, kek, mac := RandomKey(), RandomKey(), RandomKey()
	v1, err := seal(root, append(slices.Clone(kek), mac...), []byte(keyringAAD+"us-east-1:k1"))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := OpenKeyring(root, v1, "us-east-1", "k1")
	if err != nil {
		t.Fatal(err)
	}
	if kr.KEKID != "k1" || !bytes.Equal(kr.keks["k1"], kek) || !bytes.Equal(kr.mac, mac) {
		t.Fatal("first-format keyring opened wrong")
	}
	if _, err := OpenKeyring(root, v1, "us-east-1", ""); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("first format opened as the second: %v", err)
	}
	grown, err := kr.WithKEK("default/2")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := grown.Seal(root, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := OpenKeyring(root, sealed, "us-east-1", "")
	if err != nil {
		t.Fatal(err)
	}
	if again.KEKID != "k1" || again.KEKs() != 2 || !bytes.Equal(again.keks["k1"], kek) ||
		!bytes.Equal(again.keks["default/2"], grown.keks["default/2"]) || !bytes.Equal(again.mac, mac) {
		t.Fatal("grown keyring changed in its round trip")
	}
}

// WithKEK leaves the keyring it grew from unchanged (readers hold it
// without locks), refuses a duplicate id, and a data key wrapped by one
// KEK re-wraps under another without touching the value's ciphertext.
func TestKeyring_WithKEKAndRewrap(t *testing.T) {
	kr := NewKeyring("k1")
	grown, err := kr.WithKEK("key-a/1")
	if err != nil {
		t.Fatal(err)
	}
	if kr.Has("key-a/1") || !grown.Has("key-a/1") || !grown.Has("k1") {
		t.Fatal("WithKEK changed the original or lost a KEK")
	}
	if _, err := grown.WithKEK("k1"); err == nil {
		t.Fatal("a duplicate KEK id was accepted")
	}
	if _, err := grown.WithKEK(""); err == nil {
		t.Fatal("an empty KEK id was accepted")
	}
	aad := ValueAAD("arn:aws:secretsmanager:us-east-1:000000000000:secret:a-AbCdEf", "v1")
	env, err := grown.Encrypt("k1", []byte("value"), aad)
	if err != nil {
		t.Fatal(err)
	}
	moved, err := grown.Rewrap(env, aad, "key-a/1")
	if err != nil {
		t.Fatal(err)
	}
	if moved.KEKID != "key-a/1" || !bytes.Equal(moved.Ciphertext, env.Ciphertext) || bytes.Equal(moved.WrappedKey, env.WrappedKey) {
		t.Fatalf("rewrap: %+v", moved)
	}
	if pt, err := grown.Decrypt(moved, aad); err != nil || string(pt) != "value" {
		t.Fatalf("re-wrapped value: %q %v", pt, err)
	}
	if _, err := kr.Decrypt(moved, aad); !errors.Is(err, ErrUnknownKEK) {
		t.Fatalf("a keyring without the KEK: %v, want ErrUnknownKEK", err)
	}
	if _, err := grown.Rewrap(env, ValueAAD("arn:other", "v1"), "key-a/1"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("rewrap under the wrong AAD: %v", err)
	}
	if _, err := grown.Encrypt("nope", []byte("x"), aad); !errors.Is(err, ErrUnknownKEK) {
		t.Fatalf("encrypt under an unknown KEK: %v", err)
	}
}
