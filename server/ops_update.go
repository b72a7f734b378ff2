package server

import (
	"context"
	"regexp"
	"strings"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
)

func init() {
	register("UpdateSecret", updateSecret)
	register("UpdateSecretVersionStage", updateSecretVersionStage)
}

// UpdateSecret and UpdateSecretVersionStage (shared/spec §4.5, §4.9).

// requireSecretID checks the SecretId member every secret operation has.
func requireSecretID(v *validator, id *string) {
	if v.required(id, "secretId") {
		optionalSecretID(v, id)
	}
}

// optionalSecretID checks a SecretId member that may be absent
// (ValidateResourcePolicy's).
func optionalSecretID(v *validator, id *string) {
	if id != nil {
		v.length(id, "secretId", 1, 2048)
		v.secretID = id
	}
}

// validSecretARN is an ARN's shape as far as characters go: what follows
// "arn:" may hold a name's characters and the ARN's colons.
var validSecretARN = regexp.MustCompile(`^arn:[A-Za-z0-9/_+=.@:-]+$`)

// validSecretID: a SecretId is a name (CreateSecret's rule) or an ARN.
func validSecretID(id string) bool {
	if strings.HasPrefix(id, "arn:") {
		return validSecretARN.MatchString(id)
	}
	return validName.MatchString(id)
}

// decodeSecretIDOnly decodes and validates the body of an operation whose
// only member is SecretId.
func decodeSecretIDOnly(req *request) (string, error) {
	var in struct {
		SecretID *string `json:"SecretId"`
	}
	if err := decode(req.body, &in); err != nil {
		return "", err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	if err := v.err(); err != nil {
		return "", err
	}
	return *in.SecretID, nil
}

// arnNameVersion answers CreateSecret, UpdateSecret, RotateSecret and
// CancelRotateSecret: VersionId only when there is one (a version created
// or matched idempotently, a rotation started or cancelled).
type arnNameVersion struct {
	ARN       string `json:"ARN"`
	Name      string `json:"Name"`
	VersionID string `json:"VersionId,omitempty"`
}

type arnName struct {
	ARN  string `json:"ARN"`
	Name string `json:"Name"`
}

func updateSecret(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID           *string `json:"SecretId"`
		ClientRequestToken *string `json:"ClientRequestToken"`
		Description        *string `json:"Description"`
		KmsKeyID           *string `json:"KmsKeyId"`
		Type               *string `json:"Type"`
		secretValue
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	v.length(in.ClientRequestToken, "clientRequestToken", 32, 64)
	v.length(in.Description, "description", 0, 2048)
	v.length(in.KmsKeyID, "kmsKeyId", 0, 2048)
	v.length(in.Type, "type", 0, 256)
	in.secretValue.validate(&v)
	if err := v.err(); err != nil {
		return nil, err
	}
	if err := in.bothValues(); err != nil {
		return nil, err
	}
	// The SDKs send a token on every UpdateSecret; it only matters, and is
	// only required, with a value.
	if in.present() && in.ClientRequestToken == nil {
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgTokenMissing)
	}
	if in.KmsKeyID != nil {
		// The new key re-wraps every labelled version, and the apply
		// refuses the update if one is missing: build it from a state
		// that has every acknowledged write.
		if _, _, err := r.Read(ctx, false); err != nil {
			return nil, err
		}
	}
	res, err := writeSecret(ctx, r, req, *in.SecretID, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		cmd := &fsm.UpdateSecret{ARN: s.ARN, Description: in.Description, KmsKeyID: in.KmsKeyID, Type: in.Type,
			Date: r.Now().UnixMilli()}
		if !in.present() && in.KmsKeyID == nil {
			return fsm.CmdUpdateSecret, cmd, nil
		}
		var kekID string
		var err error
		if in.KmsKeyID != nil {
			// A new key: new values use it, and the labelled versions'
			// data keys move under it in the same command.
			key, err := r.ResolveKey(ctx, *in.KmsKeyID)
			if err != nil {
				return 0, nil, err
			}
			kr, err := r.Keyring() // after the key: it holds its KEK
			if err != nil {
				return 0, nil, err
			}
			id := secretKeyID(key)
			cmd.KeyID, kekID = &id, key.Current().KEKID
			if cmd.Rewraps, err = r.Rewraps(kr, s, key); err != nil {
				return 0, nil, err
			}
		} else if kekID, err = r.WrapKEK(s); err != nil {
			return 0, nil, err
		}
		if cmd.Version, err = in.seal(r, kekID, s.ARN, in.ClientRequestToken); err != nil {
			return 0, nil, err
		}
		return fsm.CmdUpdateSecret, cmd, nil
	})
	if err != nil {
		return nil, err
	}
	return arnNameVersion{res.ARN, res.Name, res.VersionID}, nil
}

func updateSecretVersionStage(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID            *string `json:"SecretId"`
		VersionStage        *string `json:"VersionStage"`
		RemoveFromVersionID *string `json:"RemoveFromVersionId"`
		MoveToVersionID     *string `json:"MoveToVersionId"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	if v.required(in.VersionStage, "versionStage") {
		v.length(in.VersionStage, "versionStage", 1, 256)
	}
	v.length(in.RemoveFromVersionID, "removeFromVersionId", 32, 64)
	v.length(in.MoveToVersionID, "moveToVersionId", 32, 64)
	if err := v.err(); err != nil {
		return nil, err
	}
	if in.RemoveFromVersionID == nil && in.MoveToVersionID == nil {
		return nil, apierr.New(apierr.InvalidParameter, apierr.MsgStageNoVersion)
	}
	res, err := writeSecret(ctx, r, req, *in.SecretID, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		return fsm.CmdUpdateSecretVersionStage, &fsm.UpdateSecretVersionStage{ARN: s.ARN, Stage: *in.VersionStage,
			RemoveFrom: deref(in.RemoveFromVersionID), MoveTo: deref(in.MoveToVersionID), Date: r.Now().UnixMilli()}, nil
	})
	if err != nil {
		return nil, err
	}
	return arnName{res.ARN, res.Name}, nil
}
