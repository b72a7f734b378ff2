package server_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server/servertest"
)

// mustAdmin is a root admin call that must succeed.
func mustAdmin(t *testing.T, endpoint, path string, body, out any) {
	t.Helper()
	if code, typ, msg := adminCall(t, endpoint, path, body, out, true); code != http.StatusOK {
		t.Fatalf("%s: %d %s %s", path, code, typ, msg)
	}
}

// apiError is the AWS error code and message of err ("" for nil).
func apiError(err error) (string, string) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode(), ae.ErrorMessage()
	}
	if err != nil {
		return "?", err.Error()
	}
	return "", ""
}

// Authorization end to end on a 3-node region: a user in a group, with
// identity policies (group and user, a tag condition with a policy
// variable, an explicit deny on a condition key), calls through the SDK on
// a follower; resource policies grant and deny; tag-based lock-out
// protection; ListSecrets and BatchGetSecretValue filter per secret; admin
// actions are governed by coffer: actions; detaching a policy takes
// effect.
func TestAuthz_PoliciesDecideEveryOperation(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := context.Background()
	leader := c.Nodes[c.Leader()].Endpoint
	root := c.Client(c.Leader())
	acct := "123456789012"
	var arns = map[string]string{}
	for _, s := range []struct{ name, team string }{{"app/db", "app"}, {"ops/key", "ops"}, {"other", "app"}} {
		out, err := root.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(s.name), SecretString: aws.String("v-" + s.name),
			Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String(s.team)}}})
		if err != nil {
			t.Fatal(err)
		}
		arns[s.name] = *out.ARN
		acct = strings.Split(*out.ARN, ":")[4]
	}
	userARN := "arn:aws:iam::" + acct + ":user/app"

	mustAdmin(t, leader, "/v1/iam/users", map[string]any{"name": "app"}, nil)
	mustAdmin(t, leader, "/v1/iam/groups", map[string]any{"name": "readers"}, nil)
	mustAdmin(t, leader, "/v1/iam/group/add-user", map[string]any{"group": "readers", "user": "app"}, nil)
	policy := func(name string, statements ...string) {
		mustAdmin(t, leader, "/v1/iam/policies", map[string]any{"name": name,
			"document": `{"Version":"2012-10-17","Statement":[` + strings.Join(statements, ",") + `]}`}, nil)
	}
	policy("app-read",
		`{"Effect":"Allow","Action":["secretsmanager:GetSecretValue","secretsmanager:DescribeSecret"],"Resource":"arn:aws:secretsmanager:*:*:secret:app/*"}`,
		`{"Effect":"Allow","Action":["secretsmanager:ListSecrets","secretsmanager:BatchGetSecretValue"],"Resource":"*"}`)
	policy("team-write",
		`{"Effect":"Allow","Action":["secretsmanager:PutSecretValue","secretsmanager:TagResource"],"Resource":"*","Condition":{"StringEquals":{"secretsmanager:ResourceTag/team":"${aws:username}"}}}`,
		`{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*","Condition":{"StringEquals":{"secretsmanager:VersionStage":"AWSPREVIOUS"}}}`,
		`{"Effect":"Deny","Action":"secretsmanager:ListSecrets","Resource":"arn:aws:secretsmanager:*:*:secret:other-*"}`)
	policy("list-keys", `{"Effect":"Allow","Action":"coffer:ListKeys","Resource":"*"}`)
	mustAdmin(t, leader, "/v1/iam/policy/attach", map[string]any{"policy": "app-read", "group": "readers"}, nil)
	mustAdmin(t, leader, "/v1/iam/policy/attach", map[string]any{"policy": "team-write", "user": "app"}, nil)
	var key struct {
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
	}
	mustAdmin(t, leader, "/v1/iam/keys", map[string]any{"user": "app"}, &key)
	creds := region.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}
	follower := c.Followers()[0]
	app := servertest.NewClient(c.Nodes[follower].Endpoint, c.Name, creds, 1)

	denied := func(what string, err error, want string) {
		t.Helper()
		code, msg := apiError(err)
		if code != "AccessDeniedException" || (want != "" && msg != want) {
			t.Fatalf("%s: got %s %q, want AccessDeniedException %q", what, code, msg, want)
		}
	}
	allowed := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	msg := func(action, resource, ending string) string {
		m := "User: " + userARN + " is not authorized to perform: secretsmanager:" + action
		if resource != "" {
			m += " on resource: " + resource
		}
		return m + " " + ending
	}
	noAllow := func(action string) string {
		return "because no identity-based policy allows the secretsmanager:" + action + " action"
	}

	// Group policy: app/* readable; others not; existence not leaked.
	got, err := app.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")})
	allowed("GetSecretValue app/db", err)
	if *got.SecretString != "v-app/db" {
		t.Fatalf("value %q", *got.SecretString)
	}
	_, err = app.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("ops/key")})
	denied("GetSecretValue ops/key", err, msg("GetSecretValue", "ops/key", noAllow("GetSecretValue")))
	_, err = app.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("ops/missing")})
	denied("GetSecretValue ops/missing", err, msg("GetSecretValue", "ops/missing", noAllow("GetSecretValue")))
	_, err = app.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/missing")})
	if code, _ := apiError(err); code != "ResourceNotFoundException" {
		t.Fatalf("app/missing: %v", err)
	}
	// Explicit deny on a request key.
	_, err = app.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionStage: aws.String("AWSPREVIOUS")})
	denied("GetSecretValue AWSPREVIOUS", err, msg("GetSecretValue", "app/db", "with an explicit deny in an identity-based policy"))

	// Tag condition with ${aws:username}.
	_, err = app.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("app/db"), SecretString: aws.String("v2")})
	allowed("PutSecretValue app/db", err)
	_, err = app.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(arns["ops/key"]), SecretString: aws.String("x")})
	denied("PutSecretValue ops/key", err, msg("PutSecretValue", arns["ops/key"], noAllow("PutSecretValue")))
	// Lock-out protection: retagging app/db to ops would take TagResource
	// away from the caller; refused, nothing changed.
	_, err = app.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("app/db"), Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("ops")}}})
	denied("TagResource lock-out", err, "")
	d, err := root.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("app/db")})
	allowed("DescribeSecret", err)
	if len(d.Tags) != 1 || *d.Tags[0].Value != "app" {
		t.Fatalf("tags changed by a refused TagResource: %+v", d.Tags)
	}
	_, err = app.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("app/db"), Tags: []types.Tag{{Key: aws.String("owner"), Value: aws.String("me")}}})
	allowed("TagResource that keeps access", err)

	// Actions without a resource.
	_, err = app.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/new"), SecretString: aws.String("x")})
	denied("CreateSecret", err, "")
	_, err = app.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{})
	denied("GetRandomPassword", err, msg("GetRandomPassword", "", noAllow("GetRandomPassword")))

	// ListSecrets: allowed on *, "other" hidden by the explicit deny.
	list, err := app.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
	allowed("ListSecrets", err)
	var names []string
	for _, e := range list.SecretList {
		names = append(names, *e.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"app/db", "ops/key"}) {
		t.Fatalf("ListSecrets as app: %v", names)
	}
	if all, _ := root.ListSecrets(ctx, &secretsmanager.ListSecretsInput{}); len(all.SecretList) != 3 {
		t.Fatalf("ListSecrets as root: %d secrets", len(all.SecretList))
	}

	// BatchGetSecretValue: per-secret decisions in Errors.
	batch, err := app.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"app/db", "ops/key"}})
	allowed("BatchGetSecretValue", err)
	if len(batch.SecretValues) != 1 || *batch.SecretValues[0].Name != "app/db" || len(batch.Errors) != 1 ||
		*batch.Errors[0].ErrorCode != "AccessDeniedException" || *batch.Errors[0].SecretId != "ops/key" {
		t.Fatalf("batch: %d values, errors %+v", len(batch.SecretValues), batch.Errors)
	}

	// A resource policy grants the user what no identity policy does.
	_, err = root.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String("ops/key"),
		ResourcePolicy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + userARN + `"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`)})
	allowed("PutResourcePolicy", err)
	c.Eventually(10*time.Second, "the resource policy to reach the follower", func() bool {
		_, err := app.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("ops/key")})
		return err == nil
	})
	// A resource policy's explicit deny binds even the root identity,
	// which can still manage the policy itself.
	_, err = root.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String("other"),
		ResourcePolicy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"secretsmanager:PutSecretValue","Resource":"*"}]}`)})
	allowed("PutResourcePolicy deny", err)
	_, err = root.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("other"), SecretString: aws.String("x")})
	denied("root PutSecretValue under a deny", err, "User: arn:aws:iam::"+acct+":root is not authorized to perform: secretsmanager:PutSecretValue on resource: other with an explicit deny in a resource-based policy")
	_, err = root.DeleteResourcePolicy(ctx, &secretsmanager.DeleteResourcePolicyInput{SecretId: aws.String("other")})
	allowed("root DeleteResourcePolicy", err)
	_, err = root.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("other"), SecretString: aws.String("x")})
	allowed("root PutSecretValue after the deny went", err)

	// A resource policy's deny overrides the group's allow.
	_, err = root.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String("app/db"),
		ResourcePolicy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"` + userARN + `"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`)})
	allowed("PutResourcePolicy deny for the user", err)
	c.Eventually(10*time.Second, "the resource policy's deny to reach the follower", func() bool {
		_, err := app.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")})
		code, m := apiError(err)
		return code == "AccessDeniedException" && m == msg("GetSecretValue", "app/db", "with an explicit deny in a resource-based policy")
	})
	_, err = root.DeleteResourcePolicy(ctx, &secretsmanager.DeleteResourcePolicyInput{SecretId: aws.String("app/db")})
	allowed("DeleteResourcePolicy app/db", err)

	// A read-only identity reads its tagged secrets and nothing else.
	mustAdmin(t, leader, "/v1/iam/users", map[string]any{"name": "reader"}, nil)
	policy("read-team-app", `{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*","Condition":{"StringEquals":{"secretsmanager:ResourceTag/team":"app"}}}`)
	mustAdmin(t, leader, "/v1/iam/policy/attach", map[string]any{"policy": "read-team-app", "user": "reader"}, nil)
	mustAdmin(t, leader, "/v1/iam/keys", map[string]any{"user": "reader"}, &key)
	reader := servertest.NewClient(c.Nodes[follower].Endpoint, c.Name, region.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}, 1)
	for _, id := range []string{"app/db", "other"} {
		_, err = reader.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		allowed("reader GetSecretValue "+id, err)
	}
	_, err = reader.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("ops/key")})
	denied("reader GetSecretValue ops/key", err, "")
	_, err = reader.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("app/db"), SecretString: aws.String("x")})
	denied("reader PutSecretValue", err, "")
	_, err = reader.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("app/db")})
	denied("reader DescribeSecret", err, "")
	_, err = reader.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
	denied("reader ListSecrets", err, "")

	// Admin actions: refused until a policy allows coffer:ListKeys.
	fol := c.Nodes[follower].Endpoint
	if code, typ, _ := adminCallAs(t, fol, servertest.Region, &creds, "/v1/keys", nil, nil); code == http.StatusOK || typ != "AccessDeniedException" {
		t.Fatalf("ListKeys as app before the policy: %d %s", code, typ)
	}
	if code, typ, _ := adminCallAs(t, fol, servertest.Region, &creds, "/v1/iam/users", map[string]any{"name": "mallory"}, nil); code == http.StatusOK || typ != "AccessDeniedException" {
		t.Fatalf("CreateUser as app: %d %s", code, typ)
	}
	mustAdmin(t, leader, "/v1/iam/policy/attach", map[string]any{"policy": "list-keys", "user": "app"}, nil)
	c.Eventually(10*time.Second, "coffer:ListKeys to be allowed", func() bool {
		code, _, _ := adminCallAs(t, fol, servertest.Region, &creds, "/v1/keys", nil, nil)
		return code == http.StatusOK
	})

	// Detaching the group's policy takes the read away.
	mustAdmin(t, leader, "/v1/iam/policy/detach", map[string]any{"policy": "app-read", "group": "readers"}, nil)
	c.Eventually(10*time.Second, "the detached policy to stop granting", func() bool {
		_, err := app.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")})
		code, _ := apiError(err)
		return code == "AccessDeniedException"
	})
}
