package server

import (
	"context"
	"io"
	"time"

	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
	"github.com/hashicorp/go-memdb"
)

// Region is the region service the handlers call: all server needs of a
// region, and no more (rqlite's habit: the user of an interface defines
// it). *region.Region is the one cmd/coffer gives New; a region started
// with region.Config.Local serves it without Raft in handler tests.
// Errors are *apierr.Error or *cluster.UnavailableError, mapped to the
// wire in errors.go; every method that reads or writes returns the index
// its answer reflects, for X-Coffer-Index.
type Region interface {
	// Name is the region's name, the one in SigV4 credential scopes.
	Name() string
	// AccountID is the account in the region's ARNs.
	AccountID() string
	// Now is the node's wall clock: every date in a command comes from it.
	Now() time.Time
	// NewARN is a new secret's ARN, with a fresh random suffix.
	NewARN(name string) string

	// AccessKey finds an access key's identity and secret (SigV4).
	AccessKey(ctx context.Context, id string) (identity, secret string, ok bool)
	// NoteKeyUse notes that a request authenticated with an access key
	// (an IAM user key's LastUsedDate; no Raft write on the request path).
	NoteKeyUse(id string)
	// Caller describes an authenticated identity from local state: root,
	// or an IAM user with its policies' documents.
	Caller(identity string) (region.Caller, bool)
	// IdentityGeneration moves when what Caller reads changes.
	IdentityGeneration() uint64
	// OnPurge sets the function told of each secret the purge of expired
	// recovery windows destroys (audited as service events).
	OnPurge(fn func(arn string, versionIDs []string))
	// The IAM changes (iam.go); reads use Read and fsm's queries.
	CreateUser(ctx context.Context, name, path string) (*fsm.User, error)
	DeleteUser(ctx context.Context, name string) error
	CreateGroup(ctx context.Context, name, path string) (*fsm.Group, error)
	DeleteGroup(ctx context.Context, name string) error
	AddUserToGroup(ctx context.Context, user, group string) error
	RemoveUserFromGroup(ctx context.Context, user, group string) error
	CreatePolicy(ctx context.Context, name, path, description, document string) (*fsm.ManagedPolicy, error)
	UpdatePolicy(ctx context.Context, name, document string) error
	DeletePolicy(ctx context.Context, name string) error
	AttachPolicy(ctx context.Context, user, group, policy string) error
	DetachPolicy(ctx context.Context, user, group, policy string) error
	CreateAccessKey(ctx context.Context, user string) (region.Credentials, error)
	UpdateAccessKey(ctx context.Context, id, status string) error
	DeleteAccessKey(ctx context.Context, id string) error
	// Keyring is the region's open keyring, or an error while sealed.
	Keyring() (*crypto.Keyring, error)
	// Sealed reports whether the region cannot decrypt yet.
	Sealed() bool
	// SealStatus, Init, Unseal and Rekey serve the seal endpoints
	// (seal.go).
	SealStatus() region.SealStatus
	Init(ctx context.Context, shares, threshold int) (*region.InitResult, error)
	Unseal(key string) (region.SealStatus, error)
	Rekey(ctx context.Context, shares, threshold int) (*region.InitResult, error)

	// Read is a read transaction: linearizable, or local state if stale.
	Read(ctx context.Context, stale bool) (*memdb.Txn, uint64, error)
	// Resolve finds a secret by name, ARN or partial ARN in txn.
	Resolve(txn *memdb.Txn, id string) *fsm.Secret
	// Apply commits one command.
	Apply(ctx context.Context, t fsm.CommandType, cmd any) (*fsm.Result, uint64, error)
	// WriteSecret resolves a secret and commits the command build makes.
	WriteSecret(ctx context.Context, id string, build func(*fsm.Secret) (fsm.CommandType, any, error)) (*fsm.Result, uint64, error)
	// ResolveKey finds the key a KmsKeyId names, for new values.
	ResolveKey(ctx context.Context, given string) (*fsm.Key, error)
	// WrapKEK is the KEK new data keys of a secret are wrapped by.
	WrapKEK(s *fsm.Secret) (string, error)
	// Rewraps moves a secret's labelled versions' data keys under a key.
	Rewraps(kr *crypto.Keyring, s *fsm.Secret, k *fsm.Key) ([]fsm.Rewrap, error)
	// KeyOf is the id of the key a KEK is a version of.
	KeyOf(kekID string) string
	// Keys, DescribeKey, CreateKey, RotateKey, SetKeyEnabled and SetAlias
	// serve the key admin calls (keys.go).
	Keys(ctx context.Context) ([]region.KeyInfo, error)
	DescribeKey(ctx context.Context, given string) (*region.KeyInfo, error)
	CreateKey(ctx context.Context, description, alias string) (*region.KeyInfo, error)
	RotateKey(ctx context.Context, given string) (*region.KeyInfo, error)
	SetKeyEnabled(ctx context.Context, given string, enabled bool) (*region.KeyInfo, error)
	SetAlias(ctx context.Context, name, key string) error
	// OpenValue decrypts a version's value.
	OpenValue(kr *crypto.Keyring, s *fsm.Secret, v *fsm.Version) ([]byte, error)
	// RecordAccess records the values a request served in
	// LastAccessedDate.
	RecordAccess(ctx context.Context, stale bool, reads []region.ValueRead)
	// Reset empties the region (coffer dev's POST /v1/dev/reset).
	Reset(ctx context.Context) (uint64, error)

	// Status is the node's view of the region's group (/v1/health,
	// /v1/cluster/status).
	Status() cluster.Status
	// RemovePeer and TransferLeader change the Raft configuration
	// (`coffer operator raft …`, raft.go).
	RemovePeer(ctx context.Context, id string) (uint64, error)
	TransferLeader(ctx context.Context, id string) (string, error)
	// SaveSnapshot writes the region's state, as this node applied it
	// (`coffer operator snapshot save`).
	SaveSnapshot(w io.Writer) (region.SnapshotMeta, error)
	// RestoreSnapshot replaces the region's state with a snapshot's, on
	// every node, once it has checked it (`coffer operator snapshot
	// restore`); it returns the index from which every node serves it.
	RestoreSnapshot(ctx context.Context, state []byte) (uint64, error)
	// LastContact is the time since the node last heard from a leader.
	LastContact() time.Duration
	// ReplicationPublicKey is the region's replication key (GET /v1/regions).
	ReplicationPublicKey() (keyID string, pub []byte)
	// PromoteReplica turns a replica into a primary secret here
	// (StopReplicationToReplica).
	PromoteReplica(ctx context.Context, id string) (*fsm.Result, uint64, error)
	// ReplicationStatus is the replica regions this region ships to and
	// the primary regions it receives from (GET /v1/replication/status).
	ReplicationStatus(ctx context.Context, stale bool) ([]region.ReplicaStatus, []region.SourceStatus, uint64, error)
	// PromoteRegion, DemoteRegion, Conflicts and DismissConflict serve the region
	// failover calls (regions.go).
	PromoteRegion(ctx context.Context, from string) (int, uint64, error)
	DemoteRegion(ctx context.Context) (int, uint64, error)
	Conflicts(ctx context.Context, stale bool) ([]region.ConflictStatus, uint64, error)
	DismissConflict(ctx context.Context, id, versionID string) (*fsm.Result, uint64, error)
	// WaitReplicated returns once every replica region has applied the
	// replicated changes up to index (coffer dev's synchronous writes).
	WaitReplicated(ctx context.Context, index uint64) error
	// StateDigest is the state's digest and the index it reflects.
	StateDigest() (string, uint64, error)
}

var _ Region = (*region.Region)(nil)
