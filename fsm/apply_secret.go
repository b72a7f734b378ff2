package fsm

import (
	"crypto/hmac"
	"fmt"
	"slices"
	"strings"

	"github.com/cofferhq/coffer/apierr"
	"github.com/hashicorp/go-memdb"
)

// Command types applied here (command.go: the log format; never
// renumber or reuse one).
const (
	CmdInitRegion     CommandType = 1
	CmdCreateSecret   CommandType = 2
	CmdPutSecretValue CommandType = 3
	CmdDeleteSecret   CommandType = 4
	CmdRestoreSecret  CommandType = 5
)

// InitRegion bootstraps a region: its keyring and root access key. Applied
// once, by the first leader.
type InitRegion struct {
	Region        string
	AccountID     string
	KEKID         string
	SealedKeyring []byte
	RootKey       AccessKey
	Date          int64
	Seal          SealConfig
	// KeyringFormat is SealedKeyring's format (Region.KeyringFormat).
	KeyringFormat int `codec:",omitempty"`
	// The replication key pair, when the keyring holds one
	// (Region.ReplicationKeyID).
	ReplicationKeyID     string `codec:",omitempty"`
	ReplicationPublicKey []byte `codec:",omitempty"`
}

// CreateSecret creates a secret, with a first version when Version is set.
type CreateSecret struct {
	ARN         string
	Name        string
	Description string
	KmsKeyID    string
	// KeyID is the key KmsKeyID resolved to (Secret.KeyID).
	KeyID   string `codec:",omitempty"`
	Tags    []Tag
	Version *NewVersion
	Date    int64
	Type    string
	// Replicas are AddReplicaRegions: replication starts with the secret.
	Replicas []Replica `codec:",omitempty"`
}

// PutSecretValue adds a version to the secret with this ARN and moves the
// labels in Stages to it (nil Stages means AWSCURRENT).
type PutSecretValue struct {
	ARN     string
	Version NewVersion
	Stages  []string
	Date    int64
}

// DeleteSecret schedules the secret for deletion at DeletionDate, or removes
// it now when Force is set.
type DeleteSecret struct {
	ARN          string
	Force        bool
	DeletionDate int64
	Date         int64
}

// RestoreSecret cancels a scheduled deletion.
type RestoreSecret struct {
	ARN  string
	Date int64
}

func init() {
	register(CmdInitRegion, "InitRegion", applyInitRegion)
	register(CmdCreateSecret, "CreateSecret", applyCreateSecret)
	register(CmdPutSecretValue, "PutSecretValue", applyPutSecretValue)
	register(CmdDeleteSecret, "DeleteSecret", applyDeleteSecret)
	register(CmdRestoreSecret, "RestoreSecret", applyRestoreSecret)
}

func errNotFound() *apierr.Error {
	return apierr.New(apierr.ResourceNotFound, apierr.MsgSecretNotFound)
}

func errTokenInUse(token, arn string) *apierr.Error {
	return apierr.Newf(apierr.ResourceExists,
		"You can't use ClientRequestToken %s because that value is already in use for a version of secret %s.", token, arn)
}

// ListKey orders secrets for ListSecrets: creation time, then ARN.
func ListKey(createdMillis int64, arn string) string {
	return fmt.Sprintf("%015d\x00%s", createdMillis, arn)
}

func applyInitRegion(txn *memdb.Txn, index uint64, c *InitRegion) any {
	if r, _ := txn.First(tableRegion, "id", regionID); r != nil {
		return apierr.New(apierr.InvalidRequest, "the region is already initialized")
	}
	region := &Region{ID: regionID, Name: c.Region, AccountID: c.AccountID, KEKID: c.KEKID,
		SealedKeyring: c.SealedKeyring, CreatedDate: c.Date, Seal: c.Seal, KeyringFormat: c.KeyringFormat,
		ReplicationKeyID: c.ReplicationKeyID, ReplicationPublicKey: c.ReplicationPublicKey}
	if err := txn.Insert(tableRegion, region); err != nil {
		return internal(err)
	}
	key := c.RootKey
	if err := txn.Insert(tableAccessKeys, &key); err != nil {
		return internal(err)
	}
	return &Result{}
}

func applyCreateSecret(txn *memdb.Txn, index uint64, c *CreateSecret) any {
	raw, err := txn.First(tableSecrets, "name", c.Name)
	if err != nil {
		return internal(err)
	}
	if raw != nil {
		existing := raw.(*Secret)
		if existing.Scheduled() {
			return apierr.New(apierr.InvalidRequest, apierr.MsgScheduledCreate)
		}
		if c.Version != nil {
			if v := existing.Version(c.Version.VersionID); v != nil && v.HasValue() {
				if sameValue(v, c.Version) {
					// An idempotent retry: answer as the first call did.
					return &Result{ARN: existing.ARN, Name: existing.Name, VersionID: v.VersionID}
				}
				return errTokenInUse(c.Version.VersionID, existing.ARN)
			}
		}
		return apierr.Newf(apierr.ResourceExists, "The operation failed because the secret %s already exists.", c.Name)
	}
	if existing, _ := txn.First(tableSecrets, "id", c.ARN); existing != nil {
		// memdb enforces uniqueness on the id index only by replacing: never
		// let a new secret overwrite another one.
		return apierr.New(apierr.InternalServiceError, "the generated ARN is already in use; retry the request")
	}
	if c.Version != nil {
		if e := checkWrap(txn, c.Version.Value.KEKID); e != nil {
			return e
		}
	}
	s := &Secret{
		ARN: c.ARN, Name: c.Name, Description: c.Description, KmsKeyID: c.KmsKeyID, KeyID: c.KeyID,
		Tags: slices.Clone(c.Tags), TagsEverSet: len(c.Tags) > 0,
		CreatedDate: c.Date, LastChangedDate: c.Date, ListKey: ListKey(c.Date, c.ARN),
		Type: c.Type, CreateIndex: index,
	}
	res := &Result{ARN: s.ARN, Name: s.Name}
	if c.Version != nil {
		s.Versions = []*Version{newVersion(index, c.Version, c.Date, []string{StageCurrent})}
		res.VersionID = c.Version.VersionID
		res.VersionStages = []string{StageCurrent}
	}
	if err := addReplicas(txn, index, s, c.Replicas); err != nil {
		return internal(err)
	}
	if e := putSecret(txn, index, s); e != nil {
		return e
	}
	return res
}

func applyPutSecretValue(txn *memdb.Txn, index uint64, c *PutSecretValue) any {
	s, errResp := writableSecret(txn, c.ARN)
	if errResp != nil {
		return errResp
	}
	nv := &c.Version
	ver := s.Version(nv.VersionID)
	if ver != nil && ver.HasValue() {
		if sameValue(ver, nv) {
			return &Result{ARN: s.ARN, Name: s.Name, VersionID: ver.VersionID, VersionStages: slices.Clone(ver.Stages)}
		}
		return errTokenInUse(nv.VersionID, s.ARN)
	}
	if e := checkWrap(txn, nv.Value.KEKID); e != nil {
		return e
	}
	hadValue := slices.ContainsFunc(s.Versions, (*Version).HasValue)
	date := versionDate(s, c.Date)
	if ver != nil {
		// A rotation placeholder (AWSPENDING, no value) takes the value.
		ver.Binary, ver.Value, ver.Digest, ver.CreatedDate, ver.PrimaryARN, ver.Index = nv.Binary, nv.Value, nv.Digest, date, nv.PrimaryARN, index
	} else {
		ver = newVersion(index, nv, date, nil)
		s.Versions = append(s.Versions, ver)
	}
	stages := c.Stages
	if stages == nil {
		stages = []string{StageCurrent}
	}
	if !hadValue && !slices.Contains(stages, StageCurrent) {
		// The first value of a secret always becomes current.
		stages = append(slices.Clone(stages), StageCurrent)
	}
	if slices.Contains(stages, StageCurrent) && !slices.Contains(stages, StagePending) {
		if cur := s.Staged(StageCurrent); cur != nil && cur != ver {
			// A new value replacing the current one abandons any rotation
			// in progress: AWSPENDING goes, wherever it was.
			if p := s.Staged(StagePending); p != nil {
				p.Stages = removeLabel(p.Stages, StagePending)
			}
		}
	}
	for _, label := range stages {
		moveLabel(s, label, ver)
	}
	if e := checkLimits(s, date); e != nil {
		return e
	}
	if e := changeSecret(txn, index, s, date); e != nil {
		return e
	}
	return &Result{ARN: s.ARN, Name: s.Name, VersionID: ver.VersionID, VersionStages: slices.Clone(ver.Stages)}
}

func applyDeleteSecret(txn *memdb.Txn, index uint64, c *DeleteSecret) any {
	s, errResp := secretByARN(txn, c.ARN)
	if errResp != nil {
		return errResp
	}
	if len(s.Replicas) > 0 {
		regions := make([]string, len(s.Replicas))
		for i, r := range s.Replicas {
			regions[i] = r.Region
		}
		return apierr.Newf(apierr.InvalidParameter, "You can't delete secret %s that still has replica regions [%s].", s.ARN, strings.Join(regions, ", "))
	}
	if c.Force {
		if e := removeSecret(txn, index, s, c.Date); e != nil {
			return e
		}
		return &Result{ARN: s.ARN, Name: s.Name, DeletionDate: c.Date}
	}
	if s.Scheduled() {
		return apierr.New(apierr.InvalidRequest, apierr.MsgAlreadyDeleted)
	}
	// Scheduling is a change (ModifyIndex), not a removal: the secret stays
	// until the purge or a forced delete leaves its tombstone.
	s.DeletedDate, s.DeletionDate = c.Date, c.DeletionDate
	if e := putSecret(txn, index, s); e != nil {
		return e
	}
	return &Result{ARN: s.ARN, Name: s.Name, DeletionDate: s.DeletionDate}
}

func applyRestoreSecret(txn *memdb.Txn, index uint64, c *RestoreSecret) any {
	s, errResp := secretByARN(txn, c.ARN)
	if errResp != nil {
		return errResp
	}
	if s.Scheduled() {
		s.DeletedDate, s.DeletionDate = 0, 0
		if e := changeSecret(txn, index, s, c.Date); e != nil {
			return e
		}
	}
	return &Result{ARN: s.ARN, Name: s.Name}
}

// storedSecret returns the secret as the state holds it (not to be
// changed in place), replica or not.
func storedSecret(txn *memdb.Txn, arn string) (*Secret, *apierr.Error) {
	raw, err := txn.First(tableSecrets, "id", arn)
	if err != nil {
		return nil, internal(err)
	}
	if raw == nil {
		return nil, errNotFound()
	}
	return raw.(*Secret), nil
}

// secretByARN returns a clone of a secret clients may change, ready to
// change.
func secretByARN(txn *memdb.Txn, arn string) (*Secret, *apierr.Error) {
	s, e := storedSecret(txn, arn)
	switch {
	case e != nil:
		return nil, e
	case s.IsReplica():
		// Clients change a replica in its primary's region only; the
		// replication receiver writes it with ApplyReplicated.
		return nil, apierr.New(apierr.InvalidParameter, apierr.MsgReplicaWrite)
	case s.Demoted:
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgDemotedWrite)
	}
	return s.clone(), nil
}

// writableSecret is secretByARN for operations refused during the recovery
// window.
func writableSecret(txn *memdb.Txn, arn string) (*Secret, *apierr.Error) {
	s, e := secretByARN(txn, arn)
	if e != nil {
		return nil, e
	}
	if s.Scheduled() {
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
	}
	return s, nil
}

// versionDate is the CreatedDate of a version a command adds to s: the
// command's date, but never earlier than the secret's creation or any of
// its versions. Nodes' clocks differ, so a later command in the log can
// carry an earlier date; versions are ordered by the log and their dates
// follow it (docs/architecture.md, "Dates follow the log").
func versionDate(s *Secret, date int64) int64 {
	date = max(date, s.CreatedDate)
	for _, v := range s.Versions {
		date = max(date, v.CreatedDate)
	}
	return date
}

func newVersion(index uint64, nv *NewVersion, date int64, stages []string) *Version {
	return &Version{VersionID: nv.VersionID, Stages: stages, CreatedDate: date,
		Binary: nv.Binary, Value: nv.Value, Digest: nv.Digest, PrimaryARN: nv.PrimaryARN, Index: index}
}

// sameValue decides idempotency: same kind and same keyed digest.
func sameValue(v *Version, nv *NewVersion) bool {
	return v.Binary == nv.Binary && hmac.Equal(v.Digest, nv.Digest)
}

// moveLabel attaches label to version to, taking it from whichever version
// held it. When AWSCURRENT moves, AWSPREVIOUS goes to the version that lost
// it (shared/spec §3.4).
func moveLabel(s *Secret, label string, to *Version) {
	from := s.Staged(label)
	if from == to {
		return
	}
	if from != nil {
		from.Stages = removeLabel(from.Stages, label)
	}
	to.Stages = addLabel(to.Stages, label)
	if label == StageCurrent && from != nil {
		if p := s.Staged(StagePrevious); p != nil {
			p.Stages = removeLabel(p.Stages, StagePrevious)
		}
		from.Stages = addLabel(from.Stages, StagePrevious)
	}
}

// addLabel appends label unless the version has it: a version's labels
// keep the order they were attached in, which is the order a caller gave
// them (AWS answers PutSecretValue's VersionStages in the caller's order).
func addLabel(stages []string, label string) []string {
	if slices.Contains(stages, label) {
		return stages
	}
	return append(stages, label)
}

func removeLabel(stages []string, label string) []string {
	return slices.DeleteFunc(stages, func(s string) bool { return s == label })
}

// checkLimits enforces the label quota and purges deprecated versions
// beyond the version quota, oldest first, never one younger than a day
// and never a conflict (Version.Conflict: kept until an operator has
// seen it, docs/replication.md).
func checkLimits(s *Secret, now int64) *apierr.Error {
	labels := 0
	for _, v := range s.Versions {
		labels += len(v.Stages)
	}
	if labels > MaxLabelsPerSecret {
		return apierr.Newf(apierr.LimitExceeded,
			"A secret can have at most %d staging labels across its versions; this request would attach %d.", MaxLabelsPerSecret, labels)
	}
	for len(s.Versions) > MaxVersions {
		i := slices.IndexFunc(s.Versions, func(v *Version) bool {
			return len(v.Stages) == 0 && v.Conflict == nil && now-v.CreatedDate >= PurgeMinAgeMillis
		})
		if i < 0 {
			msg := fmt.Sprintf("The secret already has %d versions and none can be removed yet: deprecated versions are kept for 24 hours.", MaxVersions)
			if slices.ContainsFunc(s.Versions, func(v *Version) bool { return v.Conflict != nil }) {
				msg += " Conflict versions of a region failover are kept for good (coffer region conflicts)."
			}
			return apierr.New(apierr.LimitExceeded, msg)
		}
		s.Versions = slices.Delete(s.Versions, i, i+1)
	}
	return nil
}

func internal(err error) *apierr.Error {
	return apierr.Newf(apierr.InternalServiceError, "state store: %v", err)
}
