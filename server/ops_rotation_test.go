package server_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/server/servertest"
)

// Conformance of RotateSecret and CancelRotateSecret, which Coffer
// validates completely and then refuses as not available yet: every
// validation error, the state rules, and that a refusal changes nothing.

// wantAPIErrorContains checks err's code and that its message contains
// every one of parts.
func wantAPIErrorContains(t *testing.T, what string, err error, code string, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %s", what, code)
	}
	if apiCode(err) != code {
		t.Fatalf("%s: got %s %q, want %s", what, apiCode(err), apiMessage(err), code)
	}
	for _, p := range parts {
		if !strings.Contains(apiMessage(err), p) {
			t.Fatalf("%s: message %q does not contain %q", what, apiMessage(err), p)
		}
	}
}

// unchanged runs f and checks that neither the secret as DescribeSecret
// shows it nor the region's state digest changed.
func unchanged(t *testing.T, c *servertest.Cluster, id string, f func()) {
	t.Helper()
	describe := func() *secretsmanager.DescribeSecretOutput {
		t.Helper()
		// On node 0, which the digest is read from: the read index makes
		// its state current.
		out, err := c.Client(0).DescribeSecret(ctxT(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
		if err != nil {
			t.Fatalf("describe %s: %v", id, err)
		}
		out.ResultMetadata = middleware.Metadata{}
		return out
	}
	before := describe()
	digestBefore, _ := stateDigest(t, c)
	f()
	after := describe()
	digestAfter, _ := stateDigest(t, c)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("DescribeSecret %s changed:\nbefore %+v\nafter  %+v", id, before, after)
	}
	if digestBefore != digestAfter {
		t.Fatalf("the region's state changed")
	}
	if after.RotationEnabled != nil || after.RotationLambdaARN != nil || after.RotationRules != nil || after.NextRotationDate != nil {
		t.Fatalf("rotation fields appeared: %+v", after)
	}
	if len(after.ReplicationStatus) != 0 || after.PrimaryRegion != nil {
		t.Fatalf("replication fields appeared: %+v", after)
	}
}

const rotator = "arn:aws:lambda:us-east-1:000000000000:function:coffer-rotator"

func TestAPI_RotateSecret(t *testing.T) {
	c, a := newOpsEnv(t)
	ctx := ctxT(t)
	mkSecret(t, a, "rot-a", "v1")
	arn := aws.ToString(describeOn(t, a, "rot-a").ARN)
	tok := versionToken("rot-a", "rotation")
	rules := func(days int64, expr, dur string) *types.RotationRulesType {
		rr := &types.RotationRulesType{}
		if days != 0 {
			rr.AutomaticallyAfterDays = aws.Int64(days)
		}
		if expr != "" {
			rr.ScheduleExpression = aws.String(expr)
		}
		if dur != "" {
			rr.Duration = aws.String(dur)
		}
		return rr
	}
	rotate := func(id string, rr *types.RotationRulesType, mod ...func(*secretsmanager.RotateSecretInput)) error {
		in := &secretsmanager.RotateSecretInput{SecretId: aws.String(id), ClientRequestToken: aws.String(tok),
			RotationLambdaARN: aws.String(rotator), RotationRules: rr}
		for _, m := range mod {
			m(in)
		}
		_, err := a.any().RotateSecret(ctx, in)
		return err
	}

	t.Run("model constraints", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			rr   *types.RotationRulesType
			mod  func(*secretsmanager.RotateSecretInput)
			path string
		}{
			{"token of 31 characters", nil, func(in *secretsmanager.RotateSecretInput) {
				in.ClientRequestToken = aws.String(strings.Repeat("t", 31))
			}, "clientRequestToken"},
			{"token of 65 characters", nil, func(in *secretsmanager.RotateSecretInput) {
				in.ClientRequestToken = aws.String(strings.Repeat("t", 65))
			}, "clientRequestToken"},
			{"SecretId of 2049 characters", nil, func(in *secretsmanager.RotateSecretInput) { in.SecretId = aws.String(strings.Repeat("s", 2049)) }, "secretId"},
			{"RotationLambdaARN of 2049 characters", nil, func(in *secretsmanager.RotateSecretInput) {
				in.RotationLambdaARN = aws.String(strings.Repeat("l", 2049))
			}, "rotationLambdaARN"},
			{"AutomaticallyAfterDays 0", rules(0, "", ""), func(in *secretsmanager.RotateSecretInput) { in.RotationRules.AutomaticallyAfterDays = aws.Int64(0) }, "rotationRules.automaticallyAfterDays"},
			{"AutomaticallyAfterDays 1001", rules(1001, "", ""), nil, "rotationRules.automaticallyAfterDays"},
			{"Duration of 1 character", rules(30, "", "1"), nil, "rotationRules.duration"},
			{"Duration of 4 characters", rules(30, "", "100h"), nil, "rotationRules.duration"},
			{"Duration not <n>h", rules(30, "", "3d"), nil, "rotationRules.duration"},
			{"empty ScheduleExpression", rules(0, "", ""), func(in *secretsmanager.RotateSecretInput) { in.RotationRules.ScheduleExpression = aws.String("") }, "rotationRules.scheduleExpression"},
			{"ScheduleExpression of 257 characters", rules(0, "rate("+strings.Repeat("1", 250)+" days)", ""), nil, "rotationRules.scheduleExpression"},
			{"ScheduleExpression with ;", rules(0, "rate(10 days);", ""), nil, "rotationRules.scheduleExpression"},
			{"ExternalSecretRotationRoleArn of 19 characters", nil, func(in *secretsmanager.RotateSecretInput) {
				in.ExternalSecretRotationRoleArn = aws.String(strings.Repeat("r", 19))
			}, "externalSecretRotationRoleArn"},
			{"ExternalSecretRotationMetadata key empty", nil, func(in *secretsmanager.RotateSecretInput) {
				in.ExternalSecretRotationMetadata = []types.ExternalSecretRotationMetadataItem{{Key: aws.String(""), Value: aws.String("v")}}
			}, "externalSecretRotationMetadata.1.member.key"},
		} {
			mod := []func(*secretsmanager.RotateSecretInput){}
			if tc.mod != nil {
				mod = append(mod, tc.mod)
			}
			unchanged(t, c, "rot-a", func() {
				wantAPIErrorContains(t, tc.name, rotate("rot-a", tc.rr, mod...), apierr.Validation, "'"+tc.path+"'")
			})
		}
	})

	t.Run("wire errors", func(t *testing.T) {
		ep := c.Nodes[1].Endpoint
		for _, tc := range []struct {
			name     string
			body     obj
			typ, msg string
		}{
			{"no SecretId", obj{"ClientRequestToken": tok}, apierr.Validation, "Value null at 'secretId'"},
			{"RotationRules is a string", obj{"SecretId": "rot-a", "ClientRequestToken": tok, "RotationRules": "rate(10 days)"}, apierr.Serialization, "RotationRules"},
			{"RotateImmediately is a string", obj{"SecretId": "rot-a", "ClientRequestToken": tok, "RotateImmediately": "yes"}, apierr.Serialization, "RotateImmediately"},
			{"AutomaticallyAfterDays is a string", obj{"SecretId": "rot-a", "ClientRequestToken": tok, "RotationRules": obj{"AutomaticallyAfterDays": "30"}}, apierr.Serialization, "AutomaticallyAfterDays"},
			// Checked before the secret is looked up: it does not exist.
			{"no ClientRequestToken", obj{"SecretId": "rot-missing", "RotationLambdaARN": rotator}, apierr.InvalidRequest, apierr.MsgTokenMissing},
		} {
			unchanged(t, c, "rot-a", func() {
				ans := doRaw(t, ep, op("RotateSecret", tc.body))
				if ans.status != 400 || ans.typ != tc.typ || !strings.Contains(ans.message, tc.msg) {
					t.Fatalf("%s: %d %s %q; want 400 %s containing %q", tc.name, ans.status, ans.typ, ans.message, tc.typ, tc.msg)
				}
			})
		}
	})

	t.Run("invalid rules", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			rr    *types.RotationRulesType
			parts []string
		}{
			{"both AutomaticallyAfterDays and ScheduleExpression", rules(30, "rate(10 days)", ""), []string{"not both"}},
			{"no schedule", rules(0, "", "2h"), []string{"AutomaticallyAfterDays", "ScheduleExpression"}},
			{"neither rate nor cron", rules(0, "every day", ""), []string{"rate(<n> hours)", "cron("}},
			{"rate in weeks", rules(0, "rate(2 weeks)", ""), []string{"rate(<n> hours) or rate(<n> days)"}},
			{"rate of 3 hours", rules(0, "rate(3 hours)", ""), []string{"at least 4 hours apart"}},
			{"rate of 0 days", rules(0, "rate(0 days)", ""), []string{"between 1 and 1000"}},
			{"rate of 1001 days", rules(0, "rate(1001 days)", ""), []string{"between 1 and 1000"}},
			{"cron with 5 fields", rules(0, "cron(0 4 * * ?)", ""), []string{"6 fields", "has 5"}},
			{"cron minutes not 0", rules(0, "cron(30 4 * * ? *)", ""), []string{"Minutes must be 0"}},
			{"cron year not *", rules(0, "cron(0 4 * * ? 2030)", ""), []string{"Year must be *"}},
			{"cron hour 24", rules(0, "cron(0 24 * * ? *)", ""), []string{"Hours field", "24 is outside 0-23"}},
			{"cron day of month 32", rules(0, "cron(0 4 32 * ? *)", ""), []string{"Day-of-month field", "32 is outside 1-31"}},
			{"cron month name", rules(0, "cron(0 4 1 JANUARY ? *)", ""), []string{"Month field", "JAN"}},
			{"cron day of week name", rules(0, "cron(0 4 ? * FUN *)", ""), []string{"Day-of-week field", "SUN"}},
			{"cron #6", rules(0, "cron(0 4 ? * MON#6 *)", ""), []string{"1-5"}},
			{"cron # in day of month", rules(0, "cron(0 4 1#2 * ? *)", ""), []string{"# is only allowed in Day-of-week"}},
			{"cron ? in hours", rules(0, "cron(0 ? * * ? *)", ""), []string{"? is only allowed"}},
			{"cron step 0", rules(0, "cron(0 */0 * * ? *)", ""), []string{"increment"}},
			{"cron backwards range", rules(0, "cron(0 10-4 * * ? *)", ""), []string{"backwards"}},
			{"cron neither day field ?", rules(0, "cron(0 4 * * * *)", ""), []string{"exactly one of Day-of-month and Day-of-week must be ?"}},
			{"cron both day fields ?", rules(0, "cron(0 4 ? * ? *)", ""), []string{"exactly one of"}},
			{"cron every 2 hours", rules(0, "cron(0 */2 * * ? *)", ""), []string{"2 hours apart", "at least 4 hours"}},
			{"cron 1 and 3", rules(0, "cron(0 1,3 * * ? *)", ""), []string{"01:00 and 03:00"}},
			{"cron 22:00 and 00:00 next day", rules(0, "cron(0 0,22 * * ? *)", ""), []string{"next day", "2 hours apart"}},
			{"Duration 0h", rules(30, "", "0h"), []string{"between 1h and 24h"}},
			{"Duration 25h", rules(30, "", "25h"), []string{"between 1h and 24h"}},
			{"Duration into the next window (rate)", rules(0, "rate(12 hours)", "13h"), []string{"next one"}},
			{"Duration into the next window (cron)", rules(0, "cron(0 4/4 * * ? *)", "5h"), []string{"next one at 08:00"}},
			{"Duration into the next UTC day", rules(0, "cron(0 22 * * ? *)", "3h"), []string{"next UTC day"}},
		} {
			unchanged(t, c, "rot-a", func() {
				err := rotate("rot-a", tc.rr)
				wantAPIErrorContains(t, tc.name, err, apierr.InvalidParameter, tc.parts...)
			})
		}
		// Stateless rules come before the lookup.
		wantAPIErrorContains(t, "invalid rules on a missing secret", rotate("rot-missing", rules(0, "rate(1 hours)", "")), apierr.InvalidParameter)
	})

	// Valid requests naming a rotator that is not registered: AWS's
	// answer to a function it cannot invoke, after every other check
	// (the schedules are accepted), and nothing changes.
	// rotation_test.go rotates with registered ones.
	t.Run("valid requests with an unregistered rotator", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			id   string
			rr   *types.RotationRulesType
			mod  func(*secretsmanager.RotateSecretInput)
		}{
			{"rotator only", "rot-a", nil, nil},
			{"AutomaticallyAfterDays 30", "rot-a", rules(30, "", ""), nil},
			{"AutomaticallyAfterDays 1 and 1000", "rot-a", rules(1000, "", "24h"), nil},
			{"rate(10 days) with a 2h window", "rot-a", rules(0, "rate(10 days)", "2h"), nil},
			{"rate(1 day)", "rot-a", rules(0, "rate(1 day)", ""), nil},
			{"rate(4 hours) with a 4h window", "rot-a", rules(0, "rate(4 hours)", "4h"), nil},
			{"cron twice a day with a 3h window", "rot-a", rules(0, "cron(0 4/12 * * ? *)", "3h"), nil},
			{"cron weekdays", "rot-a", rules(0, "cron(0 8 ? * MON-FRI *)", ""), nil},
			{"cron last day of the month", "rot-a", rules(0, "cron(0 0 L * ? *)", ""), nil},
			{"cron last Friday", "rot-a", rules(0, "cron(0 0 ? * 6L *)", ""), nil},
			{"cron first Monday", "rot-a", rules(0, "cron(0 0 ? * MON#1 *)", ""), nil},
			{"cron lists, ranges, steps and names", "rot-a", rules(0, "cron(0 1,13 1,15 jan-JUN/2 ? *)", "11h"), nil},
			{"RotateImmediately false", "rot-a", rules(7, "", ""), func(in *secretsmanager.RotateSecretInput) { in.RotateImmediately = aws.Bool(false) }},
			{"external rotation metadata", "rot-a", nil, func(in *secretsmanager.RotateSecretInput) {
				in.ExternalSecretRotationRoleArn = aws.String("arn:aws:iam::000000000000:role/rotator")
				in.ExternalSecretRotationMetadata = []types.ExternalSecretRotationMetadataItem{{Key: aws.String("k"), Value: aws.String("v")}}
			}},
			{"by ARN", arn, rules(30, "", ""), nil},
			{"by partial ARN", partialARN(arn), rules(30, "", ""), nil},
		} {
			mod := []func(*secretsmanager.RotateSecretInput){}
			if tc.mod != nil {
				mod = append(mod, tc.mod)
			}
			unchanged(t, c, "rot-a", func() {
				wantAPIError(t, tc.name, rotate(tc.id, tc.rr, mod...), apierr.AccessDenied, apierr.MsgCannotInvoke)
			})
		}
		// The secret still reads as before.
		if got := aws.ToString(valueOf(t, a, &secretsmanager.GetSecretValueInput{SecretId: aws.String("rot-a")}).SecretString); got != "v1" {
			t.Fatalf("value %q", got)
		}
	})

	t.Run("state rules", func(t *testing.T) {
		wantAPIError(t, "missing secret", rotate("rot-missing", rules(30, "", "")), apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		unchanged(t, c, "rot-a", func() {
			err := rotate("rot-a", rules(30, "", ""), func(in *secretsmanager.RotateSecretInput) { in.RotationLambdaARN = nil })
			wantAPIError(t, "no rotator", err, apierr.InvalidRequest, apierr.MsgNoRotationFunction)
			err = rotate("rot-a", nil, func(in *secretsmanager.RotateSecretInput) { in.RotationLambdaARN = aws.String("") })
			wantAPIError(t, "empty rotator", err, apierr.InvalidRequest, apierr.MsgNoRotationFunction)
		})

		mkSecret(t, a, "rot-deleted", "v1")
		scheduleDeletion(t, a, "rot-deleted")
		unchanged(t, c, "rot-deleted", func() {
			wantAPIError(t, "scheduled for deletion", rotate("rot-deleted", rules(30, "", "")), apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
		})

		// AWSPENDING on another version: a (manual) rotation in progress.
		mkSecret(t, a, "rot-pending", "v1")
		pending := versionToken("rot-pending", "pending")
		if _, err := a.any().PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("rot-pending"),
			ClientRequestToken: aws.String(pending), SecretString: aws.String("v2"), VersionStages: []string{"AWSPENDING"}}); err != nil {
			t.Fatal(err)
		}
		// The rotator is checked before the rotation in progress (spec
		// §4.12); rotation_test.go checks the latter with a registered one.
		unchanged(t, c, "rot-pending", func() {
			wantAPIError(t, "rotation in progress", rotate("rot-pending", rules(30, "", "")), apierr.AccessDenied, apierr.MsgCannotInvoke)
			// The in-progress rotation's own token is not refused for it.
			err := rotate("rot-pending", nil, func(in *secretsmanager.RotateSecretInput) { in.ClientRequestToken = aws.String(pending) })
			wantAPIError(t, "same token as AWSPENDING", err, apierr.AccessDenied, apierr.MsgCannotInvoke)
		})
	})
}

func TestAPI_CancelRotateSecret(t *testing.T) {
	c, a := newOpsEnv(t)
	ctx := ctxT(t)
	created := mkSecret(t, a, "cancel-a", "v1")
	cancel := func(id string) error {
		_, err := a.any().CancelRotateSecret(ctx, &secretsmanager.CancelRotateSecretInput{SecretId: aws.String(id)})
		return err
	}

	t.Run("model constraints", func(t *testing.T) {
		ans := doRaw(t, c.Nodes[2].Endpoint, op("CancelRotateSecret", obj{}))
		if ans.typ != apierr.Validation || !strings.Contains(ans.message, "Value null at 'secretId'") {
			t.Fatalf("no SecretId: %s %q", ans.typ, ans.message)
		}
		wantAPIErrorContains(t, "SecretId of 2049 characters", cancel(strings.Repeat("s", 2049)), apierr.Validation, "'secretId'")
		ans = doRaw(t, c.Nodes[2].Endpoint, op("CancelRotateSecret", obj{"SecretId": 7}))
		if ans.typ != apierr.Serialization {
			t.Fatalf("SecretId a number: %s %q", ans.typ, ans.message)
		}
	})

	t.Run("missing secret", func(t *testing.T) {
		wantAPIError(t, "missing", cancel("cancel-missing"), apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	})

	t.Run("rotation never configured", func(t *testing.T) {
		for _, id := range []string{"cancel-a", aws.ToString(created.ARN), partialARN(aws.ToString(created.ARN))} {
			unchanged(t, c, "cancel-a", func() {
				wantAPIError(t, "cancel "+id, cancel(id), apierr.InvalidRequest, apierr.MsgCancelRotateNothing)
			})
		}
	})

	t.Run("scheduled for deletion", func(t *testing.T) {
		mkSecret(t, a, "cancel-deleted", "v1")
		scheduleDeletion(t, a, "cancel-deleted")
		unchanged(t, c, "cancel-deleted", func() {
			wantAPIError(t, "scheduled", cancel("cancel-deleted"), apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
		})
	})
}
