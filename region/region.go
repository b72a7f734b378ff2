// Package region is one region's service: its keyring and bootstrap,
// reading, writing and resolving secrets, sealing and opening values, the
// purge, the SigV4 key lookup, LastAccessedDate, and the leader-only work
// run from cluster's fenced leader loop. It knows Raft only through
// cluster.Node's Apply and ReadIndex, and nothing of HTTP: server decodes
// and validates requests and calls it; rotation and replication will too.
package region

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-hclog"
)

// Credentials is an access key pair, in the JSON form of
// --bootstrap-credentials-file.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
}

// RootIdentity owns the region's bootstrap access key.
const RootIdentity = "root"

// Config configures one hosted region.
type Config struct {
	Cluster   cluster.Config
	AccountID string
	RootKey   []byte
	// Bootstrap is the root key pair to install when the region
	// bootstraps; nil generates one and reports it through OnGenerated.
	Bootstrap   *Credentials
	OnGenerated func(region string, c Credentials)
	Logger      hclog.Logger
	// PurgeInterval is how often the leader looks for secrets whose
	// recovery window ended (default 1 minute).
	PurgeInterval time.Duration
	// AccessFlushInterval is how often a node sends the reads it served
	// to the leader for LastAccessedDate (default 30 seconds).
	AccessFlushInterval time.Duration
	// Clock is the node's wall clock: every timestamp the region puts in
	// a command (creation and change dates, deletion windows, the purge
	// deadline, read days) comes from it. nil is time.Now. Raft, timeouts
	// and durations use the monotonic clock and never read it.
	Clock func() time.Time
}

// Region is one Coffer region served by this process: its Raft node, its
// state and its keys.
type Region struct {
	cfg    Config
	name   string
	logger hclog.Logger
	fsm    *fsm.FSM
	node   *cluster.Node

	keyring atomic.Pointer[crypto.Keyring]
	// secrets caches decrypted access-key secrets by access key id; the
	// sealed form is compared so a replaced key is not served from cache.
	secretsMu sync.Mutex
	secrets   map[string]cachedSecret

	// started is closed once node is set.
	started chan struct{}
	// keys catches up with the leader for access keys not found locally.
	keys keyCatchUp
	// access notes the reads this node served, for LastAccessedDate.
	access accessLog
	// bg ends when the region shuts down; loops are the goroutines on it.
	bg     context.Context
	stopBG context.CancelFunc
	loops  sync.WaitGroup
}

type cachedSecret struct {
	sealed string
	secret string
}

// DefaultAccountID is the account in ARNs when none is configured.
const DefaultAccountID = "000000000000"

// Start opens the region's state and starts its Raft node.
func Start(cfg Config) (*Region, error) {
	if len(cfg.RootKey) != crypto.KeySize {
		return nil, errors.New("a 32-byte root key is required")
	}
	if cfg.AccountID == "" {
		cfg.AccountID = DefaultAccountID
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	// The region keeps its own copy: callers zero theirs once it started.
	cfg.RootKey = slices.Clone(cfg.RootKey)
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	r := &Region{cfg: cfg, name: cfg.Cluster.Region, logger: logger, secrets: map[string]cachedSecret{},
		started: make(chan struct{})}
	r.fsm = fsm.New(logger.Named("fsm"))
	// Everything leader work may touch is set before the node starts: a
	// single voter can win its election inside cluster.New.
	r.access.flushing = make(chan struct{}, 1)
	r.bg, r.stopBG = context.WithCancel(context.Background())
	cc := cfg.Cluster
	cc.Logger = logger
	cc.OnLeader = r.onLeader
	node, err := cluster.New(cc, r.fsm)
	if err != nil {
		r.stopBG()
		return nil, err
	}
	r.node = node
	close(r.started)
	r.loops.Add(1)
	go r.accessFlusher()
	return r, nil
}

// Now is the node's wall-clock time (Config.Clock): every timestamp a
// caller puts in a command comes from it.
func (r *Region) Now() time.Time { return r.cfg.Clock() }

// AccountID is the account in this region's ARNs.
func (r *Region) AccountID() string { return r.cfg.AccountID }

// Name is the region's name.
func (r *Region) Name() string { return r.name }

// Node is the region's Raft node.
func (r *Region) Node() *cluster.Node { return r.node }

// FSM is the region's state machine.
func (r *Region) FSM() *fsm.FSM { return r.fsm }

// IsLeader reports whether this node leads the region's Raft group.
func (r *Region) IsLeader() bool { return r.node.IsLeader() }

// Status is this node's view of the region's Raft group (/v1/health,
// /v1/cluster/status).
func (r *Region) Status() cluster.Status { return r.node.Status() }

// LastContact is how long ago this node last heard from a leader (zero on
// the leader, negative if never), for X-Coffer-Last-Contact on stale
// reads.
func (r *Region) LastContact() time.Duration { return r.node.LastContact() }

// StateDigest is the SHA-256 of the state's snapshot stream and the index
// it reflects: nodes at the same index must report the same digest.
func (r *Region) StateDigest() (string, uint64, error) { return r.fsm.Digest() }

// Leave exits the cluster gracefully, after sending the reads noted for
// LastAccessedDate.
func (r *Region) Leave(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), min(timeout/2, 2*time.Second))
	if err := r.FlushAccess(ctx); err != nil {
		r.logger.Warn("LastAccessedDate batch lost on leave", "error", err)
	}
	cancel()
	return r.node.Leave(timeout)
}

// Shutdown stops the region's background loops and its node.
func (r *Region) Shutdown() error {
	r.stopBG()
	r.loops.Wait()
	return r.node.Shutdown()
}

// onLeader runs leader-only work: bootstrapping the region, then the
// purge of secrets whose recovery window ended (purge.go).
func (r *Region) onLeader(ctx context.Context) {
	// A single voter can win its election inside cluster.New, before
	// Start has stored the node this work uses.
	select {
	case <-r.started:
	case <-ctx.Done():
		return
	}
	for ctx.Err() == nil {
		err := r.initRegion(ctx)
		if err == nil {
			r.purgeLoop(ctx)
			return
		}
		r.logger.Warn("region bootstrap failed; retrying", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// initRegion creates the keyring and the root access key once, the first
// time the region has a leader.
func (r *Region) initRegion(ctx context.Context) error {
	txn, _ := r.fsm.ReadTxn()
	if fsm.RegionRecord(txn) != nil {
		return nil
	}
	kr := crypto.NewKeyring("k1")
	sealed, err := kr.Seal(r.cfg.RootKey, r.name)
	if err != nil {
		return err
	}
	creds, generated := r.cfg.Bootstrap, false
	if creds == nil {
		c := GenerateCredentials()
		creds, generated = &c, true
	}
	sealedSecret, err := crypto.SealWithRoot(r.cfg.RootKey, []byte(creds.SecretAccessKey), creds.AccessKeyID)
	if err != nil {
		return err
	}
	now := r.Now().UnixMilli()
	cmd, err := fsm.Encode(fsm.CmdInitRegion, &fsm.InitRegion{
		Region: r.name, AccountID: r.cfg.AccountID, KEKID: kr.KEKID, SealedKeyring: sealed,
		RootKey: fsm.AccessKey{AccessKeyID: creds.AccessKeyID, Identity: RootIdentity, SealedSecret: sealedSecret, CreatedDate: now},
		Date:    now,
	})
	if err != nil {
		return err
	}
	_, _, err = r.node.Apply(ctx, cmd)
	if apierr.Is(err, apierr.InvalidRequest) {
		return nil // another leader got there first
	}
	if err != nil {
		return err
	}
	r.logger.Info("region bootstrapped", "region", r.name, "access_key_id", creds.AccessKeyID)
	if generated && r.cfg.OnGenerated != nil {
		r.cfg.OnGenerated(r.name, *creds)
	}
	return nil
}

// Keyring returns the region's keyring, opening it with the root key the
// first time. Before the region has bootstrapped, or if the root key does
// not open it, the region is sealed.
func (r *Region) Keyring() (*crypto.Keyring, error) {
	if kr := r.keyring.Load(); kr != nil {
		return kr, nil
	}
	txn, _ := r.fsm.ReadTxn()
	rec := fsm.RegionRecord(txn)
	if rec == nil {
		return nil, errSealed("the region has not finished bootstrapping")
	}
	if rec.AccountID != r.cfg.AccountID {
		// ARNs carry the account: serving under another one would
		// silently rename every secret.
		return nil, errSealed(fmt.Sprintf("the region was bootstrapped with account id %s, but this node is configured with %s", rec.AccountID, r.cfg.AccountID))
	}
	kr, err := crypto.OpenKeyring(r.cfg.RootKey, rec.SealedKeyring, r.name, rec.KEKID)
	if err != nil {
		return nil, errSealed("the root key does not open this region's keyring")
	}
	r.keyring.Store(kr)
	return kr, nil
}

func errSealed(why string) error {
	return &cluster.UnavailableError{Reason: "node is sealed: " + why, Outcome: cluster.OutcomeNotApplied}
}

// Sealed reports whether the region cannot yet decrypt.
func (r *Region) Sealed() bool {
	_, err := r.Keyring()
	return err != nil
}

// AccessKey returns the identity and secret of an access key from local
// state. A key this node does not have may be one it has not applied yet
// (it just joined, restarted or lags): then, on a follower, the node
// catches up with the leader (keyCatchUp) before refusing, once per unknown
// id per keyMissWindow, and never for longer than ctx allows. The leader's
// state holds every key acknowledged to anyone, so it never asks.
func (r *Region) AccessKey(ctx context.Context, id string) (identity, secret string, ok bool) {
	txn, _ := r.fsm.ReadTxn()
	ak := fsm.LookupAccessKey(txn, id)
	if ak == nil {
		if r.node.IsLeader() || !r.keys.shouldCatchUp(id, r.Now()) {
			return "", "", false
		}
		if err := r.keys.catchUp(ctx, r.bg, r.node.ReadIndex); err != nil {
			return "", "", false
		}
		txn, _ = r.fsm.ReadTxn()
		if ak = fsm.LookupAccessKey(txn, id); ak == nil {
			r.keys.missed(id, r.Now())
			return "", "", false
		}
	}
	r.secretsMu.Lock()
	c, hit := r.secrets[id]
	r.secretsMu.Unlock()
	if hit && c.sealed == string(ak.SealedSecret) {
		return ak.Identity, c.secret, true
	}
	pt, err := crypto.OpenWithRoot(r.cfg.RootKey, ak.SealedSecret, id)
	if err != nil {
		r.logger.Error("access key does not open with the root key", "access_key_id", id)
		return "", "", false
	}
	r.secretsMu.Lock()
	r.secrets[id] = cachedSecret{sealed: string(ak.SealedSecret), secret: string(pt)}
	r.secretsMu.Unlock()
	return ak.Identity, string(pt), true
}

// GenerateCredentials returns a fresh access key pair in AWS's shapes: a
// 20-character id starting AKIA and a 40-character secret.
func GenerateCredentials() Credentials {
	return Credentials{
		AccessKeyID:     "AKIA" + randomString(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
		SecretAccessKey: randomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"),
	}
}

// randomString draws n characters from alphabet with the CSPRNG, without
// modulo bias.
func randomString(n int, alphabet string) string {
	out := make([]byte, 0, n)
	var buf [64]byte
	limit := 256 - 256%len(alphabet)
	for len(out) < n {
		rand.Read(buf[:])
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}

// ARNPrefix is the ARN of this region's secrets up to the name.
func (r *Region) ARNPrefix() string {
	return fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:", r.name, r.cfg.AccountID)
}

const arnSuffixAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NewARN is the ARN of a new secret of this name in this region: the
// prefix, the name and a fresh random 6-character suffix (CSPRNG), as AWS
// makes them. It is decided on the receiving node, never in Apply.
func (r *Region) NewARN(name string) string {
	return r.ARNPrefix() + name + "-" + randomString(6, arnSuffixAlphabet)
}
