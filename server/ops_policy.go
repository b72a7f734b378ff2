package server

import (
	"context"
	"errors"

	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
)

func init() {
	register("PutResourcePolicy", putResourcePolicy)
	register("GetResourcePolicy", getResourcePolicy)
	register("DeleteResourcePolicy", deleteResourcePolicy)
	register("ValidateResourcePolicy", validateResourcePolicy)
}

// Resource policies (shared/spec §4.15–4.17, §7.6). The document is stored
// byte for byte; its structure is checked here, on the node that received
// the request, before anything enters the log.

// Check names in ValidateResourcePolicy's ValidationErrors [Coffer].
const (
	checkSyntax      = "SYNTAX"
	checkBroadAccess = "BROAD_ACCESS"
	checkLockout     = "LOCKOUT"
)

func validatePolicyMember(v *validator, policy *string) {
	if v.required(policy, "resourcePolicy") {
		v.length(policy, "resourcePolicy", 1, fsm.MaxPolicyLength)
	}
}

func putResourcePolicy(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID          *string `json:"SecretId"`
		ResourcePolicy    *string `json:"ResourcePolicy"`
		BlockPublicPolicy *bool   `json:"BlockPublicPolicy"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	validatePolicyMember(&v, in.ResourcePolicy)
	if err := v.err(); err != nil {
		return nil, err
	}
	// AWS finds the secret before it reads the policy: an unknown secret
	// is ResourceNotFoundException whatever the document says.
	res, err := writeSecret(ctx, r, req, *in.SecretID, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		p, problems, err := acl.ParsePolicy(*in.ResourcePolicy)
		if err != nil || len(problems) > 0 {
			return 0, nil, apierr.New(apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy)
		}
		if in.BlockPublicPolicy != nil && *in.BlockPublicPolicy && len(p.BroadAccess()) > 0 {
			return 0, nil, apierr.New(apierr.PublicPolicy, apierr.MsgPublicPolicy)
		}
		return fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: s.ARN, Policy: *in.ResourcePolicy, Date: r.Now().UnixMilli()}, nil
	})
	if err != nil {
		return nil, err
	}
	return arnName{res.ARN, res.Name}, nil
}

func getResourcePolicy(ctx context.Context, r Region, req *request) (any, error) {
	id, err := decodeSecretIDOnly(req)
	if err != nil {
		return nil, err
	}
	s, err := readSecret(ctx, r, req, id)
	if err != nil {
		return nil, err
	}
	// No policy: ResourcePolicy is left out, not an error (Terraform
	// relies on it).
	return struct {
		ARN            string `json:"ARN"`
		Name           string `json:"Name"`
		ResourcePolicy string `json:"ResourcePolicy,omitempty"`
	}{s.ARN, s.Name, s.ResourcePolicy}, nil
}

func deleteResourcePolicy(ctx context.Context, r Region, req *request) (any, error) {
	id, err := decodeSecretIDOnly(req)
	if err != nil {
		return nil, err
	}
	res, err := writeSecret(ctx, r, req, id, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		return fsm.CmdDeleteResourcePolicy, &fsm.DeleteResourcePolicy{ARN: s.ARN, Date: r.Now().UnixMilli()}, nil
	})
	if err != nil {
		return nil, err
	}
	return arnName{res.ARN, res.Name}, nil
}

type validationError struct {
	CheckName    string `json:"CheckName"`
	ErrorMessage string `json:"ErrorMessage"`
}

func validateResourcePolicy(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID       *string `json:"SecretId"`
		ResourcePolicy *string `json:"ResourcePolicy"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	optionalSecretID(&v, in.SecretID)
	validatePolicyMember(&v, in.ResourcePolicy)
	if err := v.err(); err != nil {
		return nil, err
	}
	// The secret, if named, is found first, as PutResourcePolicy does.
	secretARN := ""
	if in.SecretID != nil {
		s, err := readSecret(ctx, r, req, *in.SecretID)
		if err != nil {
			return nil, err
		}
		secretARN = s.ARN
		if err := req.authorizeAction(r, "PutResourcePolicy", s, *in.SecretID); err != nil {
			return nil, err
		}
	} else if err := req.authorize(r, nil, ""); err != nil {
		return nil, err
	}
	p, problems, err := acl.ParsePolicy(*in.ResourcePolicy)
	var notJSON *acl.ErrNotJSON
	if errors.As(err, &notJSON) {
		// Not a JSON object at all: thrown, not listed.
		return nil, apierr.New(apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy)
	}
	out := struct {
		PolicyValidationPassed bool              `json:"PolicyValidationPassed"`
		ValidationErrors       []validationError `json:"ValidationErrors"`
	}{ValidationErrors: []validationError{}}
	for _, msg := range problems {
		out.ValidationErrors = append(out.ValidationErrors, validationError{checkSyntax, msg})
	}
	if len(problems) == 0 {
		for _, msg := range p.BroadAccess() {
			out.ValidationErrors = append(out.ValidationErrors, validationError{checkBroadAccess, msg})
		}
		for _, msg := range p.LocksOut(callerARN(r, req.identity), r.AccountID(), secretARN) {
			out.ValidationErrors = append(out.ValidationErrors, validationError{checkLockout, msg})
		}
	}
	out.PolicyValidationPassed = len(out.ValidationErrors) == 0
	return out, nil
}

// callerARN is the principal ARN of an identity of this region's account.
func callerARN(r Region, identity string) string {
	if identity == region.RootIdentity || identity == "" {
		return "arn:aws:iam::" + r.AccountID() + ":root"
	}
	return "arn:aws:iam::" + r.AccountID() + ":user/" + identity
}
