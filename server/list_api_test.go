package server_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/cofferhq/coffer/apierr"
)

// Conformance of ListSecrets' filters, sort orders and paging and of
// BatchGetSecretValue by Filters (shared/spec §4.7, §4.3) through the AWS
// SDK for Go v2 against a 3-node cluster, one cluster per test function.

func filter(key types.FilterNameStringType, values ...string) types.Filter {
	return types.Filter{Key: key, Values: values}
}

// listAll lists every page of a listing and returns the entries.
func listAll(t *testing.T, a *apiNodes, in *secretsmanager.ListSecretsInput) []types.SecretListEntry {
	t.Helper()
	var out []types.SecretListEntry
	p := secretsmanager.NewListSecretsPaginator(a.any(), in)
	for pages := 0; p.HasMorePages(); pages++ {
		if pages > 500 {
			t.Fatal("the listing does not end")
		}
		page, err := p.NextPage(ctxT(t))
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		out = append(out, page.SecretList...)
	}
	return out
}

func entryNames(es []types.SecretListEntry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, aws.ToString(e.Name))
	}
	return out
}

func TestAPI_ListSecretsFilters(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	mk := func(name, desc string, tags ...types.Tag) {
		t.Helper()
		in := &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("v"), Tags: tags}
		if desc != "" {
			in.Description = aws.String(desc)
		}
		if _, err := a.any().CreateSecret(ctx, in); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
	mk("lf/prod/db/password", "The main DB password", tag("env", "prod"), tag("team", "payments"))
	mk("lf/prod/api-key", "", tag("env", "production"))
	mk("lf/staging/db/password", "staging database", tag("env", "staging"))
	mk("lf/MyTestDatabaseSecret", "")
	mk("lf/Other", "contains MyTest words", tag("Environment", "QA"))
	mk("lf/scheduled", "gone soon", tag("env", "prod"))
	scheduleDeletion(t, a, "lf/scheduled")
	mk("outside", "The main DB password", tag("env", "prod"))

	scope := filter(types.FilterNameStringTypeName, "lf/")
	const (
		name    = types.FilterNameStringTypeName
		tagKey  = types.FilterNameStringTypeTagKey
		tagVal  = types.FilterNameStringTypeTagValue
		region  = types.FilterNameStringTypePrimaryRegion
		owner   = types.FilterNameStringTypeOwningService
		descKey = types.FilterNameStringTypeDescription
		all     = types.FilterNameStringTypeAll
	)
	every := []string{"lf/prod/db/password", "lf/prod/api-key", "lf/staging/db/password", "lf/MyTestDatabaseSecret", "lf/Other"}
	tests := []struct {
		name           string
		filters        []types.Filter
		includeDeleted bool
		want           []string
	}{
		{"name prefix", []types.Filter{filter(name, "lf/prod/")}, false, []string{"lf/prod/db/password", "lf/prod/api-key"}},
		{"name case-sensitive", []types.Filter{filter(name, "lf/Prod/")}, false, nil},
		{"name prefix only", []types.Filter{scope, filter(name, "db")}, false, nil},
		{"name values OR", []types.Filter{filter(name, "lf/staging", "lf/My")}, false, []string{"lf/staging/db/password", "lf/MyTestDatabaseSecret"}},
		{"name negated", []types.Filter{scope, filter(name, "!lf/prod")}, false, []string{"lf/staging/db/password", "lf/MyTestDatabaseSecret", "lf/Other"}},
		{"IncludePlannedDeletion", []types.Filter{filter(name, "lf/sch")}, true, []string{"lf/scheduled"}},
		{"scheduled hidden by default", []types.Filter{filter(name, "lf/sch")}, false, nil},
		{"tag-key", []types.Filter{scope, filter(tagKey, "env")}, false, []string{"lf/prod/db/password", "lf/prod/api-key", "lf/staging/db/password"}},
		{"tag-key case-sensitive", []types.Filter{scope, filter(tagKey, "Env")}, false, []string{"lf/Other"}},
		{"tag-key negated", []types.Filter{scope, filter(tagKey, "!env")}, false, []string{"lf/MyTestDatabaseSecret", "lf/Other"}},
		{"tag-value", []types.Filter{scope, filter(tagVal, "prod")}, false, []string{"lf/prod/db/password", "lf/prod/api-key"}},
		{"tag-value any tag", []types.Filter{scope, filter(tagVal, "pay")}, false, []string{"lf/prod/db/password"}},
		{"primary-region (nothing replicated)", []types.Filter{scope, filter(region, "us-east-1")}, false, nil},
		{"primary-region negated", []types.Filter{scope, filter(region, "!us-east-1")}, false, every},
		{"owning-service", []types.Filter{scope, filter(owner, "rds")}, false, nil},
		{"description word prefix", []types.Filter{scope, filter(descKey, "db")}, false, []string{"lf/prod/db/password"}},
		{"description insensitive, all words", []types.Filter{scope, filter(descKey, "MAIN pass")}, false, []string{"lf/prod/db/password"}},
		{"description one word missing", []types.Filter{scope, filter(descKey, "main staging")}, false, nil},
		{"description camel case", []types.Filter{scope, filter(descKey, "MyTe")}, false, []string{"lf/Other"}},
		{"description negated", []types.Filter{scope, filter(descKey, "!database")}, false, []string{"lf/prod/db/password", "lf/prod/api-key", "lf/MyTestDatabaseSecret", "lf/Other"}},
		{"all: name words", []types.Filter{scope, filter(all, "password")}, false, []string{"lf/prod/db/password", "lf/staging/db/password"}},
		{"all: camel case name", []types.Filter{scope, filter(all, "database")}, false, []string{"lf/staging/db/password", "lf/MyTestDatabaseSecret"}},
		{"all: tag key and value", []types.Filter{scope, filter(all, "qa")}, false, []string{"lf/Other"}},
		{"all: tag key word", []types.Filter{scope, filter(all, "environment")}, false, []string{"lf/Other"}},
		{"all: negated", []types.Filter{scope, filter(all, "!prod")}, false, []string{"lf/staging/db/password", "lf/MyTestDatabaseSecret", "lf/Other"}},
		{"filters AND", []types.Filter{scope, filter(tagKey, "env"), filter(name, "lf/prod")}, false, []string{"lf/prod/db/password", "lf/prod/api-key"}},
		{"same key AND", []types.Filter{filter(name, "lf/prod"), filter(name, "!lf/prod/api")}, false, []string{"lf/prod/db/password"}},
		{"AND to nothing", []types.Filter{filter(name, "lf/prod"), filter(name, "lf/staging")}, false, nil},
		{"10 filters of 10 values", slices.Repeat([]types.Filter{filter(name, "x", "y", "z", "q", "w", "e", "r", "t", "lf/Oth", "u")}, 10), false, []string{"lf/Other"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := entryNames(listAll(t, a, &secretsmanager.ListSecretsInput{Filters: tc.filters, IncludePlannedDeletion: aws.Bool(tc.includeDeleted)}))
			if !slices.Equal(got, append([]string{}, tc.want...)) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("entries carry the metadata", func(t *testing.T) {
		got := listAll(t, a, &secretsmanager.ListSecretsInput{Filters: []types.Filter{filter(name, "lf/prod/db")}})
		if len(got) != 1 {
			t.Fatalf("%d entries", len(got))
		}
		e := got[0]
		if aws.ToString(e.Description) != "The main DB password" || len(e.Tags) != 2 || len(e.SecretVersionsToStages) != 1 ||
			e.CreatedDate == nil || e.LastChangedDate == nil || !arnPattern("lf/prod/db/password").MatchString(aws.ToString(e.ARN)) {
			t.Fatalf("entry %+v", e)
		}
	})

	t.Run("BatchGetSecretValue by the same filters", func(t *testing.T) {
		for _, tc := range tests {
			if tc.includeDeleted || len(tc.filters) > 10 {
				continue
			}
			var got []string
			p := secretsmanager.NewBatchGetSecretValuePaginator(a.any(), &secretsmanager.BatchGetSecretValueInput{Filters: tc.filters, MaxResults: aws.Int32(2)})
			for p.HasMorePages() {
				out, err := p.NextPage(ctx)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if len(out.SecretValues) > 2 || len(out.Errors) != 0 {
					t.Fatalf("%s: page of %d values, errors %v", tc.name, len(out.SecretValues), out.Errors)
				}
				for _, v := range out.SecretValues {
					if aws.ToString(v.SecretString) != "v" || !slices.Equal(v.VersionStages, []string{"AWSCURRENT"}) {
						t.Fatalf("%s: value entry %+v", tc.name, v)
					}
					got = append(got, aws.ToString(v.Name))
				}
			}
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("%s: got %q, want %q", tc.name, got, tc.want)
			}
		}
	})
}

// sortKeyOf is an entry's position in a SortBy order, for checking.
func sortKeyOf(e types.SecretListEntry, by types.SortByType) string {
	ms := func(tm *time.Time) string { return fmt.Sprintf("%015d", aws.ToTime(tm).UnixMilli()) }
	switch by {
	case types.SortByTypeName:
		return aws.ToString(e.Name)
	case types.SortByTypeLastChangedDate:
		return ms(e.LastChangedDate) + aws.ToString(e.ARN)
	case types.SortByTypeLastAccessedDate:
		if e.LastAccessedDate == nil {
			return fmt.Sprintf("%015d", 0) + aws.ToString(e.ARN)
		}
		return ms(e.LastAccessedDate) + aws.ToString(e.ARN)
	}
	return ms(e.CreatedDate) + aws.ToString(e.ARN)
}

func TestAPI_ListSecretsSortAndPaging(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	// 12 secrets whose names, creation and change orders all differ.
	var names []string
	for i := range 12 {
		n := fmt.Sprintf("so-%02d", (i*5)%12)
		names = append(names, n)
		mkSecret(t, a, n, "")
	}
	for i := 11; i >= 0; i -= 2 {
		if _, err := a.any().UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String(names[i]), Description: aws.String("changed")}); err != nil {
			t.Fatal(err)
		}
	}
	scope := []types.Filter{filter(types.FilterNameStringTypeName, "so-")}
	orders := []types.SortByType{"", types.SortByTypeCreatedDate, types.SortByTypeName, types.SortByTypeLastChangedDate, types.SortByTypeLastAccessedDate}
	for _, by := range orders {
		for _, order := range []types.SortOrderType{"", types.SortOrderTypeAsc, types.SortOrderTypeDesc} {
			for _, size := range []int32{1, 5, 100} {
				t.Run(fmt.Sprintf("SortBy=%s SortOrder=%s MaxResults=%d", by, order, size), func(t *testing.T) {
					got := listAll(t, a, &secretsmanager.ListSecretsInput{Filters: scope, SortBy: by, SortOrder: order, MaxResults: aws.Int32(size)})
					if len(got) != 12 || !sameSet(entryNames(got), names) {
						t.Fatalf("listed %q", entryNames(got))
					}
					key := by
					if key == "" {
						key = types.SortByTypeCreatedDate
					}
					for i := 1; i < len(got); i++ {
						p, q := sortKeyOf(got[i-1], key), sortKeyOf(got[i], key)
						if order == types.SortOrderTypeDesc {
							p, q = q, p
						}
						if p >= q {
							t.Fatalf("%s before %s in %s %s order", aws.ToString(got[i-1].Name), aws.ToString(got[i].Name), key, order)
						}
					}
				})
			}
		}
	}
	if got := entryNames(listAll(t, a, &secretsmanager.ListSecretsInput{Filters: scope, SortBy: types.SortByTypeName})); !slices.IsSorted(got) {
		t.Fatalf("name order %q", got)
	}

	// Paging while other callers create and delete secrets: every secret
	// that exists throughout is listed exactly once, in every order.
	for _, by := range orders[1:] {
		for _, order := range []types.SortOrderType{types.SortOrderTypeAsc, types.SortOrderTypeDesc} {
			t.Run(fmt.Sprintf("churn SortBy=%s SortOrder=%s", by, order), func(t *testing.T) {
				prefix := fmt.Sprintf("pg-%s-%s-", by, order)
				var stable []string
				for i := range 12 {
					n := fmt.Sprintf("%s%02d", prefix, i)
					mkSecret(t, a, n, "")
					stable = append(stable, n)
				}
				var volatile []string
				for i := range 8 {
					n := fmt.Sprintf("%sv%02d", prefix, i)
					mkSecret(t, a, n, "")
					volatile = append(volatile, n)
				}
				stop := make(chan struct{})
				var wg sync.WaitGroup
				var ops atomic.Int64
				// The churn stops before the subtest ends, also when it
				// fails: an error it reports then must not panic.
				var stopOnce sync.Once
				halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
				defer halt()
				wg.Go(func() {
					cl := a.clients[0]
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						if i < len(volatile) {
							in := &secretsmanager.DeleteSecretInput{SecretId: aws.String(volatile[i]), ForceDeleteWithoutRecovery: aws.Bool(i%2 == 0)}
							if _, err := cl.DeleteSecret(ctx, in); err != nil {
								t.Error(err)
								return
							}
						}
						if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(fmt.Sprintf("%sn%03d", prefix, i))}); err != nil {
							t.Error(err)
							return
						}
						ops.Add(1)
					}
				})
				seen := map[string]int{}
				p := secretsmanager.NewListSecretsPaginator(a.clients[1], &secretsmanager.ListSecretsInput{
					Filters: []types.Filter{filter(types.FilterNameStringTypeName, prefix)}, SortBy: by, SortOrder: order, MaxResults: aws.Int32(2)})
				for pages := 0; p.HasMorePages(); pages++ {
					if pages > 200 {
						t.Fatal("the listing does not end")
					}
					page, err := p.NextPage(ctx)
					if err != nil {
						t.Fatalf("page %d: %v", pages+1, err)
					}
					for _, e := range page.SecretList {
						seen[aws.ToString(e.Name)]++
					}
					// Let the churn make progress between pages.
					deadline := time.Now().Add(5 * time.Second)
					for start := ops.Load(); ops.Load() == start && p.HasMorePages() && time.Now().Before(deadline); {
						time.Sleep(time.Millisecond)
					}
				}
				halt()
				for _, n := range stable {
					if seen[n] != 1 {
						t.Errorf("%s existed throughout and was listed %d times", n, seen[n])
					}
				}
				for n, c := range seen {
					if c != 1 {
						t.Errorf("%s listed %d times", n, c)
					}
				}
				if ops.Load() < 5 {
					t.Fatalf("only %d churn operations", ops.Load())
				}
			})
		}
	}

	t.Run("token misuse", func(t *testing.T) {
		first, err := a.any().ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: scope, MaxResults: aws.Int32(2), SortBy: types.SortByTypeName})
		if err != nil || first.NextToken == nil {
			t.Fatalf("first page: %v", err)
		}
		tok := first.NextToken
		if len(*tok) > 4096 {
			t.Fatalf("token of %d characters", len(*tok))
		}
		ok, err := a.any().ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: scope, MaxResults: aws.Int32(2), SortBy: types.SortByTypeName, NextToken: tok})
		if err != nil || len(ok.SecretList) != 2 || aws.ToString(ok.SecretList[0].Name) <= aws.ToString(first.SecretList[1].Name) {
			t.Fatalf("second page: %v", err)
		}
		// The page size may change between pages; nothing else may.
		if _, err := a.any().ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: scope, MaxResults: aws.Int32(7), SortBy: types.SortByTypeName, NextToken: tok}); err != nil {
			t.Fatalf("other MaxResults: %v", err)
		}
		for _, tc := range []struct {
			name string
			in   *secretsmanager.ListSecretsInput
		}{
			{"other filter values", &secretsmanager.ListSecretsInput{Filters: []types.Filter{filter(types.FilterNameStringTypeName, "so")}, SortBy: types.SortByTypeName, NextToken: tok}},
			{"other filter key", &secretsmanager.ListSecretsInput{Filters: []types.Filter{filter(types.FilterNameStringTypeAll, "so-")}, SortBy: types.SortByTypeName, NextToken: tok}},
			{"no filters", &secretsmanager.ListSecretsInput{SortBy: types.SortByTypeName, NextToken: tok}},
			{"one more filter", &secretsmanager.ListSecretsInput{Filters: append(slices.Clone(scope), filter(types.FilterNameStringTypeTagKey, "!x")), SortBy: types.SortByTypeName, NextToken: tok}},
			{"other SortBy", &secretsmanager.ListSecretsInput{Filters: scope, SortBy: types.SortByTypeCreatedDate, NextToken: tok}},
			{"default SortBy", &secretsmanager.ListSecretsInput{Filters: scope, NextToken: tok}},
			{"other SortOrder", &secretsmanager.ListSecretsInput{Filters: scope, SortBy: types.SortByTypeName, SortOrder: types.SortOrderTypeDesc, NextToken: tok}},
			{"IncludePlannedDeletion", &secretsmanager.ListSecretsInput{Filters: scope, SortBy: types.SortByTypeName, IncludePlannedDeletion: aws.Bool(true), NextToken: tok}},
			{"truncated", &secretsmanager.ListSecretsInput{Filters: scope, SortBy: types.SortByTypeName, NextToken: aws.String((*tok)[:len(*tok)-2])}},
			{"garbage", &secretsmanager.ListSecretsInput{NextToken: aws.String("not-a-token")}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := a.any().ListSecrets(ctx, tc.in)
				wantAPIError(t, tc.name, err, apierr.InvalidNextToken, "")
			})
		}
		t.Run("ListSecrets token in BatchGetSecretValue", func(t *testing.T) {
			first, err := a.any().ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: scope, MaxResults: aws.Int32(2)})
			if err != nil || first.NextToken == nil {
				t.Fatal(err)
			}
			_, err = a.any().BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{Filters: scope, MaxResults: aws.Int32(2), NextToken: first.NextToken})
			wantAPIError(t, "batch", err, apierr.InvalidNextToken, "")
		})
		t.Run("BatchGetSecretValue token in ListSecrets", func(t *testing.T) {
			first, err := a.any().BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{Filters: scope, MaxResults: aws.Int32(2)})
			if err != nil || first.NextToken == nil {
				t.Fatal(err)
			}
			_, err = a.any().ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: scope, MaxResults: aws.Int32(2), NextToken: first.NextToken})
			wantAPIError(t, "list", err, apierr.InvalidNextToken, "")
		})
	})
}

func TestAPI_BatchGetSecretValueFilters(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	for i := range 25 {
		mkSecret(t, a, fmt.Sprintf("bf-%02d", i), fmt.Sprintf("value-%02d", i))
	}
	mkSecret(t, a, "bf-novalue", "")
	mkSecret(t, a, "bf-deleted", "x")
	scheduleDeletion(t, a, "bf-deleted")
	scope := []types.Filter{filter(types.FilterNameStringTypeName, "bf-")}

	pageAll := func(t *testing.T, in *secretsmanager.BatchGetSecretValueInput) (values []string, errs []string, pages int) {
		t.Helper()
		p := secretsmanager.NewBatchGetSecretValuePaginator(a.any(), in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, v := range out.SecretValues {
				values = append(values, aws.ToString(v.Name)+"="+aws.ToString(v.SecretString))
			}
			for _, e := range out.Errors {
				errs = append(errs, aws.ToString(e.ErrorCode)+" "+aws.ToString(e.Message))
				if !strings.Contains(aws.ToString(e.SecretId), "bf-novalue") {
					t.Fatalf("error for %s", aws.ToString(e.SecretId))
				}
			}
		}
		return
	}
	t.Run("default page of 20, active only, creation order", func(t *testing.T) {
		out, err := a.any().BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{Filters: scope})
		if err != nil || len(out.SecretValues) != 20 || out.NextToken == nil {
			t.Fatalf("%v: %d values, NextToken %v", err, len(out.SecretValues), out.NextToken)
		}
		values, errs, pages := pageAll(t, &secretsmanager.BatchGetSecretValueInput{Filters: scope})
		if len(values) != 25 || pages != 2 || values[0] != "bf-00=value-00" || values[24] != "bf-24=value-24" {
			t.Fatalf("%d pages: %q", pages, values)
		}
		if len(errs) != 1 || !strings.HasPrefix(errs[0], "ResourceNotFoundException Secrets Manager can't find the specified secret value for staging label: AWSCURRENT") {
			t.Fatalf("errors %q", errs)
		}
	})
	t.Run("MaxResults 1 and 20", func(t *testing.T) {
		for _, n := range []int32{1, 7, 20} {
			values, _, pages := pageAll(t, &secretsmanager.BatchGetSecretValueInput{Filters: scope, MaxResults: aws.Int32(n)})
			if len(values) != 25 || pages != (26+int(n)-1)/int(n) {
				t.Fatalf("MaxResults %d: %d values in %d pages", n, len(values), pages)
			}
		}
	})
	t.Run("negation and no match", func(t *testing.T) {
		values, _, _ := pageAll(t, &secretsmanager.BatchGetSecretValueInput{Filters: append(slices.Clone(scope), filter(types.FilterNameStringTypeName, "!bf-0", "!bf-1"))})
		if len(values) != 25 {
			t.Fatalf("OR of negations: %q", values)
		}
		values, _, _ = pageAll(t, &secretsmanager.BatchGetSecretValueInput{Filters: append(slices.Clone(scope), filter(types.FilterNameStringTypeName, "!bf-0"), filter(types.FilterNameStringTypeName, "!bf-1"))})
		if len(values) != 5 || values[0] != "bf-20=value-20" {
			t.Fatalf("AND of negations: %q", values)
		}
		out, err := a.any().BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{Filters: []types.Filter{filter(types.FilterNameStringTypeName, "none-")}})
		if err != nil || len(out.SecretValues) != 0 || out.NextToken != nil {
			t.Fatalf("no match: %v %v", out, err)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			in   *secretsmanager.BatchGetSecretValueInput
			code string
			msg  string
		}{
			{"filter without key", &secretsmanager.BatchGetSecretValueInput{Filters: []types.Filter{{Values: []string{"x"}}}}, apierr.InvalidParameter, "Invalid filter key"},
			{"filter without values", &secretsmanager.BatchGetSecretValueInput{Filters: []types.Filter{{Key: types.FilterNameStringTypeTagKey}}}, apierr.InvalidParameter, "Invalid filter values for key: tag-key"},
			{"unknown key", &secretsmanager.BatchGetSecretValueInput{Filters: []types.Filter{filter("bogus", "x")}}, apierr.Validation,
				"1 validation error detected: Value 'bogus' at 'filters.1.member.key' failed to satisfy constraint: Member must satisfy enum value set: [all, name, tag-key, description, tag-value, primary-region, owning-service]"},
			{"MaxResults 21", &secretsmanager.BatchGetSecretValueInput{Filters: scope, MaxResults: aws.Int32(21)}, apierr.Validation, ""},
			{"forged token", &secretsmanager.BatchGetSecretValueInput{Filters: scope, NextToken: aws.String("Zm9v.YmFy")}, apierr.InvalidNextToken, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := a.any().BatchGetSecretValue(ctx, tc.in)
				wantAPIError(t, tc.name, err, tc.code, tc.msg)
			})
		}
	})
	t.Run("other filters with a token", func(t *testing.T) {
		out, err := a.any().BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{Filters: scope, MaxResults: aws.Int32(3)})
		if err != nil || out.NextToken == nil {
			t.Fatal(err)
		}
		_, err = a.any().BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{Filters: []types.Filter{filter(types.FilterNameStringTypeName, "bf-1")}, MaxResults: aws.Int32(3), NextToken: out.NextToken})
		wantAPIError(t, "other filters", err, apierr.InvalidNextToken, "")
	})
}
