package fsm

import (
	"slices"
	"strings"

	"github.com/cofferhq/coffer/apierr"
	"github.com/hashicorp/go-memdb"
)

// Command types applied here (command.go: the log format; never
// renumber or reuse one).
const (
	CmdRekey CommandType = 17
)

// Rekey replaces the root key: the keyring sealed under the new one, the
// new seal configuration, and every access key re-sealed under the
// keyring (keys sealed under the old root key by earlier versions move
// under the keyring here, so that nothing depends on the old root key).
// PrevInitID is the seal the rekey was computed against: if another rekey
// landed first, this one is refused and changes nothing.
type Rekey struct {
	PrevInitID string
	// PrevGen is the keyring generation the re-sealed keyring was
	// computed from (a rekey re-seals every KEK: one created or rotated
	// meanwhile would be lost).
	PrevGen       uint64
	SealedKeyring []byte
	// KeyringFormat is SealedKeyring's format (Region.KeyringFormat); 0 in
	// a rekey written before the second format existed.
	KeyringFormat int `codec:",omitempty"`
	Seal          SealConfig
	AccessKeys    []AccessKey
	// SealedRootKey is the new root key sealed under the keyring
	// (Region.SealedRootKey).
	SealedRootKey []byte `codec:",omitempty"`
}

func init() {
	register(CmdRekey, "Rekey", applyRekey)
}

func applyRekey(txn *memdb.Txn, index uint64, c *Rekey) any {
	rec := RegionRecord(txn)
	if rec == nil {
		return apierr.New(apierr.InvalidRequest, "the region is not initialized")
	}
	if rec.Seal.InitID != c.PrevInitID {
		return apierr.New(apierr.InvalidRequest, "another rekey finished first; nothing was changed: rekey again")
	}
	// Every access key must be in the command, re-sealed: one left out
	// would be sealed under a root key nobody holds any more.
	given := make(map[string]*AccessKey, len(c.AccessKeys))
	for i := range c.AccessKeys {
		given[c.AccessKeys[i].AccessKeyID] = &c.AccessKeys[i]
	}
	it, err := txn.Get(tableAccessKeys, "id")
	if err != nil {
		return internal(err)
	}
	n := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		ak := raw.(*AccessKey)
		g := given[ak.AccessKeyID]
		if g == nil || g.Identity != ak.Identity {
			return apierr.New(apierr.InvalidRequest, "the access keys changed while the rekey was computed; nothing was changed: rekey again")
		}
		n++
	}
	if n != len(given) {
		return apierr.New(apierr.InvalidRequest, "the rekey names access keys the region does not have; nothing was changed")
	}
	if rec.KeyringGen != c.PrevGen {
		return apierr.New(apierr.InvalidRequest, "a key was created or rotated while the rekey was computed; nothing was changed: rekey again")
	}
	for _, ak := range given {
		// Only the sealing changes: a key's status or last use recorded
		// while the rekey was computed stays.
		k := *LookupAccessKey(txn, ak.AccessKeyID)
		k.SealedSecret, k.KEKID = ak.SealedSecret, ak.KEKID
		if err := txn.Insert(tableAccessKeys, &k); err != nil {
			return internal(err)
		}
	}
	r := *rec
	r.SealedKeyring, r.Seal, r.SealedRootKey = c.SealedKeyring, c.Seal, c.SealedRootKey
	r.KeyringGen, r.KeyringFormat = rec.KeyringGen+1, c.KeyringFormat
	if err := txn.Insert(tableRegion, &r); err != nil {
		return internal(err)
	}
	return &Result{}
}

// Key commands (keys.go). A command that changes the sealed keyring
// (CreateKey, RotateKey, and Rekey) carries the whole keyring sealed
// again and the generation it was computed against (PrevGen); if another
// change landed first it is refused, changes nothing, and is computed
// again (region/kms.go).
const (
	CmdCreateKey   CommandType = 18
	CmdRotateKey   CommandType = 19
	CmdSetKeyState CommandType = 20
	CmdSetAlias    CommandType = 21
	CmdRewrapKeys  CommandType = 22
	// CmdInitReplicationKey gives the region its replication key pair
	// (docs/replication.md).
	CmdInitReplicationKey CommandType = 23
)

// CreateKey adds a customer key (its first version's KEK is in
// SealedKeyring) and, when Alias is set, names it.
type CreateKey struct {
	PrevGen       uint64
	SealedKeyring []byte
	Key           Key
	Alias         string
}

// RotateKey adds version Version to key KeyID; its KEK is in
// SealedKeyring. New data keys use it at once.
type RotateKey struct {
	PrevGen       uint64
	SealedKeyring []byte
	KeyID         string
	Version       KeyVersion
}

// SetKeyState enables or disables a customer key.
type SetKeyState struct {
	KeyID    string
	Disabled bool
	Date     int64
}

// SetAlias points alias Name at key KeyID, creating it if needed; an
// empty KeyID deletes the alias.
type SetAlias struct {
	Name  string
	KeyID string
	Date  int64
}

// RewrapKeys replaces the wrapped data keys of versions: each item is
// applied only if the version's data key is still wrapped by From (a
// write or another re-wrap may have moved it since it was read), and is
// skipped otherwise. The values' ciphertexts do not change, nor does any
// secret's ModifyIndex or LastChangedDate: nothing a client sees changed.
type RewrapKeys struct {
	Items []Rewrap
}

// Rewrap is one version's data key wrapped again.
type Rewrap struct {
	ARN        string
	VersionID  string
	From       string
	KEKID      string
	WrappedKey []byte
}

// InitReplicationKey adds the region's replication key pair: the private
// half is keyring entry KeyID (in SealedKeyring), the public half is
// published. Applied once per region.
type InitReplicationKey struct {
	PrevGen       uint64
	SealedKeyring []byte
	KeyID         string
	PublicKey     []byte
}

func init() {
	register(CmdInitReplicationKey, "InitReplicationKey", applyInitReplicationKey)
	register(CmdCreateKey, "CreateKey", applyCreateKey)
	register(CmdRotateKey, "RotateKey", applyRotateKey)
	register(CmdSetKeyState, "SetKeyState", applySetKeyState)
	register(CmdSetAlias, "SetAlias", applySetAlias)
	register(CmdRewrapKeys, "RewrapKeys", applyRewrapKeys)
}

// errKeyringMoved: a keyring change computed against an older generation.
func errKeyringMoved() *apierr.Error {
	return apierr.New(apierr.InternalServiceError, "the region's keyring changed while this change was computed; nothing was changed: retry")
}

// errNoKey is AWS's answer for a key that does not exist.
func errNoKey(id string) *apierr.Error {
	return apierr.Newf(apierr.ResourceNotFound, "Key '%s' does not exist.", id)
}

// newKeyring installs a re-sealed keyring computed against prevGen.
func newKeyring(txn *memdb.Txn, prevGen uint64, sealed []byte) *apierr.Error {
	rec := RegionRecord(txn)
	if rec == nil {
		return apierr.New(apierr.InvalidRequest, "the region is not initialized")
	}
	if rec.KeyringGen != prevGen {
		return errKeyringMoved()
	}
	r := *rec
	r.SealedKeyring, r.KeyringGen, r.KeyringFormat = sealed, rec.KeyringGen+1, 2
	if err := txn.Insert(tableRegion, &r); err != nil {
		return internal(err)
	}
	return nil
}

func applyCreateKey(txn *memdb.Txn, index uint64, c *CreateKey) any {
	if c.Key.ID == "" || c.Key.ID == DefaultKeyID || len(c.Key.Versions) != 1 {
		return apierr.New(apierr.InvalidParameter, "a new key needs an id of its own and exactly one version")
	}
	if storedKey(txn, c.Key.ID) != nil {
		return apierr.Newf(apierr.InternalServiceError, "the generated key id %s is already in use; retry", c.Key.ID)
	}
	if c.Alias != "" {
		if e := CheckAliasName(c.Alias); e != nil {
			return e
		}
		if AliasByName(txn, c.Alias) != nil {
			return errAliasExists(c.Alias)
		}
	}
	if e := newKeyring(txn, c.PrevGen, c.SealedKeyring); e != nil {
		return e
	}
	k := c.Key
	k.Versions = slices.Clone(c.Key.Versions)
	if err := txn.Insert(tableKeys, &k); err != nil {
		return internal(err)
	}
	if c.Alias != "" {
		if err := txn.Insert(tableAliases, &Alias{Name: c.Alias, KeyID: k.ID, CreatedDate: k.CreatedDate}); err != nil {
			return internal(err)
		}
	}
	return &Result{}
}

func applyRotateKey(txn *memdb.Txn, index uint64, c *RotateKey) any {
	k := KeyByID(txn, c.KeyID)
	if k == nil {
		return errNoKey(c.KeyID)
	}
	if k.Disabled {
		return errKeyDisabled(c.KeyID)
	}
	if k.HasKEK(c.Version.KEKID) {
		return apierr.Newf(apierr.InvalidParameter, "key %s already has a version %s", c.KeyID, c.Version.KEKID)
	}
	if e := newKeyring(txn, c.PrevGen, c.SealedKeyring); e != nil {
		return e
	}
	n := *k
	n.Versions = append(slices.Clone(k.Versions), c.Version)
	n.LastChangedDate = max(n.LastChangedDate, c.Version.CreatedDate)
	if err := txn.Insert(tableKeys, &n); err != nil {
		return internal(err)
	}
	return &Result{}
}

func errKeyDisabled(id string) *apierr.Error {
	return apierr.Newf(apierr.InvalidRequest, "key %s is disabled: enable it first", id)
}

func applySetKeyState(txn *memdb.Txn, index uint64, c *SetKeyState) any {
	if c.KeyID == DefaultKeyID {
		if !c.Disabled {
			return &Result{} // always enabled
		}
		return apierr.New(apierr.InvalidParameter, "the default key (alias/aws/secretsmanager) cannot be disabled")
	}
	k := storedKey(txn, c.KeyID)
	if k == nil {
		return errNoKey(c.KeyID)
	}
	if k.Disabled == c.Disabled {
		return &Result{}
	}
	n := *k
	n.Disabled, n.LastChangedDate = c.Disabled, max(k.LastChangedDate, c.Date)
	if err := txn.Insert(tableKeys, &n); err != nil {
		return internal(err)
	}
	return &Result{}
}

func errAliasExists(name string) *apierr.Error {
	return apierr.Newf(apierr.ResourceExists, "An alias with the name %s already exists", name)
}

// CheckAliasName applies KMS's rules for alias names.
func CheckAliasName(name string) *apierr.Error {
	rest, ok := strings.CutPrefix(name, AliasPrefix)
	switch {
	case !ok || rest == "":
		return apierr.Newf(apierr.InvalidParameter, "alias name %q must start with %q and name something", name, AliasPrefix)
	case strings.HasPrefix(rest, "aws/"):
		return apierr.Newf(apierr.InvalidParameter, "alias name %q is reserved: names under alias/aws/ belong to AWS managed keys", name)
	case len(name) > 256:
		return apierr.New(apierr.InvalidParameter, "alias names are at most 256 characters")
	}
	for _, r := range rest {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/_-", r)) {
			return apierr.Newf(apierr.InvalidParameter, "alias name %q may contain only letters, digits, '/', '_' and '-'", name)
		}
	}
	return nil
}

func applySetAlias(txn *memdb.Txn, index uint64, c *SetAlias) any {
	if e := CheckAliasName(c.Name); e != nil {
		return e
	}
	old := AliasByName(txn, c.Name)
	if c.KeyID == "" {
		if old == nil {
			return apierr.Newf(apierr.ResourceNotFound, "Alias %s is not found.", c.Name)
		}
		if err := txn.Delete(tableAliases, old); err != nil {
			return internal(err)
		}
		return &Result{}
	}
	if KeyByID(txn, c.KeyID) == nil {
		return errNoKey(c.KeyID)
	}
	a := &Alias{Name: c.Name, KeyID: c.KeyID, CreatedDate: c.Date}
	if old != nil {
		a.CreatedDate = old.CreatedDate
	}
	if err := txn.Insert(tableAliases, a); err != nil {
		return internal(err)
	}
	return &Result{}
}

func applyRewrapKeys(txn *memdb.Txn, index uint64, c *RewrapKeys) any {
	// The items of one secret are applied to one clone of it.
	changed := map[string]*Secret{}
	n := 0
	for _, it := range c.Items {
		s := changed[it.ARN]
		if s == nil {
			raw, err := txn.First(tableSecrets, "id", it.ARN)
			if err != nil {
				return internal(err)
			}
			if raw == nil {
				continue // removed since it was read
			}
			s = raw.(*Secret).clone()
		}
		v := s.Version(it.VersionID)
		if v == nil || v.Value.KEKID != it.From || KeyOfKEK(txn, it.KEKID) == nil {
			continue
		}
		v.Value.KEKID, v.Value.WrappedKey = it.KEKID, it.WrappedKey
		changed[it.ARN] = s
		n++
	}
	for _, s := range changed {
		// Not a change a client sees: ModifyIndex stays (the change feed
		// ships only what replicas need; a replica wraps data keys under
		// its own keys).
		if err := txn.Insert(tableSecrets, s); err != nil {
			return internal(err)
		}
	}
	return &Result{Count: n}
}

// checkWrap refuses a new version whose data key is wrapped by a KEK
// that is not a version of an enabled key: the key was disabled, or
// never existed, between the node's choice and this apply.
func checkWrap(txn *memdb.Txn, kekID string) *apierr.Error {
	rec := RegionRecord(txn)
	if rec == nil || kekID == "" {
		return nil // not a region's state (FSM unit tests), or no value
	}
	k := KeyOfKEK(txn, kekID)
	if k == nil {
		return apierr.New(apierr.EncryptionFailure, "Secrets Manager can't find the specified KMS key.")
	}
	if k.Disabled {
		return apierr.Newf(apierr.EncryptionFailure,
			"Secrets Manager can't encrypt the protected secret text using the provided KMS key %s: the key is disabled.",
			KeyARN(rec.Name, rec.AccountID, k.ID))
	}
	return nil
}

func applyInitReplicationKey(txn *memdb.Txn, index uint64, c *InitReplicationKey) any {
	rec := RegionRecord(txn)
	if rec == nil {
		return apierr.New(apierr.InvalidRequest, "the region is not initialized")
	}
	if rec.ReplicationKeyID != "" {
		return apierr.New(apierr.InvalidRequest, "the region already has a replication key")
	}
	if c.KeyID == "" || len(c.PublicKey) != 32 {
		return apierr.New(apierr.InvalidParameter, "a replication key needs a keyring id and a 32-byte X25519 public key")
	}
	if e := newKeyring(txn, c.PrevGen, c.SealedKeyring); e != nil {
		return e
	}
	r := *RegionRecord(txn)
	r.ReplicationKeyID, r.ReplicationPublicKey = c.KeyID, c.PublicKey
	if err := txn.Insert(tableRegion, &r); err != nil {
		return internal(err)
	}
	return &Result{}
}
