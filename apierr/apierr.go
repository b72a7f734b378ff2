// Package apierr is the AWS Secrets Manager error vocabulary: the error codes
// Coffer returns and the exact messages AWS uses. Every layer (fsm, acl,
// cluster, server) returns *apierr.Error for anything a client should see, so
// a code travels unchanged from Apply on the leader, across a forwarded RPC,
// to the wire. The mapping from code to HTTP status lives here too, in one
// table.
package apierr

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes, as sent in the "__type" member of an AWS JSON error body.
const (
	ResourceNotFound         = "ResourceNotFoundException"
	InvalidParameter         = "InvalidParameterException"
	InvalidRequest           = "InvalidRequestException"
	ResourceExists           = "ResourceExistsException"
	LimitExceeded            = "LimitExceededException"
	MalformedPolicyDocument  = "MalformedPolicyDocumentException"
	PublicPolicy             = "PublicPolicyException"
	PreconditionNotMet       = "PreconditionNotMetException"
	EncryptionFailure        = "EncryptionFailure"
	DecryptionFailure        = "DecryptionFailure"
	InvalidNextToken         = "InvalidNextTokenException"
	InternalServiceError     = "InternalServiceError"
	AccessDenied             = "AccessDeniedException"
	Validation               = "ValidationException"
	Throttling               = "ThrottlingException"
	Serialization            = "SerializationException"
	UnknownOperation         = "UnknownOperationException"
	IncompleteSignature      = "IncompleteSignatureException"
	InvalidSignature         = "InvalidSignatureException"
	UnrecognizedClient       = "UnrecognizedClientException"
	ExpiredToken             = "ExpiredTokenException"
	MissingAuthenticationTok = "MissingAuthenticationTokenException"
	InternalFailure          = "InternalFailure"
	ServiceUnavailable       = "ServiceUnavailable"
	RequestEntityTooLarge    = "RequestEntityTooLargeException"
)

// IAM's error codes, for the identity admin API (/v1/iam/, docs/iam.md).
// IAM's query protocol names them without the "Exception" suffix, so
// LimitExceeded and MalformedPolicyDocument are distinct from Secrets
// Manager's codes above.
const (
	NoSuchEntity               = "NoSuchEntity"
	EntityAlreadyExists        = "EntityAlreadyExists"
	DeleteConflict             = "DeleteConflict"
	IAMLimitExceeded           = "LimitExceeded"
	ValidationError            = "ValidationError"
	IAMMalformedPolicyDocument = "MalformedPolicyDocument"
)

// Messages AWS sends verbatim (see shared/spec §1.6).
const (
	MsgSecretNotFound       = "Secrets Manager can't find the specified secret."
	MsgMarkedForDeletion    = "You can't perform this operation on the secret because it was marked for deletion."
	MsgScheduledCreate      = "You can't create this secret because a secret with this name is already scheduled for deletion."
	MsgBothValues           = "You can't specify both a binary secret value and a string secret value in the same secret."
	MsgTokenMissing         = "You must provide a ClientRequestToken value. We recommend a UUID-type value."
	MsgNoValue              = "You must provide either SecretString or SecretBinary."
	MsgVersionStageMismatch = "You provided a VersionStage that is not associated to the provided VersionId."
	MsgInvalidName          = "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!"
	MsgAlreadyDeleted       = "You tried to perform the operation on a secret that's currently marked deleted."
	MsgRecoveryWindow       = "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."
	MsgWindowAndForce       = "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."
	MsgBadSignature         = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	MsgUnknownAccessKey     = "The security token included in the request is invalid."
	MsgMalformedPolicy      = "This policy has invalid syntax."
	// MsgPublicPolicy is the PublicPolicyException text of AWS's service model.
	MsgPublicPolicy = "The BlockPublicPolicy parameter is set to true, and the resource policy did not prevent broad access to the secret."
)

// Messages of rules whose AWS wording is not verified, and Coffer's own.
const (
	// Filters (ListSecrets, BatchGetSecretValue) [unverified wording].
	MsgInvalidFilterKey = "Invalid filter key"
	MsgFilterValues     = "Invalid filter values for key: "
	// BatchGetSecretValue's parameter rules [unverified wording].
	MsgBatchListOrFilters = "Either 'SecretIdList' or 'Filters' must be provided, but not both."
	MsgBatchMaxResults    = "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is provided."
	// GetRandomPassword's refusals.
	MsgPasswordTooShort  = "Password length is too short based on the required types."
	MsgPasswordNoClasses = "The request excludes every character: include at least one character type, and do not exclude all of its characters with ExcludeCharacters."
	// UpdateSecretVersionStage's refusals (shared/spec §4.9).
	MsgStageNoVersion       = "You must specify MoveToVersionId, RemoveFromVersionId or both."
	MsgStageCurrentNoTarget = "You can't remove the staging label AWSCURRENT from a version without moving it to another: specify MoveToVersionId."
	// RotateSecret's state rules (shared/spec §1.6, §4.12).
	MsgNoRotationFunction = "No Lambda rotation function ARN is associated with this secret."
	MsgRotationInProgress = "Previous rotation request is still in progress."
	// MsgCannotInvoke is AWS's answer to a rotation function it cannot
	// invoke; Coffer gives it for a rotator that is not registered.
	MsgCannotInvoke = "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com."
	// MsgCancelRotateNothing answers CancelRotateSecret on a secret that
	// never had rotation configured (Coffer's wording).
	MsgCancelRotateNothing = "CancelRotateSecret found no rotation configured on this secret, so there is nothing to cancel. Nothing was changed."
	// MsgRotateNoValue answers RotateSecret on a secret without a value
	// (Coffer's wording; a rotation starts from the current value).
	MsgRotateNoValue = "You can't rotate this secret because it has no value yet: put a value first (PutSecretValue), then rotate."
	// MsgInvalidReplicaRegion is AWS's answer to a replica in the
	// primary's own region (shared/spec §1.6).
	MsgInvalidReplicaRegion = "Invalid replica region."
	// MsgReplicaWrite is AWS's answer to a change of a replica secret.
	MsgReplicaWrite = "Operation not permitted on a replica secret. Call must be made in primary secret's region."
	// MsgDemotedWrite answers a change of a primary secret of a demoted
	// region (coffer region demote): Coffer's, AWS has no demotion.
	MsgDemotedWrite = "Operation not permitted: this secret's region was demoted and the secret is read-only until another region is promoted to be its primary (or this one is promoted again). Call must be made in the promoted region."
)

// Error is an AWS-typed error: a code from the list above and a message a
// person can act on. It is a value: it is encoded into Raft responses and
// forwarded RPC replies as-is.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns an error with the given code and message.
func New(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// Newf returns an error with the given code and a formatted message.
func Newf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// As returns the *Error inside err, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// Is reports whether err is an *Error with the given code.
func Is(err error, code string) bool {
	e, ok := As(err)
	return ok && e.Code == code
}

// Status is the HTTP status AWS uses for a code. Unknown codes are server
// faults.
func Status(code string) int {
	switch code {
	case MissingAuthenticationTok:
		return http.StatusForbidden
	case RequestEntityTooLarge:
		return http.StatusRequestEntityTooLarge
	case InternalServiceError, InternalFailure:
		return http.StatusInternalServerError
	case ServiceUnavailable:
		return http.StatusServiceUnavailable
	// IAM's statuses for its own codes.
	case NoSuchEntity:
		return http.StatusNotFound
	case EntityAlreadyExists, DeleteConflict, IAMLimitExceeded:
		return http.StatusConflict
	case ValidationError, IAMMalformedPolicyDocument:
		return http.StatusBadRequest
	case ResourceNotFound, InvalidParameter, InvalidRequest, ResourceExists, LimitExceeded,
		MalformedPolicyDocument, PublicPolicy, PreconditionNotMet, EncryptionFailure,
		DecryptionFailure, InvalidNextToken, AccessDenied, Validation, Throttling,
		Serialization, UnknownOperation, IncompleteSignature, InvalidSignature,
		UnrecognizedClient, ExpiredToken:
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}
