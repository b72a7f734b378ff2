// Package crypto holds Coffer's key hierarchy and envelope encryption.
//
//	root key (32 bytes, from --root-key-file; never written by Coffer)
//	  └─ keyring: the region KEK and HMAC key, stored in Raft state sealed
//	     under the root key
//	       └─ per-version data key (AES-256-GCM), wrapped by the KEK; the
//	          value's AAD binds the secret's primary ARN and the version id
//
// Everything here is pure: no I/O except reading a root-key file, no network,
// no globals. Values are encrypted on the node that receives the request, so
// only ciphertext enters Raft commands, the log, snapshots and node-to-node
// traffic.
package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the size of every symmetric key: root key, KEK, data keys, HMAC key.
const KeySize = 32

// Sentinel errors.
var (
	// ErrDecrypt means a ciphertext failed authentication: wrong key, wrong
	// AAD (a value moved to another secret or version), or tampering.
	ErrDecrypt = errors.New("crypto: message authentication failed")
	// ErrKeySize means a key is not KeySize bytes.
	ErrKeySize = errors.New("crypto: key must be 32 bytes")
)

// RandomKey returns KeySize bytes from the CSPRNG.
func RandomKey() []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+).
		panic(err)
	}
	return k
}

// Zero overwrites a key's bytes; Go cannot promise no copies remain, but the
// buffers we own do not linger.
func Zero(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// EncodeRootKey is the root-key file format: base64 of 32 bytes and a newline.
func EncodeRootKey(k []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(k) + "\n")
}

// LoadRootKey reads a root-key file written by `coffer operator root-key generate`.
func LoadRootKey(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read root key: %w", err)
	}
	k, err := ParseRootKey(string(raw))
	if err != nil {
		return nil, fmt.Errorf("root key file %s: %w", path, err)
	}
	return k, nil
}

// ParseRootKey decodes a root key in the file format (base64 of 32 bytes;
// surrounding white space is ignored).
func ParseRootKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	if len(k) != KeySize {
		return nil, fmt.Errorf("%d bytes after base64 decoding, want %d", len(k), KeySize)
	}
	return k, nil
}

// seal encrypts plaintext with AES-256-GCM under key; the output is nonce||ciphertext.
func seal(key, plaintext, aad []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(plaintext)+gcm.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return gcm.Seal(out, out, plaintext, aad), nil
}

// open reverses seal.
func open(key, sealed, aad []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize()+gcm.Overhead() {
		return nil, ErrDecrypt
	}
	pt, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Keyring holds a region's plaintext keys in memory. It is built from the
// sealed form stored in Raft state and the root key.
type Keyring struct {
	KEKID string // identifies the KEK version that wraps new data keys
	kek   []byte
	mac   []byte
}

// sealedKeyring is the plaintext layout before sealing: KEK then HMAC key.
const keyringAAD = "coffer-keyring-v1:"

// NewKeyring generates a fresh keyring for a region.
func NewKeyring(kekID string) *Keyring {
	return &Keyring{KEKID: kekID, kek: RandomKey(), mac: RandomKey()}
}

// Seal returns the keyring encrypted under the root key, bound to the region.
func (k *Keyring) Seal(rootKey []byte, region string) ([]byte, error) {
	pt := make([]byte, 0, 2*KeySize)
	pt = append(append(pt, k.kek...), k.mac...)
	defer Zero(pt)
	return seal(rootKey, pt, []byte(keyringAAD+region+":"+k.KEKID))
}

// OpenKeyring decrypts a sealed keyring with the root key. A wrong root key
// gives ErrDecrypt: the node stays sealed.
func OpenKeyring(rootKey, sealed []byte, region, kekID string) (*Keyring, error) {
	pt, err := open(rootKey, sealed, []byte(keyringAAD+region+":"+kekID))
	if err != nil {
		return nil, err
	}
	if len(pt) != 2*KeySize {
		return nil, ErrDecrypt
	}
	return &Keyring{KEKID: kekID, kek: pt[:KeySize:KeySize], mac: pt[KeySize:]}, nil
}

// Envelope is an encrypted secret value as stored in Raft state.
type Envelope struct {
	KEKID      string // which KEK wraps the data key
	WrappedKey []byte // the data key sealed under the KEK
	Ciphertext []byte // the value sealed under the data key
}

// ValueAAD binds a value to the secret's primary ARN and the version id, so a
// ciphertext copied to another secret or version does not decrypt.
func ValueAAD(arn, versionID string) []byte {
	return []byte("coffer-value-v1:" + arn + "\x00" + versionID)
}

// Encrypt seals a value under a fresh data key, wrapped by the KEK.
func (k *Keyring) Encrypt(value, aad []byte) (Envelope, error) {
	dek := RandomKey()
	defer Zero(dek)
	ct, err := seal(dek, value, aad)
	if err != nil {
		return Envelope{}, err
	}
	wrapped, err := seal(k.kek, dek, aad)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{KEKID: k.KEKID, WrappedKey: wrapped, Ciphertext: ct}, nil
}

// Decrypt opens an envelope sealed by Encrypt with the same AAD.
func (k *Keyring) Decrypt(e Envelope, aad []byte) ([]byte, error) {
	if e.KEKID != k.KEKID {
		return nil, fmt.Errorf("crypto: data key wrapped by unknown KEK %q", e.KEKID)
	}
	dek, err := open(k.kek, e.WrappedKey, aad)
	if err != nil {
		return nil, err
	}
	defer Zero(dek)
	return open(dek, e.Ciphertext, aad)
}

// Digest is the keyed digest used for ClientRequestToken idempotency: two
// requests carry the same value exactly when their digests match, and the
// FSM can compare them without plaintext. The kind ("s" for SecretString,
// "b" for SecretBinary) is part of the input: the same bytes as a string
// and as binary are different values.
func (k *Keyring) Digest(kind string, value []byte) []byte {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write(value)
	return m.Sum(nil)
}

// SealSecret encrypts a small secret of the region's own (an access key's
// secret half) under the KEK, bound to aad. Sealed under the keyring rather
// than the root key, it survives a rekey, which re-seals only the keyring.
func (k *Keyring) SealSecret(plaintext []byte, aad string) ([]byte, error) {
	return seal(k.kek, plaintext, []byte("coffer-keyring-secret-v1:"+aad))
}

// OpenSecret reverses SealSecret.
func (k *Keyring) OpenSecret(sealed []byte, aad string) ([]byte, error) {
	return open(k.kek, sealed, []byte("coffer-keyring-secret-v1:"+aad))
}

// SealWithRoot encrypts a small secret directly under the root key, bound
// to aad. Access keys were sealed this way before they moved under the
// keyring; it stays for tests of that migration.
func SealWithRoot(rootKey, plaintext []byte, aad string) ([]byte, error) {
	return seal(rootKey, plaintext, []byte("coffer-root-v1:"+aad))
}

// OpenWithRoot reverses SealWithRoot: it opens access keys sealed by
// earlier versions until a rekey re-seals them under the keyring.
func OpenWithRoot(rootKey, sealed []byte, aad string) ([]byte, error) {
	return open(rootKey, sealed, []byte("coffer-root-v1:"+aad))
}
