package region

import (
	"context"
	"errors"
	"strings"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-memdb"
)

// Keys (fsm/keys.go): customer keys, aliases, key versions. The key
// material is in the sealed keyring, so creating or rotating a key seals
// the whole keyring again under the root key this node holds and applies
// it with the generation it was computed from; if another change landed
// first, it is computed again.

// keyringRetries bounds the recomputations of a keyring change that lost
// a race with another one.
const keyringRetries = 5

// KeyInfo describes a key for `coffer key list | describe`.
type KeyInfo struct {
	KeyID       string   `json:"key_id"`
	ARN         string   `json:"arn"`
	Description string   `json:"description,omitempty"`
	Enabled     bool     `json:"enabled"`
	Default     bool     `json:"default,omitempty"`
	Aliases     []string `json:"aliases,omitempty"`
	CreatedDate int64    `json:"created_date"`
	// CurrentVersion wraps new data keys.
	CurrentVersion int              `json:"current_version"`
	Versions       []KeyVersionInfo `json:"versions"`
	// Rewrap: data keys still wrapped by an older version, which the
	// leader re-wraps in the background after a rotation.
	RewrapPending int `json:"rewrap_pending"`
	// Secrets is how many secrets use the key for new values.
	Secrets int `json:"secrets"`
}

// KeyVersionInfo is one version of a key and the data keys it wraps.
type KeyVersionInfo struct {
	Version     int   `json:"version"`
	CreatedDate int64 `json:"created_date"`
	DataKeys    int   `json:"data_keys"`
}

func errUnknownKey(given string) error {
	return apierr.Newf(apierr.ResourceNotFound, "no key %q in this region: name a key by its id, its ARN or an alias (coffer key list)", given)
}

// readKeys is a state at least as new as everything acknowledged before
// the call: a key created through another node is seen.
func (r *Region) readKeys(ctx context.Context) (*memdb.Txn, error) {
	txn, _, err := r.Read(ctx, false)
	return txn, err
}

// ResolveKey finds the key a KmsKeyId names (key id, key ARN, alias or
// alias ARN; "" for the default key) for a new value: an unknown or
// disabled key is AWS's EncryptionFailure. It looks in local state first
// and catches up with the leader only on a miss (a key just created).
func (r *Region) ResolveKey(ctx context.Context, given string) (*fsm.Key, error) {
	txn, _ := r.fsm.ReadTxn()
	k := fsm.ResolveKey(txn, given, r.name, r.cfg.AccountID)
	if k == nil {
		var err error
		if txn, err = r.readKeys(ctx); err != nil {
			return nil, err
		}
		k = fsm.ResolveKey(txn, given, r.name, r.cfg.AccountID)
	}
	if k == nil {
		return nil, apierr.Newf(apierr.EncryptionFailure,
			"Secrets Manager can't find the specified KMS key %s in region %s: create it (coffer key create) or name an existing key.", given, r.name)
	}
	if k.Disabled {
		return nil, apierr.Newf(apierr.EncryptionFailure,
			"Secrets Manager can't encrypt the protected secret text using the provided KMS key %s: the key is disabled.", r.keyARN(k.ID))
	}
	return k, nil
}

// WrapKEK is the KEK that wraps new data keys of secret s: the current
// version of its key (the default key when it has none), in local state
// (the apply checks it again). A key disabled or gone is AWS's
// EncryptionFailure.
func (r *Region) WrapKEK(s *fsm.Secret) (string, error) {
	txn, _ := r.fsm.ReadTxn()
	k := fsm.KeyByID(txn, cmpOr(s.KeyID, fsm.DefaultKeyID))
	switch {
	case k == nil:
		return "", apierr.Newf(apierr.EncryptionFailure, "Secrets Manager can't find the KMS key of secret %s.", s.Name)
	case k.Disabled:
		return "", apierr.Newf(apierr.EncryptionFailure,
			"Secrets Manager can't encrypt the protected secret text using the provided KMS key %s: the key is disabled.", r.keyARN(k.ID))
	}
	return k.Current().KEKID, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (r *Region) keyARN(id string) string { return fsm.KeyARN(r.name, r.cfg.AccountID, id) }

// KeyOf is the id of the key that KEK kekID is a version of ("" if
// none), in local state.
func (r *Region) KeyOf(kekID string) string {
	txn, _ := r.fsm.ReadTxn()
	if k := fsm.KeyOfKEK(txn, kekID); k != nil {
		return k.ID
	}
	return ""
}

// Rewraps moves the data keys of secret s's labelled versions (AWSCURRENT,
// AWSPREVIOUS, AWSPENDING and any other label) under key k's current
// version, for UpdateSecret with a new KmsKeyId. Each keeps the KEK it
// was read under, so the update is refused if a background re-wrap moved
// it meanwhile.
func (r *Region) Rewraps(kr *crypto.Keyring, s *fsm.Secret, k *fsm.Key) ([]fsm.Rewrap, error) {
	to := k.Current().KEKID
	var out []fsm.Rewrap
	for _, v := range s.Versions {
		if len(v.Stages) == 0 || !v.HasValue() || v.Value.KEKID == to {
			continue
		}
		env, err := r.rewrap(kr, s, v, to)
		if err != nil {
			return nil, err
		}
		out = append(out, fsm.Rewrap{ARN: s.ARN, VersionID: v.VersionID, From: v.Value.KEKID, KEKID: to, WrappedKey: env.WrappedKey})
	}
	return out, nil
}

// rewrap re-wraps one version's data key under KEK to.
func (r *Region) rewrap(kr *crypto.Keyring, s *fsm.Secret, v *fsm.Version, to string) (crypto.Envelope, error) {
	kr, err := r.keyringFor(kr, v.Value.KEKID, to)
	if err != nil {
		return crypto.Envelope{}, err
	}
	env, err := kr.Rewrap(v.Value, crypto.ValueAAD(v.AADARN(s), v.VersionID), to)
	if err != nil {
		r.logger.Error("stored data key does not unwrap", "arn", s.ARN, "version", v.VersionID, "error", err)
		return crypto.Envelope{}, apierr.New(apierr.DecryptionFailure, "Secrets Manager can't decrypt the protected secret text using the provided key.")
	}
	return env, nil
}

// keyringFor is kr, or the region's keyring reopened if kr lacks one of
// the KEKs (it was opened before a key was created or rotated).
func (r *Region) keyringFor(kr *crypto.Keyring, kekIDs ...string) (*crypto.Keyring, error) {
	for _, id := range kekIDs {
		if !kr.Has(id) {
			return r.Keyring()
		}
	}
	return kr, nil
}

// addKEK adds one KEK to the sealed keyring: pick names it (from the
// state the change is computed on), the keyring is re-sealed with it
// under the root key this node holds, and build makes the command that
// carries it with the generation it was computed from. A change that lost
// the race with another is computed again.
func (r *Region) addKEK(ctx context.Context, pick func(txn *memdb.Txn) (string, error),
	build func(grown *crypto.Keyring, kekID string, sealed []byte, gen uint64) (fsm.CommandType, any, error)) error {
	for attempt := 0; ; attempt++ {
		if _, err := r.readKeys(ctx); err != nil {
			return err
		}
		kr, err := r.Keyring()
		if err != nil {
			return err
		}
		txn, _ := r.fsm.ReadTxn()
		kekID, err := pick(txn)
		if err != nil {
			return err
		}
		grown, err := kr.WithKEK(kekID)
		if err != nil {
			return err
		}
		r.seal.mu.Lock()
		if len(r.seal.rootKey) == 0 {
			r.seal.mu.Unlock()
			return errSealed("this node does not hold the root key")
		}
		sealed, err := grown.Seal(r.seal.rootKey, r.name)
		r.seal.mu.Unlock()
		if err != nil {
			return err
		}
		t, cmd, err := build(grown, kekID, sealed, kr.Gen)
		if err != nil {
			return err
		}
		_, _, err = r.Apply(ctx, t, cmd)
		if err == nil || attempt == keyringRetries || !keyringMoved(err) {
			return err
		}
	}
}

func keyringMoved(err error) bool {
	var e *apierr.Error
	return errors.As(err, &e) && strings.HasPrefix(e.Message, "the region's keyring changed")
}

// CreateKey creates a customer key with one version and, if alias is
// set, names it.
func (r *Region) CreateKey(ctx context.Context, description, alias string) (*KeyInfo, error) {
	if len(description) > 8192 {
		return nil, apierr.New(apierr.InvalidParameter, "a key description is at most 8192 characters")
	}
	if alias != "" {
		if err := fsm.CheckAliasName(alias); err != nil {
			return nil, err
		}
	}
	id := crypto.RandomUUID()
	now := r.Now().UnixMilli()
	err := r.addKEK(ctx, func(txn *memdb.Txn) (string, error) {
		if alias != "" && fsm.AliasByName(txn, alias) != nil {
			return "", apierr.Newf(apierr.ResourceExists, "An alias with the name %s already exists", alias)
		}
		return fsm.KEKIDFor(id, 1), nil
	}, func(_ *crypto.Keyring, kekID string, sealed []byte, gen uint64) (fsm.CommandType, any, error) {
		return fsm.CmdCreateKey, &fsm.CreateKey{PrevGen: gen, SealedKeyring: sealed, Alias: alias,
			Key: fsm.Key{ID: id, Description: description, CreatedDate: now, LastChangedDate: now,
				Versions: []fsm.KeyVersion{{KEKID: kekID, CreatedDate: now}}}}, nil
	})
	if err != nil {
		return nil, err
	}
	r.logger.Info("key created", "key_id", id, "alias", alias)
	return r.DescribeKey(ctx, id)
}

// resolveAdmin finds a key named by id, ARN or alias, for the key
// commands (which, unlike a secret's KmsKeyId, may name a disabled key).
func (r *Region) resolveAdmin(ctx context.Context, given string) (*fsm.Key, *memdb.Txn, error) {
	txn, err := r.readKeys(ctx)
	if err != nil {
		return nil, nil, err
	}
	if given == "" {
		return nil, nil, apierr.New(apierr.InvalidParameter, "name a key: its id, its ARN or an alias")
	}
	k := fsm.ResolveKey(txn, given, r.name, r.cfg.AccountID)
	if k == nil {
		return nil, nil, errUnknownKey(given)
	}
	return k, txn, nil
}

// RotateKey adds a version to a key: new data keys use it at once, and
// the leader re-wraps the older versions' data keys in the background.
func (r *Region) RotateKey(ctx context.Context, given string) (*KeyInfo, error) {
	k, _, err := r.resolveAdmin(ctx, given)
	if err != nil {
		return nil, err
	}
	id := k.ID
	now := r.Now().UnixMilli()
	err = r.addKEK(ctx, func(txn *memdb.Txn) (string, error) {
		k := fsm.KeyByID(txn, id)
		if k == nil {
			return "", errUnknownKey(given)
		}
		return fsm.KEKIDFor(id, len(k.Versions)+1), nil
	}, func(_ *crypto.Keyring, kekID string, sealed []byte, gen uint64) (fsm.CommandType, any, error) {
		return fsm.CmdRotateKey, &fsm.RotateKey{PrevGen: gen, SealedKeyring: sealed, KeyID: id,
			Version: fsm.KeyVersion{KEKID: kekID, CreatedDate: now}}, nil
	})
	if err != nil {
		return nil, err
	}
	r.logger.Info("key rotated", "key_id", id)
	r.kickRewrap()
	return r.DescribeKey(ctx, id)
}

// SetKeyEnabled enables or disables a customer key.
func (r *Region) SetKeyEnabled(ctx context.Context, given string, enabled bool) (*KeyInfo, error) {
	k, _, err := r.resolveAdmin(ctx, given)
	if err != nil {
		return nil, err
	}
	if _, _, err := r.Apply(ctx, fsm.CmdSetKeyState, &fsm.SetKeyState{KeyID: k.ID, Disabled: !enabled, Date: r.Now().UnixMilli()}); err != nil {
		return nil, err
	}
	r.logger.Info("key state changed", "key_id", k.ID, "enabled", enabled)
	return r.DescribeKey(ctx, k.ID)
}

// SetAlias points alias name at a key (creating the alias, or moving it);
// an empty key deletes it. Secrets already using the key the alias named
// keep it: a secret's key is fixed when its KmsKeyId is set.
func (r *Region) SetAlias(ctx context.Context, name, key string) error {
	if err := fsm.CheckAliasName(name); err != nil {
		return err
	}
	id := ""
	if key != "" {
		k, _, err := r.resolveAdmin(ctx, key)
		if err != nil {
			return err
		}
		id = k.ID
	}
	_, _, err := r.Apply(ctx, fsm.CmdSetAlias, &fsm.SetAlias{Name: name, KeyID: id, Date: r.Now().UnixMilli()})
	return err
}

// DescribeKey describes a key named by id, ARN or alias.
func (r *Region) DescribeKey(ctx context.Context, given string) (*KeyInfo, error) {
	k, txn, err := r.resolveAdmin(ctx, given)
	if err != nil {
		return nil, err
	}
	infos := r.keyInfos(txn, []*fsm.Key{k})
	return &infos[0], nil
}

// Keys lists the region's keys, the default key first.
func (r *Region) Keys(ctx context.Context) ([]KeyInfo, error) {
	txn, err := r.readKeys(ctx)
	if err != nil {
		return nil, err
	}
	return r.keyInfos(txn, fsm.Keys(txn)), nil
}

// keyInfos describes keys, counting the data keys each version wraps
// (one pass over the secrets).
func (r *Region) keyInfos(txn *memdb.Txn, keys []*fsm.Key) []KeyInfo {
	wraps, users := fsm.DataKeyCounts(txn)
	out := make([]KeyInfo, 0, len(keys))
	for _, k := range keys {
		info := KeyInfo{KeyID: k.ID, ARN: r.keyARN(k.ID), Description: k.Description, Enabled: !k.Disabled,
			Default: k.ID == fsm.DefaultKeyID, Aliases: fsm.KeyAliases(txn, k.ID), CreatedDate: k.CreatedDate,
			CurrentVersion: len(k.Versions), Secrets: users[k.ID]}
		for i, v := range k.Versions {
			n := wraps[v.KEKID]
			info.Versions = append(info.Versions, KeyVersionInfo{Version: i + 1, CreatedDate: v.CreatedDate, DataKeys: n})
			if i < len(k.Versions)-1 {
				info.RewrapPending += n
			}
		}
		out = append(out, info)
	}
	return out
}
