package rotation_test

import "github.com/cofferhq/coffer/rotation"

// testEvent is the event the exec and webhook tests send.
var testEvent = rotation.Event{
	Step:               rotation.StepCreate,
	SecretID:           "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
	ClientRequestToken: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
}
