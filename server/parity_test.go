package server_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/cofferhq/coffer/apierr"
)

// Places where an AWS SDK client saw Coffer differ from AWS (issue 16),
// through the SDK against a 3-node cluster.
func TestAPI_AWSParity(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)

	t.Run("partial ARN of a name ending in -xxxxxx works in every operation", func(t *testing.T) {
		// "secret" is six letters: the partial ARN of my-secret looks like
		// a complete ARN of "my".
		arn := aws.ToString(mkSecret(t, a, "my-secret", "v").ARN)
		id := aws.String(partialARN(arn))
		if !strings.HasSuffix(*id, ":secret:my-secret") {
			t.Fatalf("partial ARN %s", *id)
		}
		calls := secretIDOps(t, a, id)
		calls["BatchGetSecretValue"] = func() error {
			out, err := a.any().BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{*id}})
			if err == nil && len(out.Errors) > 0 {
				return &smErr{aws.ToString(out.Errors[0].ErrorCode)}
			}
			return err
		}
		for _, op := range slices.Sorted(maps.Keys(calls)) {
			if err := calls[op](); err != nil {
				t.Fatalf("%s by partial ARN %s: %v", op, *id, err)
			}
		}
		// DeleteSecret and RestoreSecret last.
		if _, err := a.any().DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: id}); err != nil {
			t.Fatalf("DeleteSecret: %v", err)
		}
		if _, err := a.any().RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: id}); err != nil {
			t.Fatalf("RestoreSecret: %v", err)
		}
	})

	t.Run("VersionStages keep the caller's order", func(t *testing.T) {
		mkSecret(t, a, "stage-order", "v")
		tok := versionToken("stage-order", "v2")
		out, err := a.any().PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("stage-order"),
			ClientRequestToken: aws.String(tok), SecretString: aws.String("w"),
			VersionStages: []string{"zeta", "AWSCURRENT", "alpha", "zeta"}})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"zeta", "AWSCURRENT", "alpha"}
		if !slices.Equal(out.VersionStages, want) {
			t.Fatalf("PutSecretValue answered VersionStages %v, want %v", out.VersionStages, want)
		}
		g := valueOf(t, a, &secretsmanager.GetSecretValueInput{SecretId: aws.String("stage-order")})
		if !slices.Equal(g.VersionStages, want) {
			t.Fatalf("GetSecretValue VersionStages %v, want %v", g.VersionStages, want)
		}
		if d := describeOn(t, a, "stage-order"); !slices.Equal(d.VersionIdsToStages[tok], want) {
			t.Fatalf("DescribeSecret stages %v, want %v", d.VersionIdsToStages[tok], want)
		}
		// The same put again (idempotent) answers the same order.
		out, err = a.any().PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("stage-order"),
			ClientRequestToken: aws.String(tok), SecretString: aws.String("w"),
			VersionStages: []string{"zeta", "AWSCURRENT", "alpha"}})
		if err != nil || !slices.Equal(out.VersionStages, want) {
			t.Fatalf("retried put: %v %v", out, err)
		}
	})

	t.Run("validation order", func(t *testing.T) {
		// The secret is looked up before the policy is read.
		_, err := a.any().PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String("no-such-secret"),
			ResourcePolicy: aws.String("not a policy")})
		wantAPIError(t, "PutResourcePolicy on an unknown secret", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		_, err = a.any().ValidateResourcePolicy(ctx, &secretsmanager.ValidateResourcePolicyInput{SecretId: aws.String("no-such-secret"),
			ResourcePolicy: aws.String("not a policy")})
		wantAPIError(t, "ValidateResourcePolicy on an unknown secret", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		// An existing secret still gets the policy's error.
		mkSecret(t, a, "policy-order", "v")
		_, err = a.any().PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String("policy-order"),
			ResourcePolicy: aws.String("not a policy")})
		wantAPIError(t, "PutResourcePolicy with a malformed policy", err, apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy)
		// RecoveryWindowInDays' range comes before its conflict with a
		// forced delete.
		for _, days := range []int64{0, 6, 31} {
			_, err = a.any().DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("policy-order"),
				RecoveryWindowInDays: aws.Int64(days), ForceDeleteWithoutRecovery: aws.Bool(true)})
			wantAPIError(t, "DeleteSecret out of range and forced", err, apierr.InvalidParameter, apierr.MsgRecoveryWindow)
		}
		_, err = a.any().DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("policy-order"),
			RecoveryWindowInDays: aws.Int64(7), ForceDeleteWithoutRecovery: aws.Bool(true)})
		wantAPIError(t, "DeleteSecret in range and forced", err, apierr.InvalidParameter, apierr.MsgWindowAndForce)
	})

	t.Run("SecretId characters are validated in every operation", func(t *testing.T) {
		for _, bad := range []string{"has space", "star*", "bang!", "arn:aws:secretsmanager:us-east-1:000000000000:secret:a b"} {
			id := aws.String(bad)
			calls := secretIDOps(t, a, id)
			calls["DeleteSecret"] = func() error {
				_, err := a.any().DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: id})
				return err
			}
			calls["DeleteSecret forced"] = func() error {
				_, err := a.any().DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: id, ForceDeleteWithoutRecovery: aws.Bool(true)})
				return err
			}
			calls["RestoreSecret"] = func() error {
				_, err := a.any().RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: id})
				return err
			}
			calls["UpdateSecretVersionStage"] = func() error {
				_, err := a.any().UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: id, VersionStage: aws.String("l")})
				return err
			}
			for op, call := range calls {
				wantAPIError(t, op+" "+bad, call(), apierr.Validation, apierr.MsgInvalidName)
			}
		}
	})

	t.Run("force-deleting a secret that does not exist answers its ARN", func(t *testing.T) {
		before := time.Now().Add(-time.Second)
		out, err := a.any().DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("never-was"),
			ForceDeleteWithoutRecovery: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.Name) != "never-was" || !arnPattern("never-was").MatchString(aws.ToString(out.ARN)) ||
			out.DeletionDate == nil || out.DeletionDate.Before(before) {
			t.Fatalf("answer: ARN %q Name %q DeletionDate %v", aws.ToString(out.ARN), aws.ToString(out.Name), out.DeletionDate)
		}
		arn := "arn:aws:secretsmanager:us-east-1:000000000000:secret:never-was-AbC123"
		out, err = a.any().DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(arn),
			ForceDeleteWithoutRecovery: aws.Bool(true)})
		if err != nil || aws.ToString(out.ARN) != arn {
			t.Fatalf("by ARN: %v %v", out, err)
		}
	})
}

// secretIDOps calls, by SecretId id, the operations that change nothing
// irreversible, each with an otherwise valid request.
func secretIDOps(t *testing.T, a *apiNodes, id *string) map[string]func() error {
	ctx := ctxT(t)
	return map[string]func() error{
		"DescribeSecret": func() error {
			_, err := a.any().DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: id})
			return err
		},
		"GetSecretValue": func() error {
			_, err := a.any().GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: id})
			return err
		},
		"PutSecretValue": func() error {
			_, err := a.any().PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id,
				ClientRequestToken: aws.String(versionToken(*id, "put")), SecretString: aws.String("w")})
			return err
		},
		"UpdateSecret": func() error {
			_, err := a.any().UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: id, Description: aws.String("d")})
			return err
		},
		"TagResource": func() error {
			_, err := a.any().TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: id, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
			return err
		},
		"UntagResource": func() error {
			_, err := a.any().UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: id, TagKeys: []string{"k"}})
			return err
		},
		"ListSecretVersionIds": func() error {
			_, err := a.any().ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: id})
			return err
		},
		"GetResourcePolicy": func() error {
			_, err := a.any().GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: id})
			return err
		},
		"ValidateResourcePolicy": func() error {
			_, err := a.any().ValidateResourcePolicy(ctx, &secretsmanager.ValidateResourcePolicyInput{SecretId: id, ResourcePolicy: aws.String("{}")})
			return err
		},
	}
}

// smErr carries a per-secret error code of BatchGetSecretValue.
type smErr struct{ code string }

func (e *smErr) Error() string { return e.code }
