package server

import (
	"slices"
	"testing"
)

// Every operation of the Secrets Manager API (shared/spec, the service
// model's 23) is registered, each once (register panics on a repeat).
func TestOperations_AllRegistered(t *testing.T) {
	want := []string{"BatchGetSecretValue", "CancelRotateSecret", "CreateSecret", "DeleteResourcePolicy", "DeleteSecret",
		"DescribeSecret", "GetRandomPassword", "GetResourcePolicy", "GetSecretValue", "ListSecretVersionIds", "ListSecrets",
		"PutResourcePolicy", "PutSecretValue", "RemoveRegionsFromReplication", "ReplicateSecretToRegions", "RestoreSecret",
		"RotateSecret", "StopReplicationToReplica", "TagResource", "UntagResource", "UpdateSecret", "UpdateSecretVersionStage",
		"ValidateResourcePolicy"}
	var got []string
	for name := range operations {
		got = append(got, name)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("registered operations\n%v\nwant\n%v", got, want)
	}
}
