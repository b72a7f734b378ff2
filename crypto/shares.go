package crypto

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Unseal shares, as `coffer operator init` prints them: a Shamir share of
// the root key (shamir.go) wrapped with what lets a node refuse a wrong one
// at once, before it is mixed with others:
//
//	base64( 0xC5 | init id (8 bytes) | threshold (1) | share | SHA-256(all before)[:4] )
//
// The init id names the initialization (or rekey) the share belongs to, so
// a share of an earlier key is refused with that reason; the checksum
// catches a mistyped share. Neither says anything about the root key.

const (
	shareMagic    = 0xC5
	initIDSize    = 8
	shareChecksum = 4
)

// Share is one decoded unseal share.
type Share struct {
	InitID    string // hex of the init id
	Threshold int    // shares needed to unseal
	Data      []byte // the Shamir share (len(root key)+1 bytes)
}

// NewInitID returns a fresh random init id (hex).
func NewInitID() string {
	return hex.EncodeToString(RandomKey()[:initIDSize])
}

// SplitRootKey splits a root key into n encoded shares of which threshold
// (2 or more) reconstruct it.
func SplitRootKey(root []byte, initID string, n, threshold int) ([]string, error) {
	if len(root) != KeySize {
		return nil, ErrKeySize
	}
	id, err := hex.DecodeString(initID)
	if err != nil || len(id) != initIDSize {
		return nil, fmt.Errorf("crypto: init id must be %d bytes of hex", initIDSize)
	}
	parts, err := SplitSecret(root, n, threshold)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(parts))
	for i, p := range parts {
		b := make([]byte, 0, 2+initIDSize+len(p)+shareChecksum)
		b = append(b, shareMagic)
		b = append(b, id...)
		b = append(b, byte(threshold))
		b = append(b, p...)
		sum := sha256.Sum256(b)
		b = append(b, sum[:shareChecksum]...)
		out[i] = base64.StdEncoding.EncodeToString(b)
		Zero(p)
		Zero(b)
	}
	return out, nil
}

// ErrNotShare means the text is not an unseal share (nor a mistyped one
// whose shape survived).
var ErrNotShare = errors.New("not an unseal share: paste one share exactly as `coffer operator init` or `coffer operator rekey` printed it")

// ParseShare decodes an encoded share and checks its checksum.
func ParseShare(s string) (Share, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 1+initIDSize+1+KeySize+1+shareChecksum || b[0] != shareMagic {
		return Share{}, ErrNotShare
	}
	body, sum := b[:len(b)-shareChecksum], b[len(b)-shareChecksum:]
	want := sha256.Sum256(body)
	if !bytes.Equal(sum, want[:shareChecksum]) {
		return Share{}, errors.New("the share's checksum does not match: it was changed or mistyped")
	}
	return Share{
		InitID:    hex.EncodeToString(body[1 : 1+initIDSize]),
		Threshold: int(body[1+initIDSize]),
		Data:      bytes.Clone(body[2+initIDSize:]),
	}, nil
}

// CombineRootKey reconstructs a root key from shares of one split. Shares
// that are all valid but too few, or from different splits, give a wrong
// key: the caller checks the result by opening the keyring with it.
func CombineRootKey(shares []Share) ([]byte, error) {
	parts := make([][]byte, len(shares))
	for i, s := range shares {
		parts[i] = s.Data
	}
	k, err := CombineShares(parts)
	if err != nil {
		return nil, err
	}
	if len(k) != KeySize {
		Zero(k)
		return nil, ErrKeySize
	}
	return k, nil
}
