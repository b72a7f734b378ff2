package server_test

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// The word rule of the all and description filters of ListSecrets and
// BatchGetSecretValue through the AWS SDK for Go v2 (shared/spec §4.7, and
// AWS's user guide, "Find secrets in AWS Secrets Manager"): case is
// ignored, every character that is not a letter or digit separates words,
// and so do lower→Upper and letter↔digit transitions; all searches the
// name, description, tag keys and tag values together, so the words of a
// value may match in different attributes.
func TestAPI_ListSecretsAllFilterWords(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
	mk := func(name, desc string, tags ...types.Tag) {
		t.Helper()
		in := &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("v-" + name), Tags: tags}
		if desc != "" {
			in.Description = aws.String(desc)
		}
		if _, err := a.any().CreateSecret(ctx, in); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	tagResource := func(name string, tags ...types.Tag) {
		t.Helper()
		if _, err := a.any().TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String(name), Tags: tags}); err != nil {
			t.Fatalf("tag %s: %v", name, err)
		}
	}
	// Matches "center" only by a tag key (two kinds of separator in it).
	mk("laf/by-key", "", tag("cost-center_id", "x1"))
	// Matches "main" only by a tag value, added by TagResource.
	mk("laf/by-value", "")
	tagResource("laf/by-value", tag("owner", "app/db-main"))
	// Words spread over a tag key, a tag value and the name.
	mk("laf/spread", "", tag("Team", "Payments"))
	tagResource("laf/spread", tag("zone", "eu01"))
	// Camel case and digits in the name; AWS's own example in the
	// description.
	mk("laf/MyDb01Secret", "credsDatabase#892")
	// The description holds words the others keep in tags.
	mk("laf/described", "Owned by the ops-team; rotated@night", tag("env", "prod"))

	scope := filter(types.FilterNameStringTypeName, "laf/")
	all := func(values ...string) types.Filter { return filter(types.FilterNameStringTypeAll, values...) }
	desc := func(values ...string) types.Filter { return filter(types.FilterNameStringTypeDescription, values...) }
	every := []string{"laf/by-key", "laf/by-value", "laf/spread", "laf/MyDb01Secret", "laf/described"}
	except := func(name string) []string {
		return slices.DeleteFunc(slices.Clone(every), func(n string) bool { return n == name })
	}
	tests := []struct {
		name   string
		filter types.Filter
		want   []string
	}{
		{"tag key only: a word after mixed separators", all("center"), []string{"laf/by-key"}},
		{"tag key only: every word", all("COST id"), []string{"laf/by-key"}},
		{"tag key only: the value with separators", all("cost-center_id"), []string{"laf/by-key"}},
		{"tag value only (TagResource): a word after mixed separators", all("main"), []string{"laf/by-value"}},
		{"tag value only: every word", all("app db"), []string{"laf/by-value"}},
		{"tag value only: the value with separators", all("app/db-main"), []string{"laf/by-value"}},
		{"words across tag key and tag value", all("team payments"), []string{"laf/spread"}},
		{"words across name and two tags", all("spread pay zone eu"), []string{"laf/spread"}},
		{"letter to digit in a tag value", all("eu 01"), []string{"laf/spread"}},
		{"letter to digit in the value", all("eu01"), []string{"laf/spread"}},
		{"digits in the name and in a tag value", all("01"), []string{"laf/spread", "laf/MyDb01Secret"}},
		{"camel case and digits in the name", all("myDb01"), []string{"laf/MyDb01Secret"}},
		{"db: name word and tag value word", all("db"), []string{"laf/by-value", "laf/MyDb01Secret"}},
		{"AWS's example in the description", all("credsDatabase 892"), []string{"laf/MyDb01Secret"}},
		{"punctuation in the description", all("team night"), []string{"laf/described"}},
		{"a word nowhere", all("payments payroll"), nil},
		{"OR of values", all("center", "main"), []string{"laf/by-key", "laf/by-value"}},
		{"negated: no attribute has the word", all("!center"), except("laf/by-key")},
		{"negated: words across attributes", all("!team payments"), except("laf/spread")},
		{"description: its words only", desc("ops team"), []string{"laf/described"}},
		{"description: digits", desc("database 892"), []string{"laf/MyDb01Secret"}},
		{"description: not the tags", desc("center"), nil},
		{"description: not the name", desc("spread"), nil},
	}
	sorted := func(s []string) []string {
		s = slices.Clone(s)
		slices.Sort(s)
		return s
	}
	for _, tc := range tests {
		t.Run("ListSecrets "+tc.name, func(t *testing.T) {
			got := entryNames(listAll(t, a, &secretsmanager.ListSecretsInput{Filters: []types.Filter{scope, tc.filter}}))
			if !slices.Equal(sorted(got), sorted(tc.want)) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
		t.Run("BatchGetSecretValue "+tc.name, func(t *testing.T) {
			var got []string
			p := secretsmanager.NewBatchGetSecretValuePaginator(a.any(), &secretsmanager.BatchGetSecretValueInput{Filters: []types.Filter{scope, tc.filter}})
			for p.HasMorePages() {
				out, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(out.Errors) != 0 {
					t.Fatalf("errors %v", out.Errors)
				}
				for _, v := range out.SecretValues {
					if aws.ToString(v.SecretString) != "v-"+aws.ToString(v.Name) {
						t.Fatalf("value of %s: %q", aws.ToString(v.Name), aws.ToString(v.SecretString))
					}
					got = append(got, aws.ToString(v.Name))
				}
			}
			if !slices.Equal(sorted(got), sorted(tc.want)) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
