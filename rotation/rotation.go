// Package rotation is automatic secret rotation (docs/rotation.md): the
// schedules, the scheduler the region's leader runs, and the rotators that
// carry out the four steps of a rotation.
//
// A rotator is what a rotation Lambda function is in AWS: it is invoked
// once per step with the same event, and it reads and writes the secret
// through the Secrets Manager API (API), so every rule of the API applies
// to what it does. The scheduler guarantees, before it invokes a step,
// that rotation is enabled and the token's version carries AWSPENDING;
// a step may run more than once (a retry, a new leader) and must be
// idempotent.
package rotation

import (
	"context"
)

// The steps of a rotation, in order, as AWS names them.
const (
	StepCreate = "createSecret"
	StepSet    = "setSecret"
	StepTest   = "testSecret"
	StepFinish = "finishSecret"
)

// Steps lists the steps in the order a rotation runs them.
var Steps = []string{StepCreate, StepSet, StepTest, StepFinish}

// Event is what a rotator receives for one step: the document a rotation
// Lambda receives. SecretId is the secret's ARN; ClientRequestToken is the
// id of the version the rotation creates.
type Event struct {
	Step               string `json:"Step"`
	SecretID           string `json:"SecretId"`
	ClientRequestToken string `json:"ClientRequestToken"`
}

// API is the Secrets Manager API as a rotator calls it: operation is the
// operation's name (GetSecretValue, PutSecretValue, ...), in and out are
// its request and response in the JSON shapes of the AWS API. It fails
// with an *apierr.Error carrying AWS's error code, as a client would see.
// The server implements it in process, calling as the rotation service
// principal (secretsmanager.amazonaws.com), so a rotator needs no
// credentials of its own.
type API interface {
	Call(ctx context.Context, operation string, in, out any) error
}

// Notifier is implemented by an API that records the scheduler's service
// events (the server's in-process API: audit records, docs/audit.md).
// name is RotationStarted, RotationSucceeded, RotationFailed or
// RotationAbandoned; message says why for the last two. It must not
// block for long and reports no error: the event has happened.
type Notifier interface {
	RotationEvent(ctx context.Context, name, secretARN, message string)
}

// Rotator carries out one step of a rotation.
type Rotator interface {
	Step(ctx context.Context, api API, ev Event) error
}
