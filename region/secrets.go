package region

import (
	"context"
	"strings"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-memdb"
)

// Reading, writing and resolving secrets, and sealing and opening their
// values. Callers (server's handlers) decode and validate a request, then
// use these; every method returns the Raft index its answer reflects, for
// X-Coffer-Index.

// Read returns a read transaction and the index it reflects: linearizable
// (after a read index) by default, local state at once when stale (the
// caller asked for X-Coffer-Consistency: stale).
func (r *Region) Read(ctx context.Context, stale bool) (*memdb.Txn, uint64, error) {
	if !stale {
		if _, err := r.consensus.ReadIndex(ctx); err != nil {
			return nil, 0, err
		}
	}
	txn, index := r.fsm.ReadTxn()
	return txn, index, nil
}

// Resolve finds a secret by SecretId (name, full ARN or partial ARN) in
// txn, scheduled for deletion or not; nil if there is none.
func (r *Region) Resolve(txn *memdb.Txn, id string) *fsm.Secret {
	return fsm.ResolveSecret(txn, id, r.name, r.cfg.AccountID)
}

// Apply commits one command and returns its result and the index it
// applied at (0 if it never reached the log).
func (r *Region) Apply(ctx context.Context, t fsm.CommandType, cmd any) (*fsm.Result, uint64, error) {
	buf, err := fsm.Encode(t, cmd)
	if err != nil {
		return nil, 0, apierr.Newf(apierr.InternalServiceError, "encode command: %v", err)
	}
	return r.consensus.Apply(ctx, buf)
}

// WriteSecret resolves a SecretId and applies the command build makes for
// that secret. It resolves on local state first (no extra round trip);
// Apply re-checks the ARN, so a stale resolve can only cause a spurious
// "not found", which is retried once after a read index makes the local
// state current. The index returned is the one the answer reflects: the
// command's, or the state's that found nothing.
func (r *Region) WriteSecret(ctx context.Context, id string, build func(*fsm.Secret) (fsm.CommandType, any, error)) (*fsm.Result, uint64, error) {
	fresh := false
	var answered uint64
	for {
		txn, index := r.fsm.ReadTxn()
		s := r.Resolve(txn, id)
		var res *fsm.Result
		var err error
		if s == nil {
			answered = index // the state the "not found" was read from
			err = apierr.New(apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		} else {
			t, cmd, berr := build(s)
			if berr != nil {
				return nil, answered, berr
			}
			var applied uint64
			res, applied, err = r.Apply(ctx, t, cmd)
			if applied != 0 {
				answered = applied
			}
		}
		if !apierr.Is(err, apierr.ResourceNotFound) || fresh {
			return res, answered, err
		}
		if _, rerr := r.consensus.ReadIndex(ctx); rerr != nil {
			return nil, answered, rerr
		}
		fresh = true
	}
}

// Seal encrypts a value for a version of the secret with this ARN, its
// data key wrapped by KEK kekID (WrapKEK). This is
// the only place plaintext meets the write path; what leaves is ciphertext
// and a keyed digest. binary says whether the value is SecretBinary (else
// SecretString): the digest tells the two apart, so a token reused with
// the same bytes of the other kind is a different value.
func Seal(kr *crypto.Keyring, kekID, arn, versionID string, plain []byte, binary bool) (fsm.NewVersion, error) {
	kind := "s"
	if binary {
		kind = "b"
	}
	env, err := kr.Encrypt(kekID, plain, crypto.ValueAAD(arn, versionID))
	if err != nil {
		return fsm.NewVersion{}, apierr.Newf(apierr.EncryptionFailure, "The value could not be encrypted: %v", err)
	}
	// This region created the secret: its ARN here is the primary ARN the
	// AAD binds, kept with the version for replicas (fsm.Version.PrimaryARN).
	return fsm.NewVersion{VersionID: versionID, Binary: binary, Value: env, Digest: kr.Digest(kind, plain), PrimaryARN: arn}, nil
}

// OpenValue decrypts the value of version v of secret s. A value whose
// data key is wrapped by a disabled key, or that does not decrypt
// (logged), is AWS's DecryptionFailure.
func (r *Region) OpenValue(kr *crypto.Keyring, s *fsm.Secret, v *fsm.Version) ([]byte, error) {
	if err := r.checkUnwrap(kr, v.Value.KEKID); err != nil {
		return nil, err
	}
	kr, err := r.keyringFor(kr, v.Value.KEKID)
	if err != nil {
		return nil, err
	}
	plain, err := kr.Decrypt(v.Value, crypto.ValueAAD(v.AADARN(s), v.VersionID))
	if err != nil {
		r.logger.Error("stored value does not decrypt", "arn", s.ARN, "version", v.VersionID, "error", err)
		return nil, apierr.New(apierr.DecryptionFailure, "Secrets Manager can't decrypt the protected secret text using the provided key.")
	}
	return plain, nil
}

// checkUnwrap refuses to unwrap a data key wrapped by a version of a
// disabled key. Versions of the default key, which cannot be disabled,
// skip the lookup.
func (r *Region) checkUnwrap(kr *crypto.Keyring, kekID string) error {
	if kekID == kr.KEKID || strings.HasPrefix(kekID, fsm.DefaultKeyID+"/") {
		return nil
	}
	txn, _ := r.fsm.ReadTxn()
	k := fsm.KeyOfKEK(txn, kekID)
	if k == nil || k.ID == fsm.DefaultKeyID || !k.Disabled {
		return nil // an unknown KEK fails to decrypt, and is logged
	}
	return apierr.Newf(apierr.DecryptionFailure,
		"Secrets Manager can't decrypt the protected secret text using the provided KMS key %s: the key is disabled. Enable it (coffer key enable) to read this secret.", r.keyARN(k.ID))
}

// Reset wipes every secret of the region through Raft (one
// fsm.ResetRegion command, applied atomically), keeping its keyring,
// account and access keys: coffer dev's POST /v1/dev/reset. It returns the
// index the reset applied at.
func (r *Region) Reset(ctx context.Context) (uint64, error) {
	_, index, err := r.Apply(ctx, fsm.CmdResetRegion, &fsm.ResetRegion{Region: r.name, Date: r.Now().UnixMilli()})
	return index, err
}
