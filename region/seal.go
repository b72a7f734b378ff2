package region

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
)

// Sealing. The keyring in Raft state is sealed under the region's root
// key, which Coffer never writes anywhere. A node without the root key is
// sealed: it takes part in Raft (it stores and applies ciphertext), but it
// cannot decrypt a value or verify a request signature, so the server
// answers it only on health and the seal endpoints.
//
// The root key reaches a node one of two ways:
//   - whole, from a key file or the environment (Config.RootKey): the node
//     unseals itself, and the first leader of a new region initializes it
//     with that key;
//   - as Shamir shares (Init prints them once; Unseal takes them one per
//     call, on each node): the region is initialized by an operator, and a
//     node that restarts is sealed until enough shares are given again.
//
// Rekey replaces the root key (new shares) and re-seals only the keyring
// and the access keys' secrets, which are sealed under the keyring; values
// and their data keys are untouched.

// sealState is the root key this node holds and the shares given so far.
type sealState struct {
	mu      sync.Mutex
	rootKey []byte
	// fromConfig: the root key came with the node's configuration, so the
	// region initializes itself and Init is refused.
	fromConfig bool
	// shares given towards an unseal, all of the seal initID.
	shares []crypto.Share
	initID string
}

// SealStatus is a node's seal state, as /v1/sys/seal-status reports it.
type SealStatus struct {
	Region      string `json:"region"`
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	// Threshold and Shares describe the split root key; Threshold 0 means
	// the region's root key is given whole (a key file).
	Threshold int    `json:"threshold"`
	Shares    int    `json:"shares"`
	Progress  int    `json:"progress"` // shares given towards this unseal
	InitID    string `json:"init_id,omitempty"`
	// Reason says why the node is sealed.
	Reason string `json:"reason,omitempty"`
}

// InitResult is what Init and Rekey hand out once: the shares (or, for a
// 1-of-1 split, the root key itself) and, for Init, the root access key.
type InitResult struct {
	InitID    string   `json:"init_id"`
	Shares    []string `json:"shares,omitempty"`
	RootKey   string   `json:"root_key,omitempty"`
	Threshold int      `json:"threshold"`
	// Credentials is the root access key pair of a region Init created.
	Credentials *Credentials `json:"credentials,omitempty"`
}

func errSealed(why string) error {
	return &cluster.UnavailableError{Reason: "node is sealed: " + why, Outcome: cluster.OutcomeNotApplied}
}

// Sealed reports whether the region cannot decrypt yet.
func (r *Region) Sealed() bool {
	_, err := r.Keyring()
	return err != nil
}

// Keyring returns the region's keyring, opening it with the root key the
// first time. Before the region is initialized, before this node has the
// root key, or if its root key does not open the keyring, the node is
// sealed and the error says which.
func (r *Region) Keyring() (*crypto.Keyring, error) {
	txn, _ := r.fsm.ReadTxn()
	rec := fsm.RegionRecord(txn)
	if kr := r.keyring.Load(); holds(rec, kr) {
		return kr, nil
	}
	r.seal.mu.Lock()
	defer r.seal.mu.Unlock()
	// Read again under the lock: another caller may have reopened it.
	txn, _ = r.fsm.ReadTxn()
	rec = fsm.RegionRecord(txn)
	old := r.keyring.Load()
	if holds(rec, old) {
		return old, nil
	}
	if rec == nil {
		if r.seal.fromConfig {
			return nil, errSealed("the region has not finished bootstrapping")
		}
		return nil, errSealed("the region is not initialized, or this node has not caught up with it yet: initialize a new region with `coffer operator init` against one node")
	}
	if r.seal.rootKey == nil {
		return nil, errSealed(r.unsealHint(rec))
	}
	kr, err := r.openKeyring(rec, r.seal.rootKey)
	if err != nil && old != nil && rec.SealedRootKey != nil {
		// A rekey on another node replaced the root key, and a key change
		// since re-sealed the keyring under the new one: the rekey left
		// the new root key sealed under the keyring, which this node holds.
		kr, err = r.followRekey(old, rec)
	}
	if err != nil {
		if old != nil {
			r.logger.Error("the region's keyring changed and this node cannot open it; it serves with the keys it has", "error", err)
			return old, nil
		}
		return nil, err
	}
	r.keyring.Store(kr)
	return kr, nil
}

// followRekey opens the root key a rekey left sealed under the keyring
// (Region.SealedRootKey) with the keyring this node holds, and the
// region's keyring with it; seal.mu is held.
func (r *Region) followRekey(old *crypto.Keyring, rec *fsm.Region) (*crypto.Keyring, error) {
	root, err := old.OpenSecret(old.KEKID, rec.SealedRootKey, rootKeyAAD(rec.Seal.InitID))
	if err != nil {
		return nil, errSealed("the region was rekeyed and this node cannot open the new root key")
	}
	kr, err := r.openKeyring(rec, root)
	if err != nil {
		crypto.Zero(root)
		return nil, err
	}
	crypto.Zero(r.seal.rootKey)
	r.seal.rootKey = root
	r.logger.Info("this node follows the region's rekey", "init_id", rec.Seal.InitID)
	return kr, nil
}

// rootKeyAAD binds a root key sealed under the keyring to its seal.
func rootKeyAAD(initID string) string { return "root-key:" + initID }

func (r *Region) unsealHint(rec *fsm.Region) string {
	if rec.Seal.Threshold >= 2 {
		return fmt.Sprintf("give it %d of the %d unseal shares with `coffer operator unseal` (%d given so far)",
			rec.Seal.Threshold, rec.Seal.Shares, len(r.seal.shares))
	}
	return "start it with the region's root key (--root-key-file or COFFER_ROOT_KEY), or give the key to `coffer operator unseal`"
}

// openKeyring opens the region's keyring with a candidate root key.
func (r *Region) openKeyring(rec *fsm.Region, rootKey []byte) (*crypto.Keyring, error) {
	if rec.AccountID != r.cfg.AccountID {
		// ARNs carry the account: serving under another one would
		// silently rename every secret.
		return nil, errSealed(fmt.Sprintf("the region was bootstrapped with account id %s, but this node is configured with %s", rec.AccountID, r.cfg.AccountID))
	}
	kr, err := crypto.OpenKeyring(rootKey, rec.SealedKeyring, r.name, rec.LegacyKEKID())
	if err != nil {
		return nil, errSealed("the root key does not open this region's keyring")
	}
	kr.Gen, kr.Sealed = rec.KeyringGen, rec.SealedKeyring
	return kr, nil
}

// holds reports whether the region record still holds keyring kr. The
// generation alone is not enough: a restored snapshot may carry another
// keyring at a generation this node has seen, so the sealed bytes are
// compared too (a few hundred bytes; records are never changed in place).
func holds(rec *fsm.Region, kr *crypto.Keyring) bool {
	return rec != nil && kr != nil && kr.Gen == rec.KeyringGen && bytes.Equal(kr.Sealed, rec.SealedKeyring)
}

// SealStatus is this node's seal state.
func (r *Region) SealStatus() SealStatus {
	_, err := r.Keyring()
	r.seal.mu.Lock()
	defer r.seal.mu.Unlock()
	st := SealStatus{Region: r.name, Sealed: err != nil, Progress: len(r.seal.shares)}
	if err != nil {
		st.Reason = err.(*cluster.UnavailableError).Reason
	}
	txn, _ := r.fsm.ReadTxn()
	if rec := fsm.RegionRecord(txn); rec != nil {
		st.Initialized = true
		st.Threshold, st.Shares, st.InitID = rec.Seal.Threshold, rec.Seal.Shares, rec.Seal.InitID
	}
	return st
}

// initRegion is the leader's bootstrap of a region whose nodes are given
// the root key whole: it creates the keyring and the root access key
// once, the first time the region has a leader. A node without a root key
// leaves it to an operator's Init.
func (r *Region) initRegion(ctx context.Context) error {
	txn, _ := r.fsm.ReadTxn()
	if fsm.RegionRecord(txn) != nil {
		return nil
	}
	r.seal.mu.Lock()
	root := slices.Clone(r.seal.rootKey)
	fromConfig := r.seal.fromConfig
	r.seal.mu.Unlock()
	if !fromConfig {
		return nil
	}
	defer crypto.Zero(root)
	creds, generated := r.cfg.Bootstrap, false
	if creds == nil {
		c := GenerateCredentials()
		creds, generated = &c, true
	}
	kr, err := r.applyInit(ctx, root, fsm.SealConfig{InitID: crypto.NewInitID()}, *creds)
	if apierr.Is(err, apierr.InvalidRequest) {
		return nil // another leader got there first
	}
	if err != nil {
		return err
	}
	r.keyring.Store(kr)
	r.logger.Info("region bootstrapped", "region", r.name, "access_key_id", creds.AccessKeyID)
	if generated && r.cfg.OnGenerated != nil {
		r.cfg.OnGenerated(r.name, *creds)
	}
	return nil
}

// applyInit creates a keyring sealed under root and the root access key
// sealed under the keyring, and applies InitRegion.
func (r *Region) applyInit(ctx context.Context, root []byte, seal fsm.SealConfig, creds Credentials) (*crypto.Keyring, error) {
	kr, err := crypto.NewKeyring("k1").WithKEK(replicationKeyID)
	if err != nil {
		return nil, err
	}
	pub, err := kr.ReplicationPublicKey(replicationKeyID)
	if err != nil {
		return nil, err
	}
	sealed, err := kr.Seal(root, r.name)
	if err != nil {
		return nil, err
	}
	sealedSecret, err := sealAccessKey(kr, creds.AccessKeyID, []byte(creds.SecretAccessKey))
	if err != nil {
		return nil, err
	}
	now := r.Now().UnixMilli()
	_, _, err = r.Apply(ctx, fsm.CmdInitRegion, &fsm.InitRegion{
		Region: r.name, AccountID: r.cfg.AccountID, KEKID: kr.KEKID, SealedKeyring: sealed, KeyringFormat: 2, Seal: seal,
		ReplicationKeyID: replicationKeyID, ReplicationPublicKey: pub,
		RootKey: fsm.AccessKey{AccessKeyID: creds.AccessKeyID, Identity: RootIdentity, SealedSecret: sealedSecret,
			CreatedDate: now, KEKID: kr.KEKID},
		Date: now,
	})
	if err != nil {
		return nil, err
	}
	return kr, nil
}

// checkSplit validates a requested split of the root key.
func checkSplit(shares, threshold int) error {
	switch {
	case shares < 1 || shares > 255:
		return apierr.Newf(apierr.InvalidParameter, "key shares must be between 1 and 255, got %d", shares)
	case threshold < 1 || threshold > shares:
		return apierr.Newf(apierr.InvalidParameter, "key threshold must be between 1 and key shares (%d), got %d", shares, threshold)
	case threshold == 1 && shares != 1:
		return apierr.New(apierr.InvalidParameter, "a threshold of 1 would make every share the root key itself: use 1 share (the root key) or a threshold of 2 or more")
	}
	return nil
}

// split hands out a new root key as the operator asked: the key itself
// for 1 of 1, else Shamir shares.
func split(root []byte, initID string, shares, threshold int) (*InitResult, error) {
	out := &InitResult{InitID: initID, Threshold: threshold}
	if threshold == 1 {
		out.RootKey = strings.TrimSpace(string(crypto.EncodeRootKey(root)))
		out.Threshold = 0
		return out, nil
	}
	s, err := crypto.SplitRootKey(root, initID, shares, threshold)
	if err != nil {
		return nil, err
	}
	out.Shares = s
	return out, nil
}

// Init initializes a region whose nodes were started without a root key:
// it makes a root key, splits it into shares of which threshold unseal a
// node (1 of 1: the root key itself, for a key file), creates the keyring
// and the root access key, and returns the shares and the key pair. They
// are shown once: Coffer keeps neither. This node is unsealed after; the
// others are unsealed with the shares.
func (r *Region) Init(ctx context.Context, shares, threshold int) (*InitResult, error) {
	if err := checkSplit(shares, threshold); err != nil {
		return nil, err
	}
	r.seal.mu.Lock()
	defer r.seal.mu.Unlock()
	if r.seal.fromConfig {
		return nil, apierr.New(apierr.InvalidRequest, "this node was started with the region's root key (--root-key-file or COFFER_ROOT_KEY): the region initializes itself with it")
	}
	// Initialization is decided by the log, not by this node's state,
	// which may lag: a stale "not initialized" only costs a refused Apply.
	txn, _ := r.fsm.ReadTxn()
	if fsm.RegionRecord(txn) != nil {
		return nil, apierr.New(apierr.InvalidRequest, "the region is already initialized")
	}
	root := crypto.RandomKey()
	seal := fsm.SealConfig{InitID: crypto.NewInitID(), Shares: shares, Threshold: threshold}
	if threshold == 1 {
		seal.Shares, seal.Threshold = 0, 0 // the key is given whole
	}
	// Split first: once InitRegion is applied, the shares are the only
	// way back to the root key.
	out, err := split(root, seal.InitID, shares, threshold)
	if err != nil {
		crypto.Zero(root)
		return nil, err
	}
	creds := GenerateCredentials()
	if r.cfg.Bootstrap != nil {
		creds = *r.cfg.Bootstrap
	}
	kr, err := r.applyInit(ctx, root, seal, creds)
	if err != nil && !r.appliedSeal(seal.InitID) {
		crypto.Zero(root)
		if apierr.Is(err, apierr.InvalidRequest) {
			return nil, apierr.New(apierr.InvalidRequest, "the region is already initialized")
		}
		return nil, err
	}
	if kr == nil {
		// The outcome was unknown, but the log has this init: open the
		// keyring it applied.
		txn, _ := r.fsm.ReadTxn()
		if kr, err = r.openKeyring(fsm.RegionRecord(txn), root); err != nil {
			crypto.Zero(root)
			return nil, err
		}
	}
	r.seal.rootKey, r.seal.shares = root, nil
	r.keyring.Store(kr)
	out.Credentials = &creds
	r.logger.Info("region initialized", "region", r.name, "init_id", seal.InitID,
		"shares", seal.Shares, "threshold", seal.Threshold, "access_key_id", creds.AccessKeyID)
	return out, nil
}

// appliedSeal reports whether the region's state, brought up to date,
// carries the seal initID: an Apply whose outcome was unknown did land.
func (r *Region) appliedSeal(initID string) bool {
	timeout := r.cfg.Cluster.RequestTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(r.bg, timeout)
	defer cancel()
	if _, err := r.consensus.ReadIndex(ctx); err != nil {
		return false
	}
	txn, _ := r.fsm.ReadTxn()
	rec := fsm.RegionRecord(txn)
	return rec != nil && rec.Seal.InitID == initID
}

// Unseal takes one unseal share, or the root key itself, and unseals this
// node once it has enough. A wrong, malformed or foreign share is refused
// with the reason and changes nothing; shares that are each valid but do
// not reconstruct the key (impossible unless one was forged) are all
// dropped, so the operator starts again.
func (r *Region) Unseal(key string) (SealStatus, error) {
	if err := r.unseal(key); err != nil {
		return r.SealStatus(), err
	}
	return r.SealStatus(), nil
}

func (r *Region) unseal(key string) error {
	r.seal.mu.Lock()
	defer r.seal.mu.Unlock()
	if r.keyring.Load() != nil {
		return apierr.New(apierr.InvalidRequest, "this node is already unsealed")
	}
	txn, _ := r.fsm.ReadTxn()
	rec := fsm.RegionRecord(txn)
	if rec == nil {
		return apierr.New(apierr.InvalidRequest, "the region is not initialized (coffer operator init), or this node has not received the region's state yet")
	}
	share, err := crypto.ParseShare(key)
	if err != nil {
		root, rerr := crypto.ParseRootKey(key)
		if rerr != nil {
			return apierr.New(apierr.InvalidParameter, err.Error())
		}
		defer crypto.Zero(root)
		kr, err := r.openKeyring(rec, root)
		if err != nil {
			return apierr.New(apierr.InvalidParameter, "this key does not open the region's keyring: it is not the region's root key")
		}
		r.unsealed(slices.Clone(root), kr)
		return nil
	}
	if rec.Seal.Threshold < 2 {
		return apierr.New(apierr.InvalidParameter, "this region's root key is not split into shares: unseal with the root key itself")
	}
	if share.InitID != rec.Seal.InitID {
		return apierr.Newf(apierr.InvalidParameter,
			"this share is from another initialization or an earlier rekey (%s); this region's current shares are from %s", share.InitID, rec.Seal.InitID)
	}
	if r.seal.initID != rec.Seal.InitID {
		r.dropShares() // given for a key a rekey has since replaced
		r.seal.initID = rec.Seal.InitID
	}
	x := share.Data[len(share.Data)-1]
	for _, s := range r.seal.shares {
		if s.Data[len(s.Data)-1] == x {
			return apierr.New(apierr.InvalidParameter, "this share was already given to this node")
		}
	}
	r.seal.shares = append(r.seal.shares, share)
	if len(r.seal.shares) < rec.Seal.Threshold {
		return nil
	}
	root, err := crypto.CombineRootKey(r.seal.shares)
	n := len(r.seal.shares)
	r.dropShares()
	if err != nil {
		return apierr.Newf(apierr.InvalidParameter, "the %d shares given do not combine (%v); they were discarded: start again", n, err)
	}
	kr, err := r.openKeyring(rec, root)
	if err != nil {
		crypto.Zero(root)
		return apierr.Newf(apierr.InvalidParameter, "the %d shares given do not reconstruct the region's root key; they were discarded: start again", n)
	}
	r.unsealed(root, kr)
	return nil
}

// unsealed keeps the root key and the opened keyring; seal.mu is held.
func (r *Region) unsealed(root []byte, kr *crypto.Keyring) {
	r.seal.rootKey = root
	r.keyring.Store(kr)
	r.logger.Info("node unsealed", "region", r.name)
}

// dropShares forgets the shares given; seal.mu is held.
func (r *Region) dropShares() {
	for _, s := range r.seal.shares {
		crypto.Zero(s.Data)
	}
	r.seal.shares = nil
}

// Rekey replaces the region's root key with a new one split as asked
// (1 of 1: the key itself, for key files). Only the keyring and the
// access keys' secrets are re-sealed; values and their data keys are
// untouched. The old shares (or key file) stop opening the region: nodes
// that restart need the new ones. The node must be unsealed.
func (r *Region) Rekey(ctx context.Context, shares, threshold int) (*InitResult, error) {
	if err := checkSplit(shares, threshold); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		out, err := r.rekey(ctx, shares, threshold)
		// A key created or rotated meanwhile (the leader's replication
		// key, at a region's start) changed the keyring: compute again.
		if err == nil || attempt == keyringRetries || !keyringChangedDuringRekey(err) {
			return out, err
		}
	}
}

func keyringChangedDuringRekey(err error) bool {
	var e *apierr.Error
	return errors.As(err, &e) && strings.HasPrefix(e.Message, "a key was created or rotated while the rekey was computed")
}

func (r *Region) rekey(ctx context.Context, shares, threshold int) (*InitResult, error) {
	kr, err := r.Keyring()
	if err != nil {
		return nil, err
	}
	r.seal.mu.Lock()
	defer r.seal.mu.Unlock()
	if _, err := r.consensus.ReadIndex(ctx); err != nil {
		return nil, err
	}
	txn, _ := r.fsm.ReadTxn()
	rec := fsm.RegionRecord(txn)
	root := crypto.RandomKey()
	seal := fsm.SealConfig{InitID: crypto.NewInitID(), Shares: shares, Threshold: threshold}
	if threshold == 1 {
		seal.Shares, seal.Threshold = 0, 0
	}
	out, err := split(root, seal.InitID, shares, threshold)
	if err != nil {
		crypto.Zero(root)
		return nil, err
	}
	sealedKeyring, err := kr.Seal(root, r.name)
	if err != nil {
		crypto.Zero(root)
		return nil, err
	}
	sealedRoot, err := kr.SealSecret(kr.KEKID, root, rootKeyAAD(seal.InitID))
	if err != nil {
		crypto.Zero(root)
		return nil, err
	}
	cmd := &fsm.Rekey{PrevInitID: rec.Seal.InitID, PrevGen: kr.Gen, SealedKeyring: sealedKeyring, KeyringFormat: 2,
		Seal: seal, SealedRootKey: sealedRoot}
	for _, ak := range fsm.AccessKeys(txn) {
		pt, err := r.openAccessKeyLocked(kr, ak)
		if err != nil {
			crypto.Zero(root)
			return nil, fmt.Errorf("access key %s: %w", ak.AccessKeyID, err)
		}
		resealed, err := sealAccessKey(kr, ak.AccessKeyID, pt)
		crypto.Zero(pt)
		if err != nil {
			crypto.Zero(root)
			return nil, err
		}
		k := *ak
		k.SealedSecret, k.KEKID = resealed, kr.KEKID
		cmd.AccessKeys = append(cmd.AccessKeys, k)
	}
	if _, _, err := r.Apply(ctx, fsm.CmdRekey, cmd); err != nil && !r.appliedSeal(seal.InitID) {
		crypto.Zero(root)
		return nil, err
	}
	crypto.Zero(r.seal.rootKey)
	r.seal.rootKey = root
	r.dropShares()
	r.logger.Info("region rekeyed", "region", r.name, "init_id", seal.InitID, "shares", seal.Shares, "threshold", seal.Threshold)
	return out, nil
}

// sealAccessKey seals an access key's secret half under the keyring's
// KEK, bound to the key's id: the one way every access key is sealed (the
// root key at bootstrap, a rekey's re-sealing, IAM users' keys). It
// returns the sealed secret; the KEK is kr.KEKID.
func sealAccessKey(kr *crypto.Keyring, id string, secret []byte) ([]byte, error) {
	return kr.SealSecret(kr.KEKID, secret, id)
}

// openAccessKey opens an access key's secret half.
func (r *Region) openAccessKey(ak *fsm.AccessKey) ([]byte, error) {
	kr, err := r.Keyring()
	if err != nil {
		return nil, err
	}
	r.seal.mu.Lock()
	defer r.seal.mu.Unlock()
	return r.openAccessKeyLocked(kr, ak)
}

// openAccessKeyLocked opens an access key with the open keyring kr, or
// with the root key for a key sealed under it; seal.mu is held.
func (r *Region) openAccessKeyLocked(kr *crypto.Keyring, ak *fsm.AccessKey) ([]byte, error) {
	if ak.KEKID == "" {
		// Sealed under the root key by an earlier version; a rekey
		// moves it under the keyring.
		if r.seal.rootKey == nil {
			return nil, errors.New("sealed under a root key this node does not hold")
		}
		return crypto.OpenWithRoot(r.seal.rootKey, ak.SealedSecret, ak.AccessKeyID)
	}
	return kr.OpenSecret(ak.KEKID, ak.SealedSecret, ak.AccessKeyID)
}
