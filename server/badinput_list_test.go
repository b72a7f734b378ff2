package server_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/server/servertest"
)

// Bad ListSecrets and BatchGetSecretValue-by-Filters requests: filters,
// sort and tokens. Same table style as badinput_test.go.
func TestBadInputList_RefusedAndNothingChanges(t *testing.T) {
	c := servertest.New(t, 1)
	ctx := ctxT(t)
	ep := c.Nodes[0].Endpoint
	cl := c.Client(0)
	for _, n := range []string{"bl-1", "bl-2", "bl-3"} {
		if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(n), SecretString: aws.String("v")}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := cl.ListSecrets(ctx, &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(1)})
	if err != nil || page.NextToken == nil {
		t.Fatalf("first page: %v", err)
	}
	listToken := *page.NextToken

	str := func(n int) string { return strings.Repeat("a", n) }
	f := func(key string, values ...string) obj { return obj{"Key": key, "Values": values} }
	const enumMsg = "1 validation error detected: Value 'invalid' at 'filters.1.member.key' failed to satisfy constraint: Member must satisfy enum value set: [all, name, tag-key, description, tag-value, primary-region, owning-service]"
	cases := []struct {
		name   string
		req    rawRequest
		status int
		typ    string
		msg    string // a substring of Message
	}{
		// Decoding.
		{"Filters is an object", op("ListSecrets", obj{"Filters": f("name", "x")}), 400, apierr.Serialization, "Filters"},
		{"Filters is a string", op("ListSecrets", obj{"Filters": "name"}), 400, apierr.Serialization, "Filters"},
		{"filter Key is a number", op("ListSecrets", `{"Filters": [{"Key": 1, "Values": ["x"]}]}`), 400, apierr.Serialization, "Key"},
		{"filter Values is a string", op("ListSecrets", `{"Filters": [{"Key": "name", "Values": "x"}]}`), 400, apierr.Serialization, "Values"},
		{"filter value is a number", op("ListSecrets", `{"Filters": [{"Key": "name", "Values": [7]}]}`), 400, apierr.Serialization, "Values"},
		{"filter is a list", op("ListSecrets", `{"Filters": [["name", "x"]]}`), 400, apierr.Serialization, "Filters"},
		{"SortBy is a number", op("ListSecrets", obj{"SortBy": 1}), 400, apierr.Serialization, "SortBy"},
		{"SortOrder is a boolean", op("ListSecrets", obj{"SortOrder": true}), 400, apierr.Serialization, "SortOrder"},
		{"IncludePlannedDeletion is a string", op("ListSecrets", obj{"IncludePlannedDeletion": "true"}), 400, apierr.Serialization, "IncludePlannedDeletion"},
		{"MaxResults is fractional", op("ListSecrets", `{"MaxResults": 1.5}`), 400, apierr.Serialization, "MaxResults"},
		{"NextToken is a number", op("ListSecrets", obj{"NextToken": 5}), 400, apierr.Serialization, "NextToken"},

		// Model constraints.
		{"unknown filter key", op("ListSecrets", obj{"Filters": []obj{f("invalid", "x")}}), 400, apierr.Validation, enumMsg},
		{"filter key in the wrong case", op("ListSecrets", obj{"Filters": []obj{f("Name", "x")}}), 400, apierr.Validation, "Value 'Name' at 'filters.1.member.key'"},
		{"second filter's key", op("ListSecrets", obj{"Filters": []obj{f("name", "x"), f("tag", "x")}}), 400, apierr.Validation, "'filters.2.member.key'"},
		{"11 filters", op("ListSecrets", obj{"Filters": slices.Repeat([]obj{f("name", "x")}, 11)}), 400, apierr.Validation, "Value '11 items' at 'filters' failed to satisfy constraint: Member must have length less than or equal to 10"},
		{"11 values", op("ListSecrets", obj{"Filters": []obj{f("name", strings.Split("a,b,c,d,e,f,g,h,i,j,k", ",")...)}}), 400, apierr.Validation, "Value '11 items' at 'filters.1.member.values'"},
		{"no values", op("ListSecrets", obj{"Filters": []obj{{"Key": "name", "Values": []string{}}}}), 400, apierr.Validation, "Value '0 items' at 'filters.1.member.values'"},
		{"value of 513 characters", op("ListSecrets", obj{"Filters": []obj{f("name", str(513))}}), 400, apierr.Validation, "'filters.1.member.values.1.member' failed to satisfy constraint: Member must have length less than or equal to 512"},
		{"value with *", op("ListSecrets", obj{"Filters": []obj{f("name", "a*")}}), 400, apierr.Validation, "Member must satisfy regular expression pattern: ^\\!?[a-zA-Z0-9 :_@\\/\\+\\=\\.\\-\\!]*$"},
		{"value with #", op("ListSecrets", obj{"Filters": []obj{f("all", "ok", "a#b")}}), 400, apierr.Validation, "'filters.1.member.values.2.member'"},
		{"value with a non-ASCII letter", op("ListSecrets", obj{"Filters": []obj{f("description", "café")}}), 400, apierr.Validation, "regular expression pattern"},
		{"value with a newline", op("ListSecrets", obj{"Filters": []obj{f("description", "a\nb")}}), 400, apierr.Validation, "regular expression pattern"},
		{"SortOrder up", op("ListSecrets", obj{"SortOrder": "up"}), 400, apierr.Validation, "Value 'up' at 'sortOrder' failed to satisfy constraint: Member must satisfy enum value set: [asc, desc]"},
		{"SortOrder ASC", op("ListSecrets", obj{"SortOrder": "ASC"}), 400, apierr.Validation, "'sortOrder'"},
		{"SortBy size", op("ListSecrets", obj{"SortBy": "size"}), 400, apierr.Validation, "Value 'size' at 'sortBy' failed to satisfy constraint: Member must satisfy enum value set: [created-date, last-accessed-date, last-changed-date, name]"},
		{"empty NextToken", op("ListSecrets", obj{"NextToken": ""}), 400, apierr.Validation, "'nextToken' failed to satisfy constraint: Member must have length greater than or equal to 1"},
		{"NextToken of 4,097 characters", op("ListSecrets", obj{"NextToken": str(4097)}), 400, apierr.Validation, "Member must have length less than or equal to 4096"},
		{"three violations", op("ListSecrets", obj{"SortBy": "x", "SortOrder": "y", "MaxResults": 0}), 400, apierr.Validation, "3 validation errors detected"},

		// Stateless parameter rules.
		{"filter without Key", op("ListSecrets", obj{"Filters": []obj{{"Values": []string{"x"}}}}), 400, apierr.InvalidParameter, apierr.MsgInvalidFilterKey},
		{"filter with Key null", op("ListSecrets", `{"Filters": [{"Key": null, "Values": ["x"]}]}`), 400, apierr.InvalidParameter, apierr.MsgInvalidFilterKey},
		{"filter without Values", op("ListSecrets", obj{"Filters": []obj{{"Key": "tag-value"}}}), 400, apierr.InvalidParameter, "Invalid filter values for key: tag-value"},

		// Tokens.
		{"forged NextToken", op("ListSecrets", obj{"NextToken": "Zm9yZ2Vk.Zm9yZ2Vk"}), 400, apierr.InvalidNextToken, "NextToken"},
		{"token with another filter", op("ListSecrets", obj{"NextToken": listToken, "Filters": []obj{f("name", "bl")}}), 400, apierr.InvalidNextToken, "NextToken"},
		{"token with another sort", op("ListSecrets", obj{"NextToken": listToken, "SortBy": "name"}), 400, apierr.InvalidNextToken, "NextToken"},
		{"token with another order", op("ListSecrets", obj{"NextToken": listToken, "SortOrder": "desc"}), 400, apierr.InvalidNextToken, "NextToken"},
		{"token in BatchGetSecretValue", op("BatchGetSecretValue", obj{"NextToken": listToken, "Filters": []obj{}}), 400, apierr.InvalidNextToken, "NextToken"},

		// BatchGetSecretValue by Filters.
		{"batch unknown filter key", op("BatchGetSecretValue", obj{"Filters": []obj{f("invalid", "x")}}), 400, apierr.Validation, enumMsg},
		{"batch value with *", op("BatchGetSecretValue", obj{"Filters": []obj{f("name", "*")}}), 400, apierr.Validation, "regular expression pattern"},
		{"batch 11 values", op("BatchGetSecretValue", obj{"Filters": []obj{f("name", strings.Split("a,b,c,d,e,f,g,h,i,j,k", ",")...)}}), 400, apierr.Validation, "filters.1.member.values"},
		{"batch filter without Key", op("BatchGetSecretValue", obj{"Filters": []obj{{"Values": []string{"x"}}}}), 400, apierr.InvalidParameter, apierr.MsgInvalidFilterKey},
		{"batch filter without Values", op("BatchGetSecretValue", obj{"Filters": []obj{{"Key": "all"}}}), 400, apierr.InvalidParameter, "Invalid filter values for key: all"},
		{"batch MaxResults 0", op("BatchGetSecretValue", obj{"Filters": []obj{f("name", "bl")}, "MaxResults": 0}), 400, apierr.Validation, "Member must have value greater than or equal to 1"},
		{"batch Filters is an object", op("BatchGetSecretValue", obj{"Filters": f("name", "x")}), 400, apierr.Serialization, "Filters"},
		{"batch forged NextToken", op("BatchGetSecretValue", obj{"Filters": []obj{f("name", "bl")}, "NextToken": "Zm9yZ2Vk.Zm9yZ2Vk"}), 400, apierr.InvalidNextToken, "NextToken"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d0, i0 := stateDigest(t, c)
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
			if d1, i1 := stateDigest(t, c); d1 != d0 || i1 != i0 {
				t.Errorf("state changed: digest %s@%d -> %s@%d", d0, i0, d1, i1)
			}
		})
	}
}

// The limits are inclusive and unknown members are ignored: these
// listings succeed.
func TestBadInputList_AcceptedAtTheEdges(t *testing.T) {
	c := servertest.New(t, 1)
	ctx := ctxT(t)
	ep := c.Nodes[0].Endpoint
	if _, err := c.Client(0).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("ble-1"), SecretString: aws.String("v")}); err != nil {
		t.Fatal(err)
	}
	f := func(key string, values ...string) obj { return obj{"Key": key, "Values": values} }
	ten := strings.Split("a,b,c,d,e,f,g,h,i,ble", ",")
	cases := []struct {
		name string
		req  rawRequest
		want int // secrets listed
	}{
		{"10 filters of 10 values", op("ListSecrets", obj{"Filters": slices.Repeat([]obj{f("name", ten...)}, 10)}), 1},
		{"value of 512 characters", op("ListSecrets", obj{"Filters": []obj{f("name", strings.Repeat("b", 512))}}), 0},
		{"every allowed character", op("ListSecrets", obj{"Filters": []obj{f("all", "!aZ09 :_@/+=.-!")}}), 1},
		{"bare !", op("ListSecrets", obj{"Filters": []obj{f("name", "!")}}), 0},
		{"empty value", op("ListSecrets", obj{"Filters": []obj{f("name", "")}}), 1},
		{"empty Filters", op("ListSecrets", obj{"Filters": []obj{}}), 1},
		{"null Filters", op("ListSecrets", `{"Filters": null}`), 1},
		{"unknown members in a filter", op("ListSecrets", obj{"Filters": []obj{{"Key": "name", "Values": []string{"ble"}, "Extra": 1}}}), 1},
		{"every SortBy and SortOrder", op("ListSecrets", obj{"SortBy": "last-accessed-date", "SortOrder": "desc", "MaxResults": 100}), 1},
		{"batch 10 filters, MaxResults 20", op("BatchGetSecretValue", obj{"Filters": slices.Repeat([]obj{f("name", ten...)}, 10), "MaxResults": 20}), 1},
		{"batch empty Filters", op("BatchGetSecretValue", obj{"Filters": []obj{}, "MaxResults": 1}), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := doRaw(t, ep, tc.req)
			if a.status != http.StatusOK {
				t.Fatalf("got %d %s", a.status, a.body)
			}
			var out struct {
				SecretList   []json.RawMessage
				SecretValues []json.RawMessage
			}
			if err := json.Unmarshal(a.body, &out); err != nil {
				t.Fatal(err)
			}
			if n := len(out.SecretList) + len(out.SecretValues); n != tc.want {
				t.Fatalf("listed %d, want %d: %s", n, tc.want, a.body)
			}
		})
	}
}
