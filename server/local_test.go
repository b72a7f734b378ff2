package server_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/server/servertest"
)

// indexOf is the X-Coffer-Index of an SDK answer.
func indexOf(t *testing.T, md middleware.Metadata) uint64 {
	t.Helper()
	resp, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response)
	if !ok {
		t.Fatal("no raw response")
	}
	i, err := strconv.ParseUint(resp.Header.Get(server.HeaderIndex), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", server.HeaderIndex, err)
	}
	return i
}

// The handlers run on a region without Raft (region.Config.Local): the
// AWS SDK drives the lifecycle of a secret through the real HTTP server,
// SigV4 and handlers, and the answers carry the indexes of the local log.
func TestLocal_SecretLifecycleWithoutRaft(t *testing.T) {
	l := servertest.NewLocal(t)
	cl := l.Client()
	ctx := ctxT(t)

	created, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("local/db"),
		SecretString: aws.String("v1"), ClientRequestToken: aws.String(token1)})
	if err != nil {
		t.Fatal(err)
	}
	createdAt := indexOf(t, created.ResultMetadata)
	put, err := cl.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: created.ARN,
		SecretString: aws.String("v2"), ClientRequestToken: aws.String("00000000-0000-4000-8000-000000000002")})
	if err != nil {
		t.Fatal(err)
	}
	if at := indexOf(t, put.ResultMetadata); at != createdAt+1 {
		t.Fatalf("PutSecretValue at index %d, CreateSecret at %d: want the next index", at, createdAt)
	}
	got, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("local/db")})
	if err != nil || aws.ToString(got.SecretString) != "v2" || aws.ToString(got.ARN) != aws.ToString(created.ARN) {
		t.Fatalf("GetSecretValue: %+v %v", got, err)
	}
	prev, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("local/db"),
		VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(prev.SecretString) != "v1" {
		t.Fatalf("AWSPREVIOUS: %+v %v", prev, err)
	}
	desc, err := cl.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: created.ARN})
	if err != nil || len(desc.VersionIdsToStages) != 2 || desc.LastAccessedDate == nil {
		t.Fatalf("DescribeSecret: %+v %v (two versions and today's LastAccessedDate expected)", desc, err)
	}
	if _, err := cl.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: created.ARN,
		ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	_, err = cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("local/db")})
	if apiCode(err) != apierr.ResourceNotFound {
		t.Fatalf("after delete: %v, want %s", err, apierr.ResourceNotFound)
	}

	// /v1/health: the local region leads and serves.
	resp, err := http.Get(l.Endpoint + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var health struct {
		State   string `json:"state"`
		Serving bool   `json:"serving"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&health); err != nil || resp.StatusCode != http.StatusOK ||
		health.State != "leader" || !health.Serving {
		t.Fatalf("health: %d %+v %v", resp.StatusCode, health, err)
	}
}
