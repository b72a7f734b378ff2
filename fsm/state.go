package fsm

import (
	"slices"

	"github.com/cofferhq/coffer/crypto"
)

// Reserved staging labels.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
	StagePending  = "AWSPENDING"
)

// Limits from the AWS quotas (shared/spec §6).
const (
	MaxVersions        = 100 // versions per secret before deprecated ones are purged
	MaxLabelsPerSecret = 20  // staging labels across all versions of a secret
	// PurgeMinAgeMillis: a deprecated version younger than this is never purged.
	PurgeMinAgeMillis = 24 * 60 * 60 * 1000
)

// Times in state and commands are Unix milliseconds, decided by the node
// that received the request; 0 means "not set".

// Secret is one secret and all its versions. Values in memdb are never
// mutated: Apply clones a secret, changes the clone and inserts it.
type Secret struct {
	ARN         string
	Name        string
	Description string
	// KmsKeyID is the secret's key as the client named it (DescribeSecret
	// shows it); KeyID is the key it resolved to when it was set, which
	// wraps the secret's new data keys. A secret whose KmsKeyID was stored
	// before keys existed has no KeyID and uses the default key.
	KmsKeyID string
	KeyID    string `codec:",omitempty"`
	Tags     []Tag  // in the order given; keys unique
	// TagsEverSet makes DescribeSecret answer "Tags": [] after the last tag
	// is removed, as AWS does.
	TagsEverSet      bool
	CreatedDate      int64
	LastChangedDate  int64
	LastAccessedDate int64
	DeletedDate      int64 // set while scheduled for deletion
	DeletionDate     int64 // end of the recovery window
	Versions         []*Version
	// ListKey orders ListSecrets by creation time, ties broken by ARN.
	ListKey string
	// Type is the managed external secret type (stored and echoed).
	Type string
	// ResourcePolicy is the resource policy document exactly as it was
	// put; "" means none.
	ResourcePolicy string
	// CreateIndex is the Raft log index of the command that created the
	// secret; ModifyIndex that of the last command that changed it (the
	// change feed, query_changes.go). Recording an access (RecordAccess)
	// is not a change and leaves ModifyIndex alone. Both are 0 in a secret
	// restored from a snapshot written before they existed; omitempty
	// keeps such a secret's snapshot record byte for byte as it was.
	CreateIndex uint64 `codec:",omitempty"`
	ModifyIndex uint64 `codec:",omitempty"`
	// Replicas are the replica regions of a primary secret (replication.go).
	Replicas []Replica `codec:",omitempty"`
	// PrimaryRegion is set on a replica: the region of the primary
	// secret, the only one clients may change it in. SourceIndex is the
	// primary's ModifyIndex of the state the replica holds.
	PrimaryRegion string `codec:",omitempty"`
	SourceIndex   uint64 `codec:",omitempty"`
	// Epoch is the secret's fencing epoch: a promotion raises it, and a
	// region applies or keeps only the state of the highest epoch it has
	// seen, so an old primary that comes back cannot overwrite what the
	// promoted region wrote (docs/replication.md, "Promotion").
	Epoch uint64 `codec:",omitempty"`
	// PrimaryReplicas, on a replica, are the replica regions of its
	// primary (the primary's own region among them) as last shipped: a
	// promotion of this region makes the others this secret's replicas.
	PrimaryReplicas []Replica `codec:",omitempty"`
	// Reconcile is set on a primary that learned it was superseded (a
	// higher epoch elsewhere) and became a replica: the first state its
	// new primary ships keeps the versions it lacks as conflicts, not
	// dropped.
	Reconcile bool `codec:",omitempty"`
	// ReconcileEpoch is the epoch this region wrote the secret at before
	// it learned of the promotion (Conflict.Epoch of what it keeps); the
	// secret's Epoch is the new primary's from then on.
	ReconcileEpoch uint64 `codec:",omitempty"`
	// Demoted is set on a primary of a demoted region (coffer region
	// demote): clients may not change it, while it still ships to its
	// replica regions, one of which is to be promoted.
	Demoted bool `codec:",omitempty"`
	// Rotation is the secret's rotation (rotation.go); nil while
	// RotateSecret never configured one.
	Rotation *Rotation `codec:",omitempty"`
}

// Tombstone records that a secret left the secrets table for good (a
// forced DeleteSecret, PurgeSecrets, ResetRegion), so the change feed can
// report the removal. Tombstones stay until a CompactTombstones removes
// them. Scheduling a deletion is not a removal: the secret changes
// (ModifyIndex) and stays.
type Tombstone struct {
	ARN  string
	Name string
	// DeleteIndex is the Raft log index of the command that removed it.
	DeleteIndex uint64
	// Date is the removing command's date (DeleteSecret.Date,
	// PurgeSecrets.Now, ResetRegion.Date); TombstonesBefore compacts by it.
	Date int64
}

// Tag is a secret's tag.
type Tag struct {
	Key   string
	Value string
}

// Version is one secret version. Value holds ciphertext only.
type Version struct {
	VersionID        string
	Stages           []string // in the order they were attached
	CreatedDate      int64
	LastAccessedDate int64
	Binary           bool
	Value            crypto.Envelope
	// Digest is an HMAC of the value under the region's key, so Apply can
	// decide ClientRequestToken idempotency without plaintext.
	Digest []byte
	// PrimaryARN is the ARN of the secret in the region where it was
	// created, which the value's AAD binds with the version id
	// (crypto.ValueAAD): it travels with the version, so a replica region,
	// where the secret's ARN differs, decrypts the same ciphertext once it
	// has re-wrapped the data key. Empty in versions written before the
	// field existed: their AAD binds the secret's own ARN (AADARN).
	PrimaryARN string `codec:",omitempty"`
	// Index is the log index of the command that gave the version its
	// value (0 in versions from before the field): a shipper sends the
	// value of a version set after the replica's cursor.
	Index uint64 `codec:",omitempty"`
	// Conflict is set on a version this region wrote as the primary that
	// its new primary, promoted elsewhere, does not have: kept, unlabeled,
	// so no acknowledged write is lost silently (coffer region conflicts).
	Conflict *Conflict `codec:",omitempty"`
}

// Conflict records where and when a conflicting version was found.
type Conflict struct {
	// Region wrote the version as the primary at Epoch; Date is when it
	// learned that another region had been promoted.
	Region string
	Epoch  uint64
	Date   int64
}

// AADARN is the ARN the value of v is bound to, in secret s.
func (v *Version) AADARN(s *Secret) string {
	if v.PrimaryARN != "" {
		return v.PrimaryARN
	}
	return s.ARN
}

// Scheduled reports whether the secret is scheduled for deletion.
func (s *Secret) Scheduled() bool { return s.DeletedDate != 0 }

// Version returns the version with the given id, or nil.
func (s *Secret) Version(id string) *Version {
	for _, v := range s.Versions {
		if v.VersionID == id {
			return v
		}
	}
	return nil
}

// Staged returns the version carrying the label, or nil.
func (s *Secret) Staged(label string) *Version {
	for _, v := range s.Versions {
		if slices.Contains(v.Stages, label) {
			return v
		}
	}
	return nil
}

// HasValue reports whether the version holds a value (a rotation
// placeholder does not).
func (v *Version) HasValue() bool { return len(v.Value.Ciphertext) > 0 }

// clone copies the secret and its versions deeply enough that changing
// labels, tags or the version list does not touch the original, which
// concurrent readers may hold.
func (s *Secret) clone() *Secret {
	c := *s
	c.Tags = slices.Clone(s.Tags)
	c.Replicas = slices.Clone(s.Replicas)
	c.PrimaryReplicas = slices.Clone(s.PrimaryReplicas)
	c.Rotation = s.Rotation.clone()
	c.Versions = make([]*Version, len(s.Versions))
	for i, v := range s.Versions {
		vc := *v
		vc.Stages = slices.Clone(v.Stages)
		c.Versions[i] = &vc
	}
	return &c
}

// AccessKey is an access key pair of an identity. The secret half is sealed
// under the keyring's KEK KEKID; an empty KEKID is a key sealed directly
// under the root key by an earlier version, until a rekey re-seals it.
type AccessKey struct {
	AccessKeyID  string
	Identity     string
	SealedSecret []byte
	CreatedDate  int64
	// omitempty keeps the snapshot of a state without it byte for byte
	// what earlier versions wrote (the digest nodes compare).
	KEKID string `codec:",omitempty"`
	// UserName is the IAM user the key belongs to ("" for the root key;
	// Identity is the user's name too). Status is "" while the key is
	// active, StatusInactive once disabled; LastUsedDate is when a request
	// last authenticated with it (RecordKeyUse). All omitempty: see KEKID.
	UserName     string `codec:",omitempty"`
	Status       string `codec:",omitempty"`
	LastUsedDate int64  `codec:",omitempty"`
}

// Region is the region's singleton record: its name, account and sealed
// keyring. It exists once the region has bootstrapped.
type Region struct {
	ID        string // always "region"
	Name      string
	AccountID string
	// KEKID is the region's first KEK: the default key's first version,
	// which also seals access keys' secrets.
	KEKID         string
	SealedKeyring []byte
	CreatedDate   int64
	// Seal is how the root key that seals the keyring is handed to nodes
	// (omitempty: see AccessKey.KEKID).
	Seal SealConfig `codec:",omitempty"`
	// KeyringGen counts the changes to the sealed keyring (a key created
	// or rotated, a rekey): a change is computed against one generation
	// and refused if another landed first, so none is lost. KeyringFormat
	// is the sealed keyring's format: 0 for the first (one KEK, KEKID),
	// 2 for the second (every KEK by id), which every change writes.
	KeyringGen    uint64 `codec:",omitempty"`
	KeyringFormat int    `codec:",omitempty"`
	// SealedRootKey is the root key a rekey made, sealed under the
	// region's first KEK: a node unsealed with the old root key follows
	// the rekey with it when the keyring changes next (the disk alone
	// still opens nothing: that KEK is in the keyring, sealed under the
	// root key).
	SealedRootKey []byte `codec:",omitempty"`
	// ReplicationKeyID names the keyring entry holding the region's X25519
	// replication private key; ReplicationPublicKey is its public half,
	// which other regions seal data keys to (crypto/replication.go).
	ReplicationKeyID     string `codec:",omitempty"`
	ReplicationPublicKey []byte `codec:",omitempty"`
}

// LegacyKEKID is what crypto.OpenKeyring needs to open the region's
// sealed keyring: the KEK id of a first-format keyring, "" for the second.
func (r *Region) LegacyKEKID() string {
	if r.KeyringFormat == 0 {
		return r.KEKID
	}
	return ""
}

// SealConfig describes the region's root key: split into Shares Shamir
// shares of which Threshold unseal a node, or (Threshold 0) given whole to
// each node in a key file or the environment. InitID names the
// initialization or rekey that made the current root key; every share
// carries it, so a share of an older key is refused by name.
type SealConfig struct {
	InitID    string
	Shares    int
	Threshold int
}

const regionID = "region"
