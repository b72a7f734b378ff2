package server_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/server/servertest"
)

// Bad requests to the metadata, label, tag, policy, password and batch
// operations: the AWS error type and status, a message naming what was
// wrong, X-Coffer-Outcome: not-applied, and no change to the state. Same
// table style as badinput_test.go.
func TestBadInputOps_RefusedAndNothingChanges(t *testing.T) {
	c := servertest.New(t, 1)
	ctx := ctxT(t)
	ep := c.Nodes[0].Endpoint
	cl := c.Client(0)
	if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bo-existing"), SecretString: aws.String("v1"),
		ClientRequestToken: aws.String(versionToken("bo-existing", "v1"))}); err != nil {
		t.Fatal(err)
	}
	v1 := versionToken("bo-existing", "v1")
	var fifty []obj
	for i := range 50 {
		fifty = append(fifty, obj{"Key": "k" + itoa2(i), "Value": ""})
	}
	if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bo-tagged")}); err != nil {
		t.Fatal(err)
	}
	if a := doRaw(t, ep, op("TagResource", obj{"SecretId": "bo-tagged", "Tags": fifty})); a.status != http.StatusOK {
		t.Fatalf("tagging bo-tagged: %d %s", a.status, a.body)
	}

	const tok = "00000000-0000-4000-8000-00000000b0b0"
	str := func(n int) string { return strings.Repeat("a", n) }
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "bo-existing"
		}
		return out
	}
	const okPolicy = `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"000000000000"},"Action":"secretsmanager:GetSecretValue"}}`
	const publicPolicy = `{"Statement":{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue"}}`
	filter := []obj{{"Key": "name", "Values": []string{"bo"}}}

	cases := []struct {
		name   string
		req    rawRequest
		status int
		typ    string
		msg    string // a substring of Message
	}{
		// UpdateSecret.
		{"UpdateSecret SecretId is a number", op("UpdateSecret", `{"SecretId": 5}`), 400, apierr.Serialization, "SecretId"},
		{"UpdateSecret Description is a list", op("UpdateSecret", obj{"SecretId": "bo-existing", "Description": []string{"x"}}), 400, apierr.Serialization, "Description"},
		{"UpdateSecret without SecretId", op("UpdateSecret", obj{"Description": "x"}), 400, apierr.Validation, "Value null at 'secretId' failed to satisfy constraint: Member must not be null"},
		{"UpdateSecret empty SecretId", op("UpdateSecret", obj{"SecretId": ""}), 400, apierr.Validation, "Member must have length greater than or equal to 1"},
		{"UpdateSecret SecretId of 2,049 characters", op("UpdateSecret", obj{"SecretId": str(2049)}), 400, apierr.Validation, "Member must have length less than or equal to 2048"},
		{"UpdateSecret ClientRequestToken of 31 characters", op("UpdateSecret", obj{"SecretId": "bo-existing", "ClientRequestToken": str(31), "SecretString": "v"}), 400, apierr.Validation, "clientRequestToken"},
		{"UpdateSecret Description of 2,049 characters", op("UpdateSecret", obj{"SecretId": "bo-existing", "Description": str(2049)}), 400, apierr.Validation, "'description' failed to satisfy constraint: Member must have length less than or equal to 2048"},
		{"UpdateSecret KmsKeyId of 2,049 characters", op("UpdateSecret", obj{"SecretId": "bo-existing", "KmsKeyId": str(2049)}), 400, apierr.Validation, "kmsKeyId"},
		{"UpdateSecret Type of 257 characters", op("UpdateSecret", obj{"SecretId": "bo-existing", "Type": str(257)}), 400, apierr.Validation, "'type'"},
		{"UpdateSecret SecretString of 65,537 bytes", op("UpdateSecret", obj{"SecretId": "bo-existing", "ClientRequestToken": tok, "SecretString": str(65537)}), 400, apierr.Validation, "secretString"},
		{"UpdateSecret empty SecretBinary", op("UpdateSecret", obj{"SecretId": "bo-existing", "ClientRequestToken": tok, "SecretBinary": ""}), 400, apierr.Validation, "secretBinary"},
		{"UpdateSecret both values", op("UpdateSecret", obj{"SecretId": "bo-existing", "ClientRequestToken": tok, "SecretString": "v", "SecretBinary": "AAAA"}), 400, apierr.InvalidParameter, apierr.MsgBothValues},
		{"UpdateSecret a value without ClientRequestToken", op("UpdateSecret", obj{"SecretId": "bo-existing", "SecretString": "v"}), 400, apierr.InvalidRequest, apierr.MsgTokenMissing},
		{"UpdateSecret a value without ClientRequestToken, unknown secret", op("UpdateSecret", obj{"SecretId": "bo-missing", "SecretString": "v"}), 400, apierr.InvalidRequest, apierr.MsgTokenMissing},
		{"UpdateSecret same token, other value", op("UpdateSecret", obj{"SecretId": "bo-existing", "ClientRequestToken": v1, "SecretString": "other", "Description": "lost"}), 400, apierr.ResourceExists, "already in use"},

		// UpdateSecretVersionStage.
		{"UpdateSecretVersionStage without VersionStage", op("UpdateSecretVersionStage", obj{"SecretId": "bo-existing", "MoveToVersionId": v1}), 400, apierr.Validation, "Value null at 'versionStage'"},
		{"UpdateSecretVersionStage empty VersionStage", op("UpdateSecretVersionStage", obj{"SecretId": "bo-existing", "VersionStage": "", "MoveToVersionId": v1}), 400, apierr.Validation, "versionStage"},
		{"UpdateSecretVersionStage VersionStage of 257 characters", op("UpdateSecretVersionStage", obj{"SecretId": "bo-existing", "VersionStage": str(257), "MoveToVersionId": v1}), 400, apierr.Validation, "less than or equal to 256"},
		{"UpdateSecretVersionStage VersionStage is a list", op("UpdateSecretVersionStage", obj{"SecretId": "bo-existing", "VersionStage": []string{"x"}, "MoveToVersionId": v1}), 400, apierr.Serialization, "VersionStage"},
		{"UpdateSecretVersionStage MoveToVersionId of 31 characters", op("UpdateSecretVersionStage", obj{"SecretId": "bo-existing", "VersionStage": "x", "MoveToVersionId": str(31)}), 400, apierr.Validation, "moveToVersionId"},
		{"UpdateSecretVersionStage RemoveFromVersionId of 65 characters", op("UpdateSecretVersionStage", obj{"SecretId": "bo-existing", "VersionStage": "x", "RemoveFromVersionId": str(65)}), 400, apierr.Validation, "removeFromVersionId"},
		{"UpdateSecretVersionStage neither version id", op("UpdateSecretVersionStage", obj{"SecretId": "bo-existing", "VersionStage": "x"}), 400, apierr.InvalidParameter, apierr.MsgStageNoVersion},
		{"UpdateSecretVersionStage unknown version", op("UpdateSecretVersionStage", obj{"SecretId": "bo-existing", "VersionStage": "x", "MoveToVersionId": tok}), 400, apierr.InvalidParameter, "Not a valid version: " + tok},
		{"UpdateSecretVersionStage AWSCURRENT removed", op("UpdateSecretVersionStage", obj{"SecretId": "bo-existing", "VersionStage": "AWSCURRENT", "RemoveFromVersionId": v1}), 400, apierr.InvalidParameter, apierr.MsgStageCurrentNoTarget},

		// ListSecretVersionIds.
		{"ListSecretVersionIds without SecretId", op("ListSecretVersionIds", `{}`), 400, apierr.Validation, "Value null at 'secretId'"},
		{"ListSecretVersionIds MaxResults 0", op("ListSecretVersionIds", obj{"SecretId": "bo-existing", "MaxResults": 0}), 400, apierr.Validation, "Member must have value greater than or equal to 1"},
		{"ListSecretVersionIds MaxResults 101", op("ListSecretVersionIds", obj{"SecretId": "bo-existing", "MaxResults": 101}), 400, apierr.Validation, "Member must have value less than or equal to 100"},
		{"ListSecretVersionIds MaxResults is a string", op("ListSecretVersionIds", obj{"SecretId": "bo-existing", "MaxResults": "10"}), 400, apierr.Serialization, "MaxResults"},
		{"ListSecretVersionIds IncludeDeprecated is a string", op("ListSecretVersionIds", obj{"SecretId": "bo-existing", "IncludeDeprecated": "yes"}), 400, apierr.Serialization, "IncludeDeprecated"},
		{"ListSecretVersionIds empty NextToken", op("ListSecretVersionIds", obj{"SecretId": "bo-existing", "NextToken": ""}), 400, apierr.Validation, "nextToken"},
		{"ListSecretVersionIds forged NextToken", op("ListSecretVersionIds", obj{"SecretId": "bo-existing", "NextToken": "Zm9yZ2Vk.Zm9yZ2Vk"}), 400, apierr.InvalidNextToken, "NextToken"},
		{"ListSecretVersionIds NextToken without a MAC", op("ListSecretVersionIds", obj{"SecretId": "bo-existing", "NextToken": "Zm9yZ2Vk"}), 400, apierr.InvalidNextToken, "NextToken"},

		// TagResource.
		{"TagResource without Tags", op("TagResource", obj{"SecretId": "bo-existing"}), 400, apierr.Validation, "Value null at 'tags' failed to satisfy constraint: Member must not be null"},
		{"TagResource Tags is an object", op("TagResource", obj{"SecretId": "bo-existing", "Tags": obj{"Key": "a"}}), 400, apierr.Serialization, "Tags"},
		{"TagResource tag without Key", op("TagResource", obj{"SecretId": "bo-existing", "Tags": []obj{{"Value": "v"}}}), 400, apierr.Validation, "Value null at 'tags.1.member.key'"},
		{"TagResource Key is a number", op("TagResource", obj{"SecretId": "bo-existing", "Tags": []obj{{"Key": 1, "Value": "v"}}}), 400, apierr.Serialization, "Key"},
		{"TagResource empty key", op("TagResource", obj{"SecretId": "bo-existing", "Tags": []obj{{"Key": "", "Value": "v"}}}), 400, apierr.Validation, "tags.1.member.key"},
		{"TagResource key of 129 characters", op("TagResource", obj{"SecretId": "bo-existing", "Tags": []obj{{"Key": str(129), "Value": "v"}}}), 400, apierr.Validation, "less than or equal to 128"},
		{"TagResource value of 257 characters", op("TagResource", obj{"SecretId": "bo-existing", "Tags": []obj{{"Key": "k", "Value": str(257)}}}), 400, apierr.Validation, "tags.1.member.value"},
		{"TagResource aws: key", op("TagResource", obj{"SecretId": "bo-existing", "Tags": []obj{{"Key": "aws:x", "Value": "v"}}}), 400, apierr.InvalidParameter, "reserved prefix aws:"},
		{"TagResource duplicate keys", op("TagResource", obj{"SecretId": "bo-existing", "Tags": []obj{{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}}}), 400, apierr.InvalidParameter, "more than once"},
		{"TagResource a 51st tag", op("TagResource", obj{"SecretId": "bo-tagged", "Tags": []obj{{"Key": "more", "Value": ""}}}), 400, apierr.InvalidParameter, "at most 50 tags"},
		{"TagResource without SecretId", op("TagResource", obj{"Tags": []obj{{"Key": "k", "Value": "v"}}}), 400, apierr.Validation, "Value null at 'secretId'"},

		// UntagResource.
		{"UntagResource without TagKeys", op("UntagResource", obj{"SecretId": "bo-existing"}), 400, apierr.Validation, "Value null at 'tagKeys' failed to satisfy constraint: Member must not be null"},
		{"UntagResource TagKeys is a string", op("UntagResource", obj{"SecretId": "bo-existing", "TagKeys": "k"}), 400, apierr.Serialization, "TagKeys"},
		{"UntagResource empty key", op("UntagResource", obj{"SecretId": "bo-tagged", "TagKeys": []string{"kaa", ""}}), 400, apierr.Validation, "tagKeys.2.member"},
		{"UntagResource key of 129 characters", op("UntagResource", obj{"SecretId": "bo-tagged", "TagKeys": []string{str(129)}}), 400, apierr.Validation, "less than or equal to 128"},

		// PutResourcePolicy.
		{"PutResourcePolicy without ResourcePolicy", op("PutResourcePolicy", obj{"SecretId": "bo-existing"}), 400, apierr.Validation, "Value null at 'resourcePolicy'"},
		{"PutResourcePolicy empty ResourcePolicy", op("PutResourcePolicy", obj{"SecretId": "bo-existing", "ResourcePolicy": ""}), 400, apierr.Validation, "resourcePolicy"},
		{"PutResourcePolicy of 20,481 characters", op("PutResourcePolicy", obj{"SecretId": "bo-existing", "ResourcePolicy": okPolicy + strings.Repeat(" ", 20481-len(okPolicy))}), 400, apierr.Validation, "less than or equal to 20480"},
		{"PutResourcePolicy ResourcePolicy is an object", op("PutResourcePolicy", `{"SecretId": "bo-existing", "ResourcePolicy": {"Statement": []}}`), 400, apierr.Serialization, "ResourcePolicy"},
		{"PutResourcePolicy BlockPublicPolicy is a string", op("PutResourcePolicy", obj{"SecretId": "bo-existing", "ResourcePolicy": okPolicy, "BlockPublicPolicy": "true"}), 400, apierr.Serialization, "BlockPublicPolicy"},
		{"PutResourcePolicy not JSON", op("PutResourcePolicy", obj{"SecretId": "bo-existing", "ResourcePolicy": "{"}), 400, apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy},
		{"PutResourcePolicy no Effect", op("PutResourcePolicy", obj{"SecretId": "bo-existing", "ResourcePolicy": `{"Statement":{"Principal":"*","Action":"*"}}`}), 400, apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy},
		// AWS looks the secret up before it reads the policy.
		{"PutResourcePolicy malformed, unknown secret", op("PutResourcePolicy", obj{"SecretId": "bo-missing", "ResourcePolicy": "[]"}), 400, apierr.ResourceNotFound, apierr.MsgSecretNotFound},
		{"PutResourcePolicy public and blocked", op("PutResourcePolicy", obj{"SecretId": "bo-existing", "ResourcePolicy": publicPolicy, "BlockPublicPolicy": true}), 400, apierr.PublicPolicy, apierr.MsgPublicPolicy},

		// GetResourcePolicy, DeleteResourcePolicy.
		{"GetResourcePolicy without SecretId", op("GetResourcePolicy", `{}`), 400, apierr.Validation, "Value null at 'secretId'"},
		{"GetResourcePolicy SecretId is a list", op("GetResourcePolicy", obj{"SecretId": []string{"bo-existing"}}), 400, apierr.Serialization, "SecretId"},
		{"DeleteResourcePolicy without SecretId", op("DeleteResourcePolicy", `{}`), 400, apierr.Validation, "Value null at 'secretId'"},
		{"DeleteResourcePolicy empty SecretId", op("DeleteResourcePolicy", obj{"SecretId": ""}), 400, apierr.Validation, "greater than or equal to 1"},

		// ValidateResourcePolicy.
		{"ValidateResourcePolicy without ResourcePolicy", op("ValidateResourcePolicy", `{}`), 400, apierr.Validation, "Value null at 'resourcePolicy'"},
		{"ValidateResourcePolicy empty SecretId", op("ValidateResourcePolicy", obj{"SecretId": "", "ResourcePolicy": okPolicy}), 400, apierr.Validation, "secretId"},
		{"ValidateResourcePolicy not JSON", op("ValidateResourcePolicy", obj{"ResourcePolicy": "nope"}), 400, apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy},
		{"ValidateResourcePolicy unknown secret", op("ValidateResourcePolicy", obj{"SecretId": "bo-missing", "ResourcePolicy": okPolicy}), 400, apierr.ResourceNotFound, apierr.MsgSecretNotFound},

		// GetRandomPassword.
		{"GetRandomPassword PasswordLength 0", op("GetRandomPassword", obj{"PasswordLength": 0}), 400, apierr.Validation, "Member must have value greater than or equal to 1"},
		{"GetRandomPassword PasswordLength -1", op("GetRandomPassword", obj{"PasswordLength": -1}), 400, apierr.Validation, "Value '-1' at 'passwordLength'"},
		{"GetRandomPassword PasswordLength 4097", op("GetRandomPassword", obj{"PasswordLength": 4097}), 400, apierr.Validation, "Member must have value less than or equal to 4096"},
		{"GetRandomPassword PasswordLength is a string", op("GetRandomPassword", obj{"PasswordLength": "32"}), 400, apierr.Serialization, "PasswordLength"},
		{"GetRandomPassword PasswordLength 3.5", op("GetRandomPassword", `{"PasswordLength": 3.5}`), 400, apierr.Serialization, "PasswordLength"},
		{"GetRandomPassword PasswordLength beyond int64", op("GetRandomPassword", `{"PasswordLength": 99999999999999999999}`), 400, apierr.Serialization, "PasswordLength"},
		{"GetRandomPassword ExcludeNumbers is a string", op("GetRandomPassword", obj{"ExcludeNumbers": "true"}), 400, apierr.Serialization, "ExcludeNumbers"},
		{"GetRandomPassword ExcludeCharacters of 4,097 characters", op("GetRandomPassword", obj{"ExcludeCharacters": str(4097)}), 400, apierr.Validation, "excludeCharacters"},
		{"GetRandomPassword too short for the types", op("GetRandomPassword", obj{"PasswordLength": 3}), 400, apierr.InvalidParameter, apierr.MsgPasswordTooShort},
		{"GetRandomPassword every type excluded", op("GetRandomPassword", obj{"ExcludeLowercase": true, "ExcludeUppercase": true, "ExcludeNumbers": true, "ExcludePunctuation": true}), 400, apierr.InvalidParameter, apierr.MsgPasswordNoClasses},

		// BatchGetSecretValue.
		{"BatchGetSecretValue empty SecretIdList", op("BatchGetSecretValue", obj{"SecretIdList": []string{}}), 400, apierr.Validation, "secretIdList"},
		{"BatchGetSecretValue 21 ids", op("BatchGetSecretValue", obj{"SecretIdList": ids(21)}), 400, apierr.Validation, "Value '21 items' at 'secretIdList'"},
		{"BatchGetSecretValue empty id", op("BatchGetSecretValue", obj{"SecretIdList": []string{"bo-existing", ""}}), 400, apierr.Validation, "secretIdList.2.member"},
		{"BatchGetSecretValue id is a number", op("BatchGetSecretValue", `{"SecretIdList": ["bo-existing", 7]}`), 400, apierr.Serialization, "SecretIdList"},
		{"BatchGetSecretValue SecretIdList is a string", op("BatchGetSecretValue", obj{"SecretIdList": "bo-existing"}), 400, apierr.Serialization, "SecretIdList"},
		{"BatchGetSecretValue both lists", op("BatchGetSecretValue", obj{"SecretIdList": ids(1), "Filters": filter}), 400, apierr.InvalidParameter, apierr.MsgBatchListOrFilters},
		{"BatchGetSecretValue neither list", op("BatchGetSecretValue", `{}`), 400, apierr.InvalidParameter, apierr.MsgBatchListOrFilters},
		{"BatchGetSecretValue MaxResults without Filters", op("BatchGetSecretValue", obj{"SecretIdList": ids(1), "MaxResults": 5}), 400, apierr.InvalidParameter, apierr.MsgBatchMaxResults},
		{"BatchGetSecretValue MaxResults 21", op("BatchGetSecretValue", obj{"Filters": filter, "MaxResults": 21}), 400, apierr.Validation, "Member must have value less than or equal to 20"},
		{"BatchGetSecretValue 11 filters", op("BatchGetSecretValue", obj{"Filters": slices.Repeat(filter, 11)}), 400, apierr.Validation, "filters"},
		{"BatchGetSecretValue filter with an unknown key", op("BatchGetSecretValue", obj{"Filters": []obj{{"Key": "nope", "Values": []string{"x"}}}}), 400, apierr.Validation, "filters.1.member.key"},
		{"BatchGetSecretValue NextToken with SecretIdList", op("BatchGetSecretValue", obj{"SecretIdList": ids(1), "NextToken": "x"}), 400, apierr.InvalidNextToken, "NextToken"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s0 := secretsState(t, c)
			a := doRaw(t, ep, tc.req)
			if a.status != tc.status || a.typ != tc.typ {
				t.Fatalf("got %d %q (%s), want %d %s", a.status, a.typ, a.body, tc.status, tc.typ)
			}
			if !strings.Contains(a.message, tc.msg) {
				t.Errorf("Message %q does not contain %q", a.message, tc.msg)
			}
			if a.header.Get("x-amzn-RequestId") == "" {
				t.Error("no x-amzn-RequestId header")
			}
			if got := a.header.Get(server.HeaderOutcome); got != "not-applied" {
				t.Errorf("%s = %q, want not-applied", server.HeaderOutcome, got)
			}
			// Refusals by Apply leave a log entry (the applied index moves),
			// so the state digest is not the measure here: every secret,
			// with all its fields, must be as it was.
			if s1 := secretsState(t, c); !reflect.DeepEqual(s0, s1) {
				t.Errorf("secrets changed:\n%#v\n%#v", s0, s1)
			}
		})
	}

	// The targets are as they were.
	d, err := cl.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("bo-existing")})
	if err != nil {
		t.Fatal(err)
	}
	if d.Description != nil || d.Tags != nil || len(d.VersionIdsToStages) != 1 || d.VersionIdsToStages[v1][0] != "AWSCURRENT" {
		t.Errorf("bo-existing after the refused requests: %v %v %v", d.Description, d.Tags, d.VersionIdsToStages)
	}
	p, err := cl.GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: aws.String("bo-existing")})
	if err != nil || p.ResourcePolicy != nil {
		t.Errorf("bo-existing policy after the refused requests: %v %v", p, err)
	}
	if d, err := cl.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("bo-tagged")}); err != nil || len(d.Tags) != 50 {
		t.Errorf("bo-tagged after the refused requests: %v", err)
	}
}

// secretsState is every secret of node 0's state, deeply.
func secretsState(t *testing.T, c *servertest.Cluster) []*fsm.Secret {
	t.Helper()
	txn, _ := c.Nodes[0].Region.FSM().ReadTxn()
	all, _, err := fsm.ListSecrets(txn, "", 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// Inclusive limits of the new operations, and unknown members ignored:
// these requests succeed.
func TestBadInputOps_AcceptedAtTheEdges(t *testing.T) {
	c := servertest.New(t, 1)
	ctx := ctxT(t)
	ep := c.Nodes[0].Endpoint
	cl := c.Client(0)
	if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("be"), SecretString: aws.String("v1"),
		ClientRequestToken: aws.String(versionToken("be", "v1"))}); err != nil {
		t.Fatal(err)
	}
	v1 := versionToken("be", "v1")
	const okPolicy = `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"000000000000"},"Action":"secretsmanager:GetSecretValue"}}`
	var fifty []obj
	for i := range 50 {
		fifty = append(fifty, obj{"Key": strings.Repeat("k", 126) + itoa2(i), "Value": strings.Repeat("v", 256)})
	}
	cases := []struct {
		name  string
		req   rawRequest
		check func(t *testing.T, body []byte)
	}{
		{"UpdateSecret Description of 2,048 characters", op("UpdateSecret", obj{"SecretId": "be", "Description": strings.Repeat("d", 2048), "Foo": 1}), nil},
		{"UpdateSecret token of 64 characters with a value", op("UpdateSecret", obj{"SecretId": "be", "ClientRequestToken": strings.Repeat("t", 64), "SecretString": "v2"}), func(t *testing.T, body []byte) {
			var out struct{ VersionId string }
			if json.Unmarshal(body, &out); out.VersionId != strings.Repeat("t", 64) {
				t.Fatalf("VersionId %q", out.VersionId)
			}
		}},
		{"UpdateSecretVersionStage label of 256 characters", op("UpdateSecretVersionStage", obj{"SecretId": "be", "VersionStage": strings.Repeat("l", 256), "MoveToVersionId": v1}), nil},
		{"TagResource 50 tags of the longest key and value", op("TagResource", obj{"SecretId": "be", "Tags": fifty}), func(t *testing.T, body []byte) {
			if string(body) != "{}" {
				t.Fatalf("answer %s, want {}", body)
			}
		}},
		{"TagResource empty list", op("TagResource", obj{"SecretId": "be", "Tags": []obj{}}), nil},
		{"UntagResource empty list", op("UntagResource", obj{"SecretId": "be", "TagKeys": []string{}}), nil},
		{"PutResourcePolicy of 20,480 characters", op("PutResourcePolicy", obj{"SecretId": "be", "ResourcePolicy": okPolicy + strings.Repeat(" ", 20480-len(okPolicy)), "BlockPublicPolicy": nil}), nil},
		{"ListSecretVersionIds MaxResults 100 and 1", op("ListSecretVersionIds", obj{"SecretId": "be", "MaxResults": 1, "IncludeDeprecated": nil}), nil},
		{"GetRandomPassword length 4,096, null members", op("GetRandomPassword", obj{"PasswordLength": 4096, "ExcludeNumbers": nil, "Bar": "x"}), func(t *testing.T, body []byte) {
			var out struct{ RandomPassword string }
			if json.Unmarshal(body, &out); len(out.RandomPassword) != 4096 {
				t.Fatalf("password of %d characters", len(out.RandomPassword))
			}
		}},
		{"GetRandomPassword length 1 without required types", op("GetRandomPassword", obj{"PasswordLength": 1, "RequireEachIncludedType": false}), nil},
		{"GetRandomPassword empty body", op("GetRandomPassword", ``), nil},
		{"BatchGetSecretValue 20 ids", op("BatchGetSecretValue", obj{"SecretIdList": strings.Split(strings.Repeat("be,", 19)+"be", ",")}), func(t *testing.T, body []byte) {
			var out struct {
				SecretValues []struct{ Name string }
				Errors       []any
			}
			if err := json.Unmarshal(body, &out); err != nil || len(out.SecretValues) != 20 || out.Errors != nil {
				t.Fatalf("answer %s", body)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := doRaw(t, ep, tc.req)
			if a.status != http.StatusOK {
				t.Fatalf("got %d %s", a.status, a.body)
			}
			if tc.check != nil {
				tc.check(t, a.body)
			}
		})
	}
}
