package server_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/cofferhq/coffer/apierr"
)

// Conformance of the replication operations and CreateSecret's
// AddReplicaRegions in a region alone (no WAN pool, so no other region is
// part of the deployment): every validation error, the state rules, and
// that a refusal changes nothing. The test region is us-east-1.
// Replication itself, between regions, is replication_test.go.

func replicas(regions ...string) []types.ReplicaRegionType {
	out := make([]types.ReplicaRegionType, 0, len(regions))
	for _, r := range regions {
		out = append(out, types.ReplicaRegionType{Region: aws.String(r)})
	}
	return out
}

// badRegions are Region values that break the model constraints, with the
// constraint named in the message.
var badRegions = []struct{ region, constraint string }{
	{"", "length greater than or equal to 1"},
	{strings.Repeat("a", 127) + "-1", "length less than or equal to 128"},
	{"US-EAST-1", "regular expression pattern"},
	{"useast1", "regular expression pattern"},
	{"us-east-", "regular expression pattern"},
	{"us_east_1", "regular expression pattern"},
}

func TestAPI_ReplicateSecretToRegions(t *testing.T) {
	c, a := newOpsEnv(t)
	ctx := ctxT(t)
	created := mkSecret(t, a, "repl-a", "v1")
	replicate := func(id string, regions []types.ReplicaRegionType) error {
		_, err := a.any().ReplicateSecretToRegions(ctx, &secretsmanager.ReplicateSecretToRegionsInput{
			SecretId: aws.String(id), AddReplicaRegions: regions})
		return err
	}

	t.Run("model constraints", func(t *testing.T) {
		for _, br := range badRegions {
			unchanged(t, c, "repl-a", func() {
				wantAPIErrorContains(t, "region "+br.region, replicate("repl-a", replicas("us-west-2", br.region)),
					apierr.Validation, "'addReplicaRegions.2.member.region'", br.constraint)
			})
		}
		err := replicate("repl-a", []types.ReplicaRegionType{{Region: aws.String("us-west-2"), KmsKeyId: aws.String(strings.Repeat("k", 2049))}})
		wantAPIErrorContains(t, "KmsKeyId of 2049", err, apierr.Validation, "'addReplicaRegions.1.member.kmsKeyId'")
		err = replicate("repl-a", []types.ReplicaRegionType{{KmsKeyId: aws.String("alias/x")}})
		wantAPIErrorContains(t, "no Region", err, apierr.Validation, "Value null at 'addReplicaRegions.1.member.region'")
		wantAPIErrorContains(t, "empty list", replicate("repl-a", []types.ReplicaRegionType{}), apierr.Validation, "'addReplicaRegions'", "greater than or equal to 1")
		wantAPIErrorContains(t, "SecretId of 2049", replicate(strings.Repeat("s", 2049), replicas("us-west-2")), apierr.Validation, "'secretId'")
	})

	t.Run("wire errors", func(t *testing.T) {
		ep := c.Nodes[1].Endpoint
		for _, tc := range []struct {
			name     string
			body     obj
			typ, msg string
		}{
			{"no AddReplicaRegions", obj{"SecretId": "repl-a"}, apierr.Validation, "Value null at 'addReplicaRegions'"},
			{"no SecretId", obj{"AddReplicaRegions": []obj{{"Region": "us-west-2"}}}, apierr.Validation, "Value null at 'secretId'"},
			{"AddReplicaRegions is a string", obj{"SecretId": "repl-a", "AddReplicaRegions": "us-west-2"}, apierr.Serialization, "AddReplicaRegions"},
			{"ForceOverwriteReplicaSecret is a string", obj{"SecretId": "repl-a", "AddReplicaRegions": []obj{{"Region": "us-west-2"}}, "ForceOverwriteReplicaSecret": "true"}, apierr.Serialization, "ForceOverwriteReplicaSecret"},
		} {
			unchanged(t, c, "repl-a", func() {
				ans := doRaw(t, ep, op("ReplicateSecretToRegions", tc.body))
				if ans.status != 400 || ans.typ != tc.typ || !strings.Contains(ans.message, tc.msg) {
					t.Fatalf("%s: %d %s %q; want 400 %s containing %q", tc.name, ans.status, ans.typ, ans.message, tc.typ, tc.msg)
				}
			})
		}
	})

	t.Run("invalid parameters", func(t *testing.T) {
		unchanged(t, c, "repl-a", func() {
			wantAPIError(t, "this region", replicate("repl-a", replicas("us-west-2", "us-east-1")), apierr.InvalidParameter, apierr.MsgInvalidReplicaRegion)
			wantAPIErrorContains(t, "region twice", replicate("repl-a", replicas("us-west-2", "eu-west-1", "us-west-2")),
				apierr.InvalidParameter, "us-west-2 appears more than once in AddReplicaRegions")
		})
		// Stateless rules come before the lookup.
		wantAPIError(t, "this region, missing secret", replicate("repl-missing", replicas("us-east-1")), apierr.InvalidParameter, apierr.MsgInvalidReplicaRegion)
	})

	t.Run("state rules", func(t *testing.T) {
		wantAPIError(t, "missing secret", replicate("repl-missing", replicas("us-west-2")), apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		mkSecret(t, a, "repl-deleted", "v1")
		scheduleDeletion(t, a, "repl-deleted")
		unchanged(t, c, "repl-deleted", func() {
			wantAPIError(t, "scheduled", replicate("repl-deleted", replicas("us-west-2")), apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
		})
	})

	t.Run("regions outside the deployment are refused", func(t *testing.T) {
		arn := aws.ToString(created.ARN)
		for _, tc := range []struct {
			name string
			in   *secretsmanager.ReplicateSecretToRegionsInput
		}{
			{"one region", &secretsmanager.ReplicateSecretToRegionsInput{SecretId: aws.String("repl-a"), AddReplicaRegions: replicas("us-west-2")}},
			{"several regions with keys, by ARN", &secretsmanager.ReplicateSecretToRegionsInput{SecretId: aws.String(arn),
				AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String("eu-west-1"), KmsKeyId: aws.String("alias/replica")},
					{Region: aws.String("us-gov-west-1")}, {Region: aws.String("ap-southeast-2"), KmsKeyId: aws.String("")}}}},
			{"force overwrite, by partial ARN", &secretsmanager.ReplicateSecretToRegionsInput{SecretId: aws.String(partialARN(arn)),
				AddReplicaRegions: replicas("us-west-2"), ForceOverwriteReplicaSecret: true}},
		} {
			unchanged(t, c, "repl-a", func() {
				_, err := a.any().ReplicateSecretToRegions(ctx, tc.in)
				wantAPIErrorContains(t, tc.name, err, apierr.InvalidParameter, "is not a region of this Coffer deployment")
			})
		}
	})
}

func TestAPI_RemoveRegionsFromReplication(t *testing.T) {
	c, a := newOpsEnv(t)
	ctx := ctxT(t)
	created := mkSecret(t, a, "rm-a", "v1")
	remove := func(id string, regions ...string) error {
		_, err := a.any().RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{
			SecretId: aws.String(id), RemoveReplicaRegions: regions})
		return err
	}

	t.Run("model constraints", func(t *testing.T) {
		for _, br := range badRegions {
			unchanged(t, c, "rm-a", func() {
				wantAPIErrorContains(t, "region "+br.region, remove("rm-a", "us-west-2", br.region),
					apierr.Validation, "'removeReplicaRegions.2.member'", br.constraint)
			})
		}
		_, err := a.any().RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{
			SecretId: aws.String("rm-a"), RemoveReplicaRegions: []string{}})
		wantAPIErrorContains(t, "empty list", err, apierr.Validation, "'removeReplicaRegions'", "greater than or equal to 1")
		wantAPIErrorContains(t, "SecretId of 2049", remove(strings.Repeat("s", 2049), "us-west-2"), apierr.Validation, "'secretId'")
		ans := doRaw(t, c.Nodes[0].Endpoint, op("RemoveRegionsFromReplication", obj{"SecretId": "rm-a"}))
		if ans.typ != apierr.Validation || !strings.Contains(ans.message, "Value null at 'removeReplicaRegions'") {
			t.Fatalf("no RemoveReplicaRegions: %s %q", ans.typ, ans.message)
		}
		ans = doRaw(t, c.Nodes[0].Endpoint, op("RemoveRegionsFromReplication", obj{"SecretId": "rm-a", "RemoveReplicaRegions": "us-west-2"}))
		if ans.typ != apierr.Serialization {
			t.Fatalf("RemoveReplicaRegions a string: %s %q", ans.typ, ans.message)
		}
	})

	t.Run("invalid parameters", func(t *testing.T) {
		unchanged(t, c, "rm-a", func() {
			wantAPIError(t, "this region", remove("rm-a", "us-east-1"), apierr.InvalidParameter, apierr.MsgInvalidReplicaRegion)
			wantAPIErrorContains(t, "region twice", remove("rm-a", "us-west-2", "us-west-2"), apierr.InvalidParameter, "more than once in RemoveReplicaRegions")
		})
	})

	t.Run("state rules", func(t *testing.T) {
		wantAPIError(t, "missing secret", remove("rm-missing", "us-west-2"), apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		// Allowed while scheduled for deletion; a region not replicated
		// is no change.
		mkSecret(t, a, "rm-deleted", "v1")
		scheduleDeletion(t, a, "rm-deleted")
		unchanged(t, c, "rm-deleted", func() {
			if err := remove("rm-deleted", "us-west-2"); err != nil {
				t.Fatalf("remove from a secret scheduled for deletion: %v", err)
			}
		})
	})

	t.Run("removing regions not replicated changes nothing", func(t *testing.T) {
		arn := aws.ToString(created.ARN)
		for _, id := range []string{"rm-a", arn, partialARN(arn)} {
			unchanged(t, c, "rm-a", func() {
				out, err := a.any().RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{
					SecretId: aws.String(id), RemoveReplicaRegions: []string{"us-west-2", "eu-central-1"}})
				if err != nil || aws.ToString(out.ARN) != arn || out.ReplicationStatus == nil || len(out.ReplicationStatus) != 0 {
					t.Fatalf("remove from %s: %+v, %v; want ARN %s and no replicas", id, out, err, arn)
				}
			})
		}
	})
}

func TestAPI_StopReplicationToReplica(t *testing.T) {
	c, a := newOpsEnv(t)
	ctx := ctxT(t)
	created := mkSecret(t, a, "stop-a", "v1")
	stop := func(id string) error {
		_, err := a.any().StopReplicationToReplica(ctx, &secretsmanager.StopReplicationToReplicaInput{SecretId: aws.String(id)})
		return err
	}

	t.Run("model constraints", func(t *testing.T) {
		ans := doRaw(t, c.Nodes[1].Endpoint, op("StopReplicationToReplica", obj{}))
		if ans.typ != apierr.Validation || !strings.Contains(ans.message, "Value null at 'secretId'") {
			t.Fatalf("no SecretId: %s %q", ans.typ, ans.message)
		}
		wantAPIErrorContains(t, "SecretId of 2049", stop(strings.Repeat("s", 2049)), apierr.Validation, "'secretId'")
	})

	t.Run("state rules", func(t *testing.T) {
		wantAPIError(t, "missing secret", stop("stop-missing"), apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		arn := aws.ToString(created.ARN)
		for _, id := range []string{"stop-a", arn, partialARN(arn)} {
			unchanged(t, c, "stop-a", func() {
				wantAPIErrorContains(t, "not a replica: "+id, stop(id), apierr.InvalidRequest, "is not a replica")
			})
		}
		// Allowed while scheduled for deletion.
		mkSecret(t, a, "stop-deleted", "v1")
		scheduleDeletion(t, a, "stop-deleted")
		unchanged(t, c, "stop-deleted", func() {
			wantAPIErrorContains(t, "scheduled", stop("stop-deleted"), apierr.InvalidRequest, "is not a replica")
		})
	})
}

func TestAPI_CreateSecretAddReplicaRegions(t *testing.T) {
	c, a := newOpsEnv(t)
	ctx := ctxT(t)
	mkSecret(t, a, "cr-existing", "v1")
	mkSecret(t, a, "cr-deleted", "v1")
	scheduleDeletion(t, a, "cr-deleted")
	create := func(name string, regions []types.ReplicaRegionType) error {
		_, err := a.any().CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("v"),
			ClientRequestToken: aws.String(versionToken(name, "v1")), AddReplicaRegions: regions})
		return err
	}
	// nothingCreated runs f and checks the region's state is unchanged and
	// name does not exist.
	nothingCreated := func(t *testing.T, name string, f func()) {
		t.Helper()
		unchanged(t, c, "cr-existing", f)
		_, err := a.any().DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
		wantAPIError(t, "describe "+name, err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	}

	t.Run("model constraints", func(t *testing.T) {
		for _, br := range badRegions {
			nothingCreated(t, "cr-new", func() {
				wantAPIErrorContains(t, "region "+br.region, create("cr-new", replicas("us-west-2", br.region)),
					apierr.Validation, "'addReplicaRegions.2.member.region'", br.constraint)
			})
		}
		nothingCreated(t, "cr-new", func() {
			// An empty list is not "absent": it breaks the 1-item minimum.
			wantAPIErrorContains(t, "empty list", create("cr-new", []types.ReplicaRegionType{}), apierr.Validation, "'addReplicaRegions'")
			// CreateSecret's own checks still apply.
			wantAPIError(t, "bad name", create("cr new", replicas("us-west-2")), apierr.Validation, apierr.MsgInvalidName)
		})
		ans := doRaw(t, c.Nodes[2].Endpoint, op("CreateSecret", obj{"Name": "cr-new", "AddReplicaRegions": obj{"Region": "us-west-2"}}))
		if ans.typ != apierr.Serialization {
			t.Fatalf("AddReplicaRegions an object: %s %q", ans.typ, ans.message)
		}
		ans = doRaw(t, c.Nodes[2].Endpoint, op("CreateSecret", obj{"Name": "cr-new", "SecretString": "v", "AddReplicaRegions": []obj{{"Region": "us-west-2"}}}))
		if ans.typ != apierr.InvalidRequest || ans.message != apierr.MsgTokenMissing {
			t.Fatalf("value without token: %s %q", ans.typ, ans.message)
		}
	})

	t.Run("invalid parameters", func(t *testing.T) {
		nothingCreated(t, "cr-new", func() {
			wantAPIError(t, "this region", create("cr-new", replicas("us-east-1")), apierr.InvalidParameter, apierr.MsgInvalidReplicaRegion)
			wantAPIErrorContains(t, "region twice", create("cr-new", replicas("eu-west-1", "eu-west-1")), apierr.InvalidParameter, "more than once")
		})
	})

	t.Run("regions outside the deployment are refused", func(t *testing.T) {
		const msg = "is not a region of this Coffer deployment"
		nothingCreated(t, "cr-new", func() {
			wantAPIErrorContains(t, "with a value", create("cr-new", replicas("us-west-2")), apierr.InvalidParameter, msg)
			_, err := a.any().CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("cr-new"),
				AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String("eu-west-1"), KmsKeyId: aws.String("alias/r")}}, ForceOverwriteReplicaSecret: true})
			wantAPIErrorContains(t, "without a value", err, apierr.InvalidParameter, msg)
		})
		unchanged(t, c, "cr-existing", func() {
			wantAPIErrorContains(t, "name taken", create("cr-existing", replicas("us-west-2")), apierr.InvalidParameter, msg)
		})
		// Without AddReplicaRegions CreateSecret works as always.
		if err := create("cr-new", nil); err != nil {
			t.Fatal(err)
		}
	})
}
