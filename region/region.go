// Package region is one region's service: its keyring and bootstrap,
// reading, writing and resolving secrets, sealing and opening values, the
// purge, the SigV4 key lookup, LastAccessedDate, and the leader-only work
// that runs from cluster's fenced leader loop. It reaches Raft only
// through Consensus (Apply, ReadIndex and a few status accessors), which
// *cluster.Node satisfies, and knows nothing of HTTP: server decodes and
// validates requests and calls it; rotation and replication will too.
package region

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
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

// DefaultAccountID is the account in ARNs when none is configured.
const DefaultAccountID = "000000000000"

// Config configures one hosted region.
type Config struct {
	// Cluster configures the region's Raft node; Cluster.Region names the
	// region. OnLeader and Logger are the region's own and are replaced.
	Cluster   cluster.Config
	AccountID string
	// RootKey opens the region's keyring (32 bytes, from a key file or the
	// environment). nil starts the node sealed: it unseals with shares or
	// the root key through Unseal, and a region that has never been
	// initialized waits for Init (seal.go).
	RootKey []byte
	// Bootstrap is the root key pair to install when the region
	// bootstraps; nil generates one and reports it through OnGenerated.
	Bootstrap   *Credentials
	OnGenerated func(region string, c Credentials)
	Logger      hclog.Logger
	// PurgeInterval is how often the leader looks for secrets whose
	// recovery window ended (default 1 minute).
	PurgeInterval time.Duration
	// TombstoneRetention is how long the change feed keeps the tombstone
	// of a removed secret (default 72 hours): the longest a feed consumer
	// may be away and still resume from its cursor (tombstones.go).
	TombstoneRetention time.Duration
	// CompactInterval is how often the leader compacts tombstones older
	// than TombstoneRetention (default 10 minutes).
	CompactInterval time.Duration
	// AccessFlushInterval is how often a node sends the reads it served
	// to the leader for LastAccessedDate (default 30 seconds).
	AccessFlushInterval time.Duration
	// Clock is the node's wall clock: every timestamp the region puts in
	// a command (creation and change dates, deletion windows, the purge
	// deadline, read days) comes from it. nil is time.Now. Raft, timeouts
	// and durations use the monotonic clock and never read it.
	Clock func() time.Time
	// Local runs the region without Raft, on the in-memory Consensus of
	// local.go: one node, always the leader, every command applied on the
	// caller's goroutine. Only Cluster.Region (the name) and
	// Cluster.NodeID are read from Cluster. Nothing is durable: it is for
	// tests of the layers above (server's handler tests), never a server.
	Local bool
}

// Consensus is what a region needs from the replication of its log.
// *cluster.Node is the real one; local.go has an in-memory one for tests.
type Consensus interface {
	// Apply commits an encoded fsm command and returns Apply's result and
	// the index it applied at. Errors are an *apierr.Error that Apply
	// returned (nothing changed), or a *cluster.UnavailableError whose
	// Outcome says whether the command may have been applied.
	Apply(ctx context.Context, cmd []byte) (*fsm.Result, uint64, error)
	// ReadIndex returns once the local state reflects every write
	// acknowledged before it was called: the next local read is
	// linearizable. It writes nothing to the log.
	ReadIndex(ctx context.Context) (uint64, error)
	// IsLeader reports whether this node leads the region now.
	IsLeader() bool
	// Status is this node's view of the group, for health and operators.
	Status() cluster.Status
	// LastContact is how long ago this node last heard from a leader:
	// zero on the leader, negative if never.
	LastContact() time.Duration
	// Leave exits the group gracefully (a leader hands leadership over).
	Leave(timeout time.Duration) error
	// Shutdown stops the node without leaving.
	Shutdown() error
}

var _ Consensus = (*cluster.Node)(nil)

// Region is one Coffer region served by this process: its consensus (a
// Raft node), its state and its keys.
type Region struct {
	// purged is told of each secret the purge destroys (OnPurge).
	purged atomic.Pointer[func(arn string, versionIDs []string)]

	cfg       Config
	name      string
	logger    hclog.Logger
	fsm       *fsm.FSM
	consensus Consensus
	// node is consensus when it is a Raft node; nil for a local region.
	node *cluster.Node

	keyring atomic.Pointer[crypto.Keyring]
	// seal holds the root key once known and the unseal shares given so
	// far (seal.go).
	seal sealState
	// secrets caches decrypted access-key secrets by access key id; the
	// sealed form is compared so a replaced key is not served from cache.
	secretsMu sync.Mutex
	secrets   map[string]cachedSecret

	// workMu guards work and starting: leader work registers before Start.
	workMu   sync.Mutex
	work     []leaderWork
	starting bool
	// started is closed once consensus is set.
	started chan struct{}
	// keys catches up with the leader for access keys not found locally.
	keys keyCatchUp
	// access notes the reads this node served, for LastAccessedDate;
	// keyUse the user keys requests authenticated with (iam.go).
	access accessLog
	keyUse keyUses
	// onPromote is told of each promoted replica (OnPromote).
	onPromote atomic.Pointer[func(primaryRegion, arn string)]
	// rewrapKick wakes the leader's re-wrap after a key rotation here.
	rewrapKick chan struct{}
	// bg ends when the region shuts down; loops are the goroutines on it.
	bg     context.Context
	stopBG context.CancelFunc
	loops  sync.WaitGroup
}

type cachedSecret struct {
	sealed string
	secret string
}

// leaderWork is one piece of leader-only work (RegisterLeaderWork).
type leaderWork struct {
	name string
	run  func(ctx context.Context)
}

// New opens the region's state without starting it: register leader work
// (RegisterLeaderWork), then call Start. The purge is registered already.
func New(cfg Config) (*Region, error) {
	if cfg.RootKey != nil && len(cfg.RootKey) != crypto.KeySize {
		return nil, errors.New("the root key must be 32 bytes")
	}
	if cfg.Local && cfg.Cluster.Region == "" {
		return nil, errors.New("region name (Cluster.Region) is required")
	}
	if cfg.AccountID == "" {
		cfg.AccountID = DefaultAccountID
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	// The region keeps its own copy: callers zero theirs once it started.
	rootKey := slices.Clone(cfg.RootKey)
	cfg.RootKey = nil
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	r := &Region{cfg: cfg, name: cfg.Cluster.Region, logger: logger, secrets: map[string]cachedSecret{},
		started: make(chan struct{})}
	r.seal.rootKey, r.seal.fromConfig = rootKey, rootKey != nil
	r.fsm = fsm.New(logger.Named("fsm"))
	// Everything leader work may touch is set before the node starts: a
	// single voter can win its election inside cluster.New.
	r.access.flushing = make(chan struct{}, 1)
	r.bg, r.stopBG = context.WithCancel(context.Background())
	r.rewrapKick = make(chan struct{}, 1)
	r.work = []leaderWork{{"purge", r.purgeLoop}, {"compact-tombstones", r.compactLoop}, {"rewrap", r.rewrapLoop}, {"replication-key", r.replicationKeyLoop}}
	return r, nil
}

// Start opens a region's state and starts it: New, then (*Region).Start,
// for a region with no leader work besides its own.
func Start(cfg Config) (*Region, error) {
	r, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := r.Start(); err != nil {
		return nil, err
	}
	return r, nil
}

// RegisterLeaderWork adds work that runs on this region's leader: the
// rotation scheduler, replication's shippers. Call it before Start (it
// panics after). Each time this node gains leadership, once the region has
// bootstrapped, every registered work runs on its own goroutine with the
// leadership context, alongside the purge; it must return when that
// context ends. The next term's work on this node starts only after all of
// this term's has returned (cluster's fenced leader loop), so two copies
// of a work never run at once on one node.
func (r *Region) RegisterLeaderWork(name string, work func(ctx context.Context)) {
	r.workMu.Lock()
	defer r.workMu.Unlock()
	if r.starting {
		panic("region: RegisterLeaderWork(" + name + ") after Start")
	}
	r.work = append(r.work, leaderWork{name, work})
}

// Start starts the region's consensus (its Raft node, or the local one)
// and its background loops. It is called once.
func (r *Region) Start() error {
	r.workMu.Lock()
	if r.starting {
		r.workMu.Unlock()
		return errors.New("region already started")
	}
	r.starting = true
	r.workMu.Unlock()
	if r.cfg.Local {
		r.consensus = newLocal(r.cfg.Cluster.NodeID, r.name, r.fsm)
		close(r.started)
		// Always the leader: the leader work runs once, until shutdown.
		r.loops.Add(1)
		go func() {
			defer r.loops.Done()
			r.onLeader(r.bg)
		}()
	} else {
		cc := r.cfg.Cluster
		cc.Logger = r.logger
		cc.OnLeader = r.onLeader
		cc.CheckSnapshot = r.checkSnapshot
		node, err := cluster.New(cc, r.fsm)
		if err != nil {
			r.stopBG()
			return err
		}
		r.node, r.consensus = node, node
		close(r.started)
	}
	r.loops.Add(1)
	go r.accessFlusher()
	return nil
}

// Now is the node's wall-clock time (Config.Clock): every timestamp a
// caller puts in a command comes from it.
func (r *Region) Now() time.Time { return r.cfg.Clock() }

// AccountID is the account in this region's ARNs.
func (r *Region) AccountID() string { return r.cfg.AccountID }

// Name is the region's name.
func (r *Region) Name() string { return r.name }

// Node is the region's Raft node: for what only Raft has (its addresses,
// Bootstrap, tests of membership). nil for a local region.
func (r *Region) Node() *cluster.Node { return r.node }

// FSM is the region's state machine.
func (r *Region) FSM() *fsm.FSM { return r.fsm }

// IsLeader reports whether this node leads the region.
func (r *Region) IsLeader() bool { return r.consensus.IsLeader() }

// Status is this node's view of the region's Raft group (/v1/health,
// /v1/cluster/status).
func (r *Region) Status() cluster.Status { return r.consensus.Status() }

// LastContact is how long ago this node last heard from a leader (zero on
// the leader, negative if never), for X-Coffer-Last-Contact on stale
// reads.
func (r *Region) LastContact() time.Duration { return r.consensus.LastContact() }

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
	return r.consensus.Leave(timeout)
}

// Shutdown stops the region's background loops (and a local region's
// leader work) and its node.
func (r *Region) Shutdown() error {
	r.stopBG()
	r.loops.Wait()
	if r.consensus == nil {
		return nil // never started
	}
	return r.consensus.Shutdown()
}

// onLeader is the region's leader-only work, which cluster runs fenced
// (one term's has returned before the next term's starts): it bootstraps
// the region, then runs the purge (purge.go) and every registered work
// concurrently with the leadership context, and returns once all have
// returned.
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
			r.runLeaderWork(ctx)
			return
		}
		r.logger.Warn("region bootstrap failed; retrying", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// runLeaderWork runs every leader work on its own goroutine and returns
// once all have returned.
func (r *Region) runLeaderWork(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range r.work {
		wg.Go(func() {
			r.logger.Debug("leader work started", "work", w.name)
			w.run(ctx)
			r.logger.Debug("leader work returned", "work", w.name)
		})
	}
	wg.Wait()
}

// Account is the account id the region was bootstrapped with, from local
// state, and whether it has bootstrapped at all. An account other than
// AccountID keeps the node sealed (Keyring).
func (r *Region) Account() (id string, bootstrapped bool) {
	txn, _ := r.fsm.ReadTxn()
	rec := fsm.RegionRecord(txn)
	if rec == nil {
		return "", false
	}
	return rec.AccountID, true
}

// AccessKey returns the identity and secret of an access key from local
// state. A key this node does not have may be one it has not applied yet
// (it just joined, restarted or lags): then, on a follower, the node
// catches up with the leader (keyCatchUp) before refusing, once per unknown
// id per keyMissWindow, and never for longer than ctx allows. The leader's
// state holds every key acknowledged to anyone, so it never asks.
//
// A key that cannot sign (an IAM user's key made Inactive, or one whose
// user is gone) is refused exactly as an unknown one, catch-up included
// (a key re-activated a moment ago on another node signs at once).
func (r *Region) AccessKey(ctx context.Context, id string) (identity, secret string, ok bool) {
	txn, _ := r.fsm.ReadTxn()
	ak := usableKey(txn, id)
	if ak == nil {
		if r.consensus.IsLeader() || !r.keys.shouldCatchUp(id, r.Now()) {
			return "", "", false
		}
		if err := r.keys.catchUp(ctx, r.bg, r.consensus.ReadIndex); err != nil {
			return "", "", false
		}
		txn, _ = r.fsm.ReadTxn()
		if ak = usableKey(txn, id); ak == nil {
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
	pt, err := r.openAccessKey(ak)
	if err != nil {
		r.logger.Error("access key does not open", "access_key_id", id, "error", err)
		return "", "", false
	}
	r.secretsMu.Lock()
	r.secrets[id] = cachedSecret{sealed: string(ak.SealedSecret), secret: string(pt)}
	r.secretsMu.Unlock()
	return ak.Identity, string(pt), true
}

// idAlphabet is the alphabet of the 16 characters after the prefix of
// AWS's ids: access key ids (AKIA), user (AIDA), group (AGPA) and policy
// (ANPA) ids.
const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// GenerateCredentials returns a fresh access key pair in AWS's shapes: a
// 20-character id starting AKIA and a 40-character secret.
func GenerateCredentials() Credentials {
	return Credentials{
		AccessKeyID:     "AKIA" + randomString(16, idAlphabet),
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

// errNoRaft answers the Raft operator calls of a region without Raft.
func errNoRaft() error {
	return apierr.New(apierr.InvalidRequest, "this region runs without Raft (a local region): it has no peers")
}

// RemovePeer removes a server that is gone for good from the region's
// Raft configuration (`coffer operator raft remove-peer`).
func (r *Region) RemovePeer(ctx context.Context, id string) (uint64, error) {
	if r.node == nil {
		return 0, errNoRaft()
	}
	return r.node.RemovePeer(ctx, id)
}

// TransferLeader hands the region's leadership to server id, or to any
// other voter when id is "" (`coffer operator raft transfer-leader`). It
// returns the new leader's id.
func (r *Region) TransferLeader(ctx context.Context, id string) (string, error) {
	if r.node == nil {
		return "", errNoRaft()
	}
	return r.node.TransferLeader(ctx, id)
}

// SnapshotMeta describes a saved snapshot (`coffer operator snapshot save`).
type SnapshotMeta struct {
	Region    string `json:"region"`
	AccountID string `json:"account_id"`
	Node      string `json:"node"`
	Index     uint64 `json:"index"`
	Term      uint64 `json:"term"`
}

// SaveSnapshot writes a snapshot of the region's state, as this node has
// applied it, to w: a Raft snapshot, or the state itself for a region
// without Raft.
func (r *Region) SaveSnapshot(w io.Writer) (SnapshotMeta, error) {
	m := SnapshotMeta{Region: r.name, AccountID: r.cfg.AccountID, Node: r.cfg.Cluster.NodeID}
	if r.node == nil {
		index, err := r.fsm.Dump(w)
		m.Index = index
		return m, err
	}
	meta, err := r.node.SaveSnapshot(w)
	m.Index, m.Term = meta.Index, meta.Term
	return m, err
}
