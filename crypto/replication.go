package crypto

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Replication between regions (docs/replication.md). Each region's
// keyring holds an X25519 private key (a keyring entry like a KEK, under
// an id starting with ReplicationKeyPrefix); its public half is published
// to the other regions. A primary region ships a version's data key
// sealed by HPKE (RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
// AES-256-GCM) to the replica region's public key, with the replica
// region, the secret's ARN and the version id bound as info; the value's
// ciphertext travels as it is. The replica opens the data key with its
// private key and wraps it under its own KEK: no region holds another's
// KEKs or root key, and no plaintext data key crosses regions.

// ReplicationKeyPrefix starts the keyring ids of a region's replication
// key pairs; such an entry is never used as a KEK.
const ReplicationKeyPrefix = "replication/"

var (
	hpkeKEM  = hpke.DHKEM(ecdh.X25519())
	hpkeKDF  = hpke.HKDFSHA256()
	hpkeAEAD = hpke.AES256GCM()
)

// ErrNotReplicationKey means a keyring id that is not a replication key
// was asked for one, or the other way round.
var ErrNotReplicationKey = errors.New("crypto: not a replication key")

// ReplicationInfo is the HPKE info a shipped data key is bound to: a data
// key shipped for one replica region, secret or version does not open as
// another's.
func ReplicationInfo(replicaRegion, arn, versionID string) []byte {
	return []byte("coffer-replication-v1:" + replicaRegion + "\x00" + arn + "\x00" + versionID)
}

func (k *Keyring) replicationKey(id string) (*ecdh.PrivateKey, error) {
	if !strings.HasPrefix(id, ReplicationKeyPrefix) {
		return nil, ErrNotReplicationKey
	}
	raw, ok := k.keks[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKEK, id)
	}
	return ecdh.X25519().NewPrivateKey(raw)
}

// ReplicationPublicKey is the public half of the replication key pair id
// (32 bytes), which the region publishes.
func (k *Keyring) ReplicationPublicKey(id string) ([]byte, error) {
	priv, err := k.replicationKey(id)
	if err != nil {
		return nil, err
	}
	return priv.PublicKey().Bytes(), nil
}

// KeyFingerprint is how operators compare public keys: the first 16 bytes
// of its SHA-256, in hex.
func KeyFingerprint(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// ShipDataKey unwraps an envelope's data key and seals it by HPKE to a
// replica region's public key, bound to info (ReplicationInfo). The
// plaintext data key never leaves this call.
func (k *Keyring) ShipDataKey(e Envelope, aad, recipient, info []byte) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(recipient)
	if err != nil {
		return nil, fmt.Errorf("crypto: replica public key: %w", err)
	}
	pk, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return nil, err
	}
	dek, err := k.unwrap(e, aad)
	if err != nil {
		return nil, err
	}
	defer Zero(dek)
	return hpke.Seal(pk, hpkeKDF, hpkeAEAD, info, dek)
}

// ReceiveDataKey opens a data key shipped to this region's replication
// key keyID (ShipDataKey) and wraps it under this region's KEK kekID with
// the value's AAD, as a local write would: the envelope it returns holds
// the shipped value ciphertext. It also returns the value's keyed digest
// under this region's HMAC key (Digest, of the given kind), which the
// region's idempotency checks compare. A data key sealed to another key,
// bound to other info, or tampered with is ErrDecrypt, and so is a value
// ciphertext that does not open under it.
func (k *Keyring) ReceiveDataKey(keyID string, shipped, info []byte, ciphertext, aad []byte, kekID, kind string) (Envelope, []byte, error) {
	priv, err := k.replicationKey(keyID)
	if err != nil {
		return Envelope{}, nil, err
	}
	kek, err := k.kek(kekID)
	if err != nil {
		return Envelope{}, nil, err
	}
	sk, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return Envelope{}, nil, err
	}
	dek, err := hpke.Open(sk, hpkeKDF, hpkeAEAD, info, shipped)
	if err != nil {
		return Envelope{}, nil, ErrDecrypt
	}
	defer Zero(dek)
	if len(dek) != KeySize {
		return Envelope{}, nil, ErrDecrypt
	}
	// The value must open under the shipped data key with its AAD: a
	// ciphertext swapped in transit is caught here, not at the first read.
	pt, err := open(dek, ciphertext, aad)
	if err != nil {
		return Envelope{}, nil, err
	}
	digest := k.Digest(kind, pt)
	Zero(pt)
	wrapped, err := seal(kek, dek, aad)
	if err != nil {
		return Envelope{}, nil, err
	}
	return Envelope{KEKID: kekID, WrappedKey: wrapped, Ciphertext: ciphertext}, digest, nil
}
