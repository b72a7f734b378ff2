package fsm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/go-memdb"
)

// Keys: the region's key-encryption keys, as KMS presents them. The key
// material lives in the sealed keyring (Region.SealedKeyring); these
// records are what may be said about it in the clear: ids, versions,
// state, aliases. Every secret value's data key is wrapped by one KEK
// version (crypto.Envelope.KEKID).
//
// The default key (DefaultKeyID, alias/aws/secretsmanager) always exists:
// its first version is the region's first KEK (Region.KEKID). It has no
// record until it is first rotated; DefaultKey stands in for it before.

const (
	// DefaultKeyID is the id of the region's default key, which encrypts
	// every secret created without a KmsKeyId.
	DefaultKeyID = "default"
	// DefaultKeyAlias is the default key's alias, AWS's name for the
	// Secrets Manager managed key.
	DefaultKeyAlias = "alias/aws/secretsmanager"
	// AliasPrefix starts every alias name.
	AliasPrefix = "alias/"
)

// Key is a key-encryption key: a customer key, or the default key.
type Key struct {
	ID          string
	Description string
	// Disabled keys wrap no new data key, and the values whose data keys
	// they wrap cannot be read until the key is enabled again.
	Disabled        bool
	CreatedDate     int64
	LastChangedDate int64
	// Versions lists the key's versions, oldest first; the last is the
	// current one, which wraps new data keys.
	Versions []KeyVersion
}

// KeyVersion is one version of a key: its KEK in the keyring.
type KeyVersion struct {
	KEKID       string
	CreatedDate int64
}

// Current is the key's current version.
func (k *Key) Current() KeyVersion { return k.Versions[len(k.Versions)-1] }

// HasKEK reports whether kekID is one of the key's versions.
func (k *Key) HasKEK(kekID string) bool {
	for _, v := range k.Versions {
		if v.KEKID == kekID {
			return true
		}
	}
	return false
}

// Alias names a key: "alias/NAME".
type Alias struct {
	Name        string
	KeyID       string
	CreatedDate int64
}

// KEKIDFor is the KEK id of version n (from 1) of key keyID. The default
// key's first version is the region's first KEK, named when the region
// was initialized (Region.KEKID); every other version is "KEYID/N".
func KEKIDFor(keyID string, n int) string {
	return keyID + "/" + strconv.Itoa(n)
}

// keyOfKEK is the id of the key that kekID is a version of.
func keyOfKEK(rec *Region, kekID string) string {
	if rec != nil && kekID == rec.KEKID {
		return DefaultKeyID
	}
	if i := strings.LastIndexByte(kekID, '/'); i > 0 {
		return kekID[:i]
	}
	return ""
}

// KeyARN is the ARN of key id in the region.
func KeyARN(region, account, id string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", region, account, id)
}

// DefaultKey is the default key's record, or, before it has one (it is
// given one when first rotated), the key its first version makes. nil
// before the region is initialized.
func DefaultKey(txn *memdb.Txn) *Key {
	if k := storedKey(txn, DefaultKeyID); k != nil {
		return k
	}
	rec := RegionRecord(txn)
	if rec == nil {
		return nil
	}
	return &Key{ID: DefaultKeyID, Description: "Default key that protects secrets when no other key is given",
		CreatedDate: rec.CreatedDate, LastChangedDate: rec.CreatedDate,
		Versions: []KeyVersion{{KEKID: rec.KEKID, CreatedDate: rec.CreatedDate}}}
}

func storedKey(txn *memdb.Txn, id string) *Key {
	raw, err := txn.First(tableKeys, "id", id)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*Key)
}

// KeyByID returns a key by id (the default key included), or nil.
func KeyByID(txn *memdb.Txn, id string) *Key {
	if id == DefaultKeyID {
		return DefaultKey(txn)
	}
	return storedKey(txn, id)
}

// KeyOfKEK returns the key that KEK kekID is a version of, or nil.
func KeyOfKEK(txn *memdb.Txn, kekID string) *Key {
	k := KeyByID(txn, keyOfKEK(RegionRecord(txn), kekID))
	if k == nil || !k.HasKEK(kekID) {
		return nil
	}
	return k
}

// Keys returns every key, the default key first, then by id.
func Keys(txn *memdb.Txn) []*Key {
	var out []*Key
	if d := DefaultKey(txn); d != nil {
		out = append(out, d)
	}
	it, err := txn.Get(tableKeys, "id")
	if err != nil {
		return out
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if k := raw.(*Key); k.ID != DefaultKeyID {
			out = append(out, k)
		}
	}
	return out
}

// AliasByName returns an alias by its full name ("alias/NAME"), or nil.
func AliasByName(txn *memdb.Txn, name string) *Alias {
	raw, err := txn.First(tableAliases, "id", name)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*Alias)
}

// Aliases returns every alias, by name (the default key's excluded).
func Aliases(txn *memdb.Txn) []*Alias {
	it, err := txn.Get(tableAliases, "id")
	if err != nil {
		return nil
	}
	var out []*Alias
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Alias))
	}
	return out
}

// KeyAliases returns the names of key id's aliases.
func KeyAliases(txn *memdb.Txn, id string) []string {
	var out []string
	if id == DefaultKeyID {
		out = append(out, DefaultKeyAlias)
	}
	for _, a := range Aliases(txn) {
		if a.KeyID == id {
			out = append(out, a.Name)
		}
	}
	return out
}

// ResolveKey finds the key a KmsKeyId names in region and account: a key
// id, a key ARN, an alias ("alias/NAME") or an alias ARN; "" is the
// default key. nil if it names no key of this region.
func ResolveKey(txn *memdb.Txn, given, region, account string) *Key {
	id := given
	if rest, ok := strings.CutPrefix(given, "arn:aws:kms:"); ok {
		// arn:aws:kms:REGION:ACCOUNT:key/ID or …:alias/NAME
		parts := strings.SplitN(rest, ":", 3)
		if len(parts) != 3 || parts[0] != region || parts[1] != account {
			return nil
		}
		if kid, ok := strings.CutPrefix(parts[2], "key/"); ok && !strings.HasPrefix(kid, AliasPrefix) {
			id = kid
		} else if strings.HasPrefix(parts[2], AliasPrefix) {
			id = parts[2]
		} else {
			return nil
		}
	}
	switch {
	case id == "" || id == DefaultKeyAlias:
		return DefaultKey(txn)
	case strings.HasPrefix(id, AliasPrefix):
		a := AliasByName(txn, id)
		if a == nil {
			return nil
		}
		return KeyByID(txn, a.KeyID)
	}
	return KeyByID(txn, id)
}

// DataKeyCounts counts the data keys each KEK wraps and the secrets that
// use each key for new values (one pass over the secrets).
func DataKeyCounts(txn *memdb.Txn) (byKEK, secretsByKey map[string]int) {
	byKEK, secretsByKey = map[string]int{}, map[string]int{}
	it, err := txn.Get(tableSecrets, "id")
	if err != nil {
		return
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		s := raw.(*Secret)
		key := s.KeyID
		if key == "" {
			key = DefaultKeyID
		}
		secretsByKey[key]++
		for _, v := range s.Versions {
			if v.HasValue() {
				byKEK[v.Value.KEKID]++
			}
		}
	}
	return
}

// StaleDataKey is a version whose data key is wrapped by an older version
// of its key than the current one, which To names.
type StaleDataKey struct {
	Secret  *Secret
	Version *Version
	To      string
}

// StaleDataKeys returns up to limit versions whose data keys a KEK
// rotation left on an older version, from the secrets after ARN after
// (in ARN order), and the ARN to continue after ("" when the scan reached
// the end). skip leaves out versions the caller gave up on.
func StaleDataKeys(txn *memdb.Txn, after string, limit int, skip func(arn, versionID string) bool) (out []StaleDataKey, next string) {
	rec := RegionRecord(txn)
	it, err := txn.LowerBound(tableSecrets, "id", after)
	if err != nil || rec == nil {
		return nil, ""
	}
	current := map[string]string{} // KEK id → its key's current KEK id
	target := func(kekID string) string {
		if to, ok := current[kekID]; ok {
			return to
		}
		to := ""
		if k := KeyOfKEK(txn, kekID); k != nil {
			to = k.Current().KEKID
		}
		current[kekID] = to
		return to
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		s := raw.(*Secret)
		if s.ARN == after {
			continue
		}
		for _, v := range s.Versions {
			if !v.HasValue() {
				continue
			}
			if to := target(v.Value.KEKID); to != "" && to != v.Value.KEKID && (skip == nil || !skip(s.ARN, v.VersionID)) {
				out = append(out, StaleDataKey{Secret: s, Version: v, To: to})
			}
		}
		if len(out) >= limit {
			return out, s.ARN
		}
	}
	return out, ""
}
