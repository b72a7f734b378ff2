package fsm

import (
	"github.com/cofferhq/coffer/apierr"
	"github.com/hashicorp/go-memdb"
)

// Command types applied here (command.go: the log format; never
// renumber or reuse one).
const (
	CmdUpdateSecret             CommandType = 8
	CmdUpdateSecretVersionStage CommandType = 9
)

// UpdateSecret changes a secret's metadata and, when Version is set, adds
// a value exactly as PutSecretValue with the default stages. A nil field
// leaves that attribute as it is; a pointer to "" clears it.
type UpdateSecret struct {
	ARN         string
	Description *string
	KmsKeyID    *string
	// KeyID is the key KmsKeyID resolved to, set with it; Rewraps move
	// the data keys of the secret's labelled versions under that key.
	// Each must find its version wrapped as it was read (From), else the
	// whole update is refused (a rotation's re-wrap got there first).
	KeyID   *string  `codec:",omitempty"`
	Rewraps []Rewrap `codec:",omitempty"`
	Type    *string
	Version *NewVersion
	Date    int64
}

// UpdateSecretVersionStage moves (or removes) one staging label: off
// RemoveFrom, onto MoveTo; either may be "".
type UpdateSecretVersionStage struct {
	ARN        string
	Stage      string
	RemoveFrom string
	MoveTo     string
	Date       int64
}

func init() {
	register(CmdUpdateSecret, "UpdateSecret", applyUpdateSecret)
	register(CmdUpdateSecretVersionStage, "UpdateSecretVersionStage", applyUpdateSecretVersionStage)
}

func errNotAVersion(id string) *apierr.Error {
	return apierr.Newf(apierr.InvalidParameter, "Not a valid version: %s", id)
}

func applyUpdateSecret(txn *memdb.Txn, index uint64, c *UpdateSecret) any {
	s, errResp := writableSecret(txn, c.ARN)
	if errResp != nil {
		return errResp
	}
	res := &Result{ARN: s.ARN, Name: s.Name}
	if c.Version != nil {
		// A value is exactly a PutSecretValue with the default stages,
		// token idempotency included; it writes the secret itself.
		put := applyPutSecretValue(txn, index, &PutSecretValue{ARN: c.ARN, Version: *c.Version, Date: c.Date})
		pr, ok := put.(*Result)
		if !ok {
			return put
		}
		res.VersionID, res.VersionStages = pr.VersionID, pr.VersionStages
		if s, errResp = secretByARN(txn, c.ARN); errResp != nil {
			return errResp
		}
	}
	changed := false
	set := func(field *string, to *string) {
		if to != nil && *field != *to {
			*field = *to
			changed = true
		}
	}
	set(&s.Description, c.Description)
	set(&s.KmsKeyID, c.KmsKeyID)
	set(&s.KeyID, c.KeyID)
	set(&s.Type, c.Type)
	for _, rw := range c.Rewraps {
		v := s.Version(rw.VersionID)
		if v == nil || v.Value.KEKID != rw.From {
			return apierr.New(apierr.InternalServiceError, "the secret's data keys were re-wrapped while the update was prepared; nothing was changed: retry")
		}
		if e := checkWrap(txn, rw.KEKID); e != nil {
			return e
		}
		v.Value.KEKID, v.Value.WrappedKey = rw.KEKID, rw.WrappedKey
		changed = true
	}
	if c.KeyID != nil {
		// Every labelled version must now be under the new key: one the
		// node did not see (written after it read the secret) would be
		// left under the old key.
		target := *c.KeyID
		if target == "" {
			target = DefaultKeyID
		}
		rec := RegionRecord(txn)
		for _, v := range s.Versions {
			if len(v.Stages) > 0 && v.HasValue() && keyOfKEK(rec, v.Value.KEKID) != target {
				return apierr.New(apierr.InternalServiceError, "the secret changed while the update was prepared; nothing was changed: retry")
			}
		}
	}
	if changed {
		if e := changeSecret(txn, index, s, c.Date); e != nil {
			return e
		}
	}
	return res
}

func applyUpdateSecretVersionStage(txn *memdb.Txn, index uint64, c *UpdateSecretVersionStage) any {
	s, errResp := writableSecret(txn, c.ARN)
	if errResp != nil {
		return errResp
	}
	if c.Stage == "" {
		return apierr.New(apierr.InvalidParameter, "The staging label must not be empty.")
	}
	if c.RemoveFrom == "" && c.MoveTo == "" {
		return apierr.New(apierr.InvalidParameter, apierr.MsgStageNoVersion)
	}
	var from, to *Version
	if c.RemoveFrom != "" {
		if from = s.Version(c.RemoveFrom); from == nil {
			return errNotAVersion(c.RemoveFrom)
		}
	}
	if c.MoveTo != "" {
		if to = s.Version(c.MoveTo); to == nil {
			return errNotAVersion(c.MoveTo)
		}
	}
	holder := s.Staged(c.Stage)
	if from != nil && holder != from {
		return apierr.Newf(apierr.InvalidParameter,
			"The staging label %s is not attached to version %s, so it can't be removed from it.", c.Stage, c.RemoveFrom)
	}
	if to != nil && holder != nil && holder != to && from == nil {
		return apierr.Newf(apierr.InvalidParameter,
			"The parameter RemoveFromVersionId can't be empty. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.",
			c.Stage, holder.VersionID)
	}
	if c.Stage == StageCurrent && to == nil {
		return apierr.New(apierr.InvalidParameter, apierr.MsgStageCurrentNoTarget)
	}
	switch {
	case to != nil && holder == to:
		// Already there: nothing moves, nothing changes.
		return &Result{ARN: s.ARN, Name: s.Name}
	case to != nil:
		// moveLabel takes the label off its holder (RemoveFrom, checked
		// above) and hands AWSPREVIOUS to the old AWSCURRENT version.
		// AWSPENDING is never touched implicitly (shared/spec §3.4).
		moveLabel(s, c.Stage, to)
	default:
		from.Stages = removeLabel(from.Stages, c.Stage)
	}
	if e := checkLimits(s, c.Date); e != nil {
		return e
	}
	if e := changeSecret(txn, index, s, c.Date); e != nil {
		return e
	}
	return &Result{ARN: s.ARN, Name: s.Name}
}
