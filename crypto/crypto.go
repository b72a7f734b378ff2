// Package crypto holds Coffer's key hierarchy and envelope encryption.
//
//	root key (32 bytes, from --root-key-file; never written by Coffer)
//	  └─ keyring: the region's KEKs (every version of the default key and
//	     of each customer key) and HMAC key, stored in Raft state sealed
//	     under the root key
//	       └─ per-version data key (AES-256-GCM), wrapped by a KEK version;
//	          the value's AAD binds the secret's primary ARN and the version id
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
	"sort"
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

// Keyring holds a region's plaintext keys in memory: its key-encryption
// keys (every version of the default key and of each customer key, by
// KEK id) and its HMAC key. It is built from the sealed form stored in
// Raft state and the root key. A Keyring is never changed once built:
// WithKEK returns a new one, so readers can hold one without locks.
type Keyring struct {
	// KEKID is the KEK that seals the region's own small secrets (access
	// keys): the default key's first version, which is never removed.
	KEKID string
	// Gen is the generation of the sealed keyring this was opened from
	// (the region record's KeyringGen); the region reopens its keyring
	// when the record's generation moves on.
	Gen uint64
	// Sealed is the sealed form this was opened from (the record's
	// SealedKeyring); nil for a keyring built here. With Gen it tells
	// whether the record still holds this keyring: a snapshot restore can
	// bring back a different keyring under a generation this node has
	// already seen.
	Sealed []byte
	keks   map[string][]byte
	mac    []byte
}

const (
	// keyringAAD binds a sealed keyring of the first format (the default
	// KEK, then the HMAC key) to its region and KEK id.
	keyringAAD = "coffer-keyring-v1:"
	// keyringV2AAD binds a sealed keyring of the second format (the HMAC
	// key, then every KEK with its id) to its region.
	keyringV2AAD = "coffer-keyring-v2:"
	// maxKEKIDLen bounds a KEK id, whose length is one byte in the format.
	maxKEKIDLen = 255
)

// NewKeyring generates a fresh keyring for a region, with one KEK.
func NewKeyring(kekID string) *Keyring {
	return &Keyring{KEKID: kekID, keks: map[string][]byte{kekID: RandomKey()}, mac: RandomKey()}
}

// WithKEK returns a copy of the keyring with a new random KEK named id
// (a customer key's or a new key version's). The KEK material is shared
// with k, not copied: neither keyring changes it.
func (k *Keyring) WithKEK(id string) (*Keyring, error) {
	if id == "" || len(id) > maxKEKIDLen {
		return nil, fmt.Errorf("crypto: KEK id must be 1 to %d bytes", maxKEKIDLen)
	}
	if _, dup := k.keks[id]; dup {
		return nil, fmt.Errorf("crypto: the keyring already holds KEK %q", id)
	}
	c := &Keyring{KEKID: k.KEKID, Gen: k.Gen, keks: make(map[string][]byte, len(k.keks)+1), mac: k.mac}
	for kid, kek := range k.keks {
		c.keks[kid] = kek
	}
	c.keks[id] = RandomKey()
	return c, nil
}

// Has reports whether the keyring holds KEK id.
func (k *Keyring) Has(id string) bool {
	_, ok := k.keks[id]
	return ok
}

// KEKs is the number of KEKs the keyring holds.
func (k *Keyring) KEKs() int { return len(k.keks) }

// Seal returns the keyring encrypted under the root key, bound to the
// region, in the second format: the HMAC key, the id of KEKID (a one-byte
// length, then the id), then each KEK as a one-byte id length, the id and
// the key, in id order.
func (k *Keyring) Seal(rootKey []byte, region string) ([]byte, error) {
	ids := make([]string, 0, len(k.keks))
	for id := range k.keks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	pt := make([]byte, 0, KeySize+len(ids)*(1+16+KeySize))
	pt = append(pt, k.mac...)
	if !k.Has(k.KEKID) {
		return nil, fmt.Errorf("crypto: the keyring does not hold its own KEK %q", k.KEKID)
	}
	pt = append(pt, byte(len(k.KEKID)))
	pt = append(pt, k.KEKID...)
	for _, id := range ids {
		if len(id) == 0 || len(id) > maxKEKIDLen {
			return nil, fmt.Errorf("crypto: KEK id %q must be 1 to %d bytes", id, maxKEKIDLen)
		}
		pt = append(pt, byte(len(id)))
		pt = append(pt, id...)
		pt = append(pt, k.keks[id]...)
	}
	defer Zero(pt)
	return seal(rootKey, pt, []byte(keyringV2AAD+region))
}

// OpenKeyring decrypts a sealed keyring with the root key. legacyKEKID is
// set for a keyring in the first format (sealed by an earlier version and
// not changed since), which names its one KEK; "" means the second
// format. A wrong root key gives ErrDecrypt: the node stays sealed.
func OpenKeyring(rootKey, sealed []byte, region, legacyKEKID string) (*Keyring, error) {
	if legacyKEKID != "" {
		pt, err := open(rootKey, sealed, []byte(keyringAAD+region+":"+legacyKEKID))
		if err != nil {
			return nil, err
		}
		if len(pt) != 2*KeySize {
			return nil, ErrDecrypt
		}
		return &Keyring{KEKID: legacyKEKID, keks: map[string][]byte{legacyKEKID: pt[:KeySize:KeySize]}, mac: pt[KeySize:]}, nil
	}
	pt, err := open(rootKey, sealed, []byte(keyringV2AAD+region))
	if err != nil {
		return nil, err
	}
	if len(pt) < KeySize {
		return nil, ErrDecrypt
	}
	k := &Keyring{keks: map[string][]byte{}, mac: pt[:KeySize:KeySize]}
	rest := pt[KeySize:]
	if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
		return nil, ErrDecrypt
	}
	k.KEKID, rest = string(rest[1:1+int(rest[0])]), rest[1+int(rest[0]):]
	for len(rest) > 0 {
		n := int(rest[0])
		if n == 0 || len(rest) < 1+n+KeySize {
			return nil, ErrDecrypt
		}
		id := string(rest[1 : 1+n])
		k.keks[id] = rest[1+n : 1+n+KeySize : 1+n+KeySize]
		rest = rest[1+n+KeySize:]
	}
	if !k.Has(k.KEKID) {
		return nil, ErrDecrypt
	}
	return k, nil
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

// Encrypt seals a value under a fresh data key, wrapped by KEK kekID.
func (k *Keyring) Encrypt(kekID string, value, aad []byte) (Envelope, error) {
	kek, err := k.kek(kekID)
	if err != nil {
		return Envelope{}, err
	}
	dek := RandomKey()
	defer Zero(dek)
	ct, err := seal(dek, value, aad)
	if err != nil {
		return Envelope{}, err
	}
	wrapped, err := seal(kek, dek, aad)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{KEKID: kekID, WrappedKey: wrapped, Ciphertext: ct}, nil
}

// Decrypt opens an envelope sealed by Encrypt with the same AAD.
func (k *Keyring) Decrypt(e Envelope, aad []byte) ([]byte, error) {
	dek, err := k.unwrap(e, aad)
	if err != nil {
		return nil, err
	}
	defer Zero(dek)
	return open(dek, e.Ciphertext, aad)
}

// Rewrap returns the envelope with its data key unwrapped and wrapped
// again by KEK to; the value's ciphertext is untouched (KEK rotation,
// a secret moved to another key). The data key never leaves this call.
func (k *Keyring) Rewrap(e Envelope, aad []byte, to string) (Envelope, error) {
	kek, err := k.kek(to)
	if err != nil {
		return Envelope{}, err
	}
	dek, err := k.unwrap(e, aad)
	if err != nil {
		return Envelope{}, err
	}
	defer Zero(dek)
	wrapped, err := seal(kek, dek, aad)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{KEKID: to, WrappedKey: wrapped, Ciphertext: e.Ciphertext}, nil
}

// ErrUnknownKEK means an envelope names a KEK this keyring does not hold:
// the keyring is older than the envelope (reopen it), or the state is
// damaged.
var ErrUnknownKEK = errors.New("crypto: data key wrapped by a KEK this keyring does not hold")

func (k *Keyring) kek(id string) ([]byte, error) {
	if strings.HasPrefix(id, ReplicationKeyPrefix) {
		return nil, fmt.Errorf("crypto: %q is a replication key, not a KEK", id)
	}
	kek, ok := k.keks[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKEK, id)
	}
	return kek, nil
}

func (k *Keyring) unwrap(e Envelope, aad []byte) ([]byte, error) {
	kek, err := k.kek(e.KEKID)
	if err != nil {
		return nil, err
	}
	return open(kek, e.WrappedKey, aad)
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
// secret half) under KEK kekID, bound to aad. Sealed under the keyring
// rather than the root key, it survives a rekey, which re-seals only the
// keyring.
func (k *Keyring) SealSecret(kekID string, plaintext []byte, aad string) ([]byte, error) {
	kek, err := k.kek(kekID)
	if err != nil {
		return nil, err
	}
	return seal(kek, plaintext, []byte("coffer-keyring-secret-v1:"+aad))
}

// OpenSecret reverses SealSecret.
func (k *Keyring) OpenSecret(kekID string, sealed []byte, aad string) ([]byte, error) {
	kek, err := k.kek(kekID)
	if err != nil {
		return nil, err
	}
	return open(kek, sealed, []byte("coffer-keyring-secret-v1:"+aad))
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

// KeysForLeakTest returns copies of the plaintext keys behind an
// envelope, its data key and the KEK that wraps it, for the tests that
// scan data directories for them. Nothing in the product calls it.
func (k *Keyring) KeysForLeakTest(e Envelope, aad []byte) (dek, kek []byte, err error) {
	dek, err = k.unwrap(e, aad)
	if err != nil {
		return nil, nil, err
	}
	return dek, append([]byte(nil), k.keks[e.KEKID]...), nil
}

// RandomUUID is a random version 4 UUID: a KMS key id, a scheduled
// rotation's version id (the form the AWS SDKs give ClientRequestToken).
func RandomUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
