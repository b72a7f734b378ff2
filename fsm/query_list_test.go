package fsm_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/fsm"
)

// Words follows AWS's documented rule (user guide, "Find secrets in AWS
// Secrets Manager"): only letters and digits make words; every other
// character separates; so do lower→Upper and letter↔digit transitions.
func TestWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"test", []string{"test"}},
		{"MyTest", []string{"My", "Test"}},
		{"MyTestDatabaseSecret", []string{"My", "Test", "Database", "Secret"}},
		{"the main DB password", []string{"the", "main", "DB", "password"}},
		{"USA", []string{"USA"}},                       // no lower→Upper transition
		{"abcDEF", []string{"abc", "DEF"}},             // one transition
		{"ABCdef", []string{"ABCdef"}},                 // Upper→lower is not one
		{"x//y", []string{"x", "y"}},                   // empty words dropped
		{"  spaced   out ", []string{"spaced", "out"}}, // white space
		{"tab\tand\nnewline", []string{"tab", "and", "newline"}},
		// Every separator of the filter value pattern, alone.
		{"prod/db/password", []string{"prod", "db", "password"}},
		{"a_b", []string{"a", "b"}},
		{"a+b", []string{"a", "b"}},
		{"a=b", []string{"a", "b"}},
		{"a.b", []string{"a", "b"}},
		{"a@b", []string{"a", "b"}},
		{"a-b", []string{"a", "b"}},
		{"a:b", []string{"a", "b"}},
		{"a!b", []string{"a", "b"}},
		// Any other non-alphanumeric character too.
		{"a#b,c;d|e(f)g'h\"i\\j~k", []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}},
		// Mixed separators: every one splits (Coffer used to keep such a
		// piece as one word).
		{"a+b=c", []string{"a", "b", "c"}},
		{"prod/db-pass", []string{"prod", "db", "pass"}},
		{"cost-center_id", []string{"cost", "center", "id"}},
		{"app/db-main", []string{"app", "db", "main"}},
		{"user@example.com", []string{"user", "example", "com"}},
		{"prod-db-MyPassword", []string{"prod", "db", "My", "Password"}},
		{"--a__b..", []string{"a", "b"}},
		// Digits.
		{"db01", []string{"db", "01"}},
		{"01db", []string{"01", "db"}},
		{"v2beta3", []string{"v", "2", "beta", "3"}},
		{"892", []string{"892"}},
		{"credsDatabase#892", []string{"creds", "Database", "892"}}, // AWS's example
		{"Db2Prod", []string{"Db", "2", "Prod"}},
		// Non-ASCII letters are letters.
		{"émileZola", []string{"émile", "Zola"}},
		{"naïve-café", []string{"naïve", "café"}},
		{"Straße€ÄRGER", []string{"Straße", "ÄRGER"}},
		{"cafe\u0301Bar", []string{"cafe\u0301", "Bar"}}, // a combining mark stays with its letter
		{"\xffab", []string{"ab"}},                       // invalid UTF-8 separates
	}
	for _, tc := range tests {
		got := fsm.Words(tc.in)
		for _, w := range got {
			if w == "" {
				t.Errorf("Words(%q) has an empty word: %q", tc.in, got)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Words(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// listFixture is a region with secrets of known names, tags, descriptions
// and dates.
func listFixture(t *testing.T) *harness {
	h := newHarness(t)
	mk := func(name, suffix, desc string, date int64, tags ...fsm.Tag) {
		h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnOf(name, suffix), Name: name, Description: desc, Tags: tags, Date: date,
			Version: strVersionPtr("00000000-0000-4000-8000-"+fmt.Sprintf("%012d", date%1e12), "v")})
	}
	mk("prod/db/password", "aaaaaa", "The main DB password", t0+1, fsm.Tag{Key: "env", Value: "prod"}, fsm.Tag{Key: "team", Value: "payments"})
	mk("prod/api-key", "bbbbbb", "", t0+2, fsm.Tag{Key: "env", Value: "production"})
	mk("staging/db/password", "cccccc", "staging database", t0+3, fsm.Tag{Key: "env", Value: "staging"})
	mk("MyTestDatabaseSecret", "dddddd", "", t0+4)
	mk("Other", "eeeeee", "contains MyTest words", t0+5, fsm.Tag{Key: "Environment", Value: "QA"})
	mk("scheduled", "ffffff", "gone soon", t0+6, fsm.Tag{Key: "env", Value: "prod"})
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf("scheduled", "ffffff"), DeletionDate: t0 + 30*day, Date: t0 + 7})
	return h
}

func names(page fsm.ListPage) []string {
	var out []string
	for _, s := range page.Secrets {
		out = append(out, s.Name)
	}
	return out
}

func TestListSecretsPage_Filters(t *testing.T) {
	h := listFixture(t)
	f := func(key string, values ...string) fsm.ListFilter { return fsm.ListFilter{Key: key, Values: values} }
	tests := []struct {
		name           string
		filters        []fsm.ListFilter
		includeDeleted bool
		want           []string // in creation order
	}{
		{"no filter", nil, false, []string{"prod/db/password", "prod/api-key", "staging/db/password", "MyTestDatabaseSecret", "Other"}},
		{"no filter, with deleted", nil, true, []string{"prod/db/password", "prod/api-key", "staging/db/password", "MyTestDatabaseSecret", "Other", "scheduled"}},
		{"name prefix", []fsm.ListFilter{f("name", "prod/")}, false, []string{"prod/db/password", "prod/api-key"}},
		{"name is case-sensitive", []fsm.ListFilter{f("name", "Prod/")}, false, nil},
		{"name is a prefix, not a substring", []fsm.ListFilter{f("name", "db")}, false, nil},
		{"name OR", []fsm.ListFilter{f("name", "staging", "My")}, false, []string{"staging/db/password", "MyTestDatabaseSecret"}},
		{"name negated", []fsm.ListFilter{f("name", "!prod")}, false, []string{"staging/db/password", "MyTestDatabaseSecret", "Other"}},
		{"negated OR plain", []fsm.ListFilter{f("name", "!prod", "prod/api")}, false, []string{"prod/api-key", "staging/db/password", "MyTestDatabaseSecret", "Other"}},
		{"name on scheduled with deleted", []fsm.ListFilter{f("name", "sch")}, true, []string{"scheduled"}},
		{"tag-key prefix", []fsm.ListFilter{f("tag-key", "env")}, false, []string{"prod/db/password", "prod/api-key", "staging/db/password"}},
		{"tag-key is case-sensitive", []fsm.ListFilter{f("tag-key", "Env")}, false, []string{"Other"}},
		{"tag-key negated: no key matches", []fsm.ListFilter{f("tag-key", "!env")}, false, []string{"MyTestDatabaseSecret", "Other"}},
		{"tag-value prefix", []fsm.ListFilter{f("tag-value", "prod")}, false, []string{"prod/db/password", "prod/api-key"}},
		{"tag-value exact word", []fsm.ListFilter{f("tag-value", "production")}, false, []string{"prod/api-key"}},
		{"tag-value any tag", []fsm.ListFilter{f("tag-value", "pay")}, false, []string{"prod/db/password"}},
		{"primary-region: nothing replicated", []fsm.ListFilter{f("primary-region", "us-")}, false, nil},
		{"primary-region negated", []fsm.ListFilter{f("primary-region", "!us-")}, false, []string{"prod/db/password", "prod/api-key", "staging/db/password", "MyTestDatabaseSecret", "Other"}},
		{"owning-service: none", []fsm.ListFilter{f("owning-service", "rds")}, false, nil},
		{"description word prefix, any case", []fsm.ListFilter{f("description", "db")}, false, []string{"prod/db/password"}},
		{"description every word", []fsm.ListFilter{f("description", "main pass")}, false, []string{"prod/db/password"}},
		{"description every word, one missing", []fsm.ListFilter{f("description", "main staging")}, false, nil},
		{"description not the name", []fsm.ListFilter{f("description", "prod")}, false, nil},
		{"description camel case value", []fsm.ListFilter{f("description", "MyTe")}, false, []string{"Other"}},
		{"description negated", []fsm.ListFilter{f("description", "!database")}, false, []string{"prod/db/password", "prod/api-key", "MyTestDatabaseSecret", "Other"}},
		{"all: name words", []fsm.ListFilter{f("all", "password")}, false, []string{"prod/db/password", "staging/db/password"}},
		{"all: camel case in name", []fsm.ListFilter{f("all", "database")}, false, []string{"staging/db/password", "MyTestDatabaseSecret"}},
		{"all: case-insensitive", []fsm.ListFilter{f("all", "DATABASE")}, false, []string{"staging/db/password", "MyTestDatabaseSecret"}},
		{"all: a value word is a prefix of a word", []fsm.ListFilter{f("all", "mytest")}, false, nil},
		{"all: camel value", []fsm.ListFilter{f("all", "MyTest")}, false, []string{"MyTestDatabaseSecret", "Other"}},
		{"all: tag key and value", []fsm.ListFilter{f("all", "qa")}, false, []string{"Other"}},
		{"all: tag key", []fsm.ListFilter{f("all", "environment")}, false, []string{"Other"}},
		// AWS searches the name, description, tag keys and tag values
		// together: "prod" (tag value of env) and "payments" (tag value of
		// team) need not be in one attribute. Coffer used to require that.
		{"all: words across attributes match (AWS pools them)", []fsm.ListFilter{f("all", "prod payments")}, false, []string{"prod/db/password"}},
		{"all: words across name and tag", []fsm.ListFilter{f("all", "api production")}, false, []string{"prod/api-key"}},
		{"all: a word in no attribute", []fsm.ListFilter{f("all", "prod payroll")}, false, nil},
		{"all: value with separators", []fsm.ListFilter{f("all", "prod/db")}, false, []string{"prod/db/password"}},
		{"all: negated", []fsm.ListFilter{f("all", "!prod")}, false, []string{"staging/db/password", "MyTestDatabaseSecret", "Other"}},
		{"AND across filters", []fsm.ListFilter{f("tag-key", "env"), f("name", "prod")}, false, []string{"prod/db/password", "prod/api-key"}},
		{"AND with the same key", []fsm.ListFilter{f("name", "prod"), f("name", "!prod/api")}, false, []string{"prod/db/password"}},
		{"AND nothing", []fsm.ListFilter{f("name", "prod"), f("name", "staging")}, false, nil},
		{"empty prefix matches all", []fsm.ListFilter{f("name", "")}, false, []string{"prod/db/password", "prod/api-key", "staging/db/password", "MyTestDatabaseSecret", "Other"}},
		{"bare ! matches none", []fsm.ListFilter{f("name", "!")}, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := fsm.ListSecretsPage(h.txn(), fsm.ListQuery{Filters: tc.filters, IncludeDeleted: tc.includeDeleted, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if got := names(page); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if page.Next != "" {
				t.Fatalf("Next %q on a complete listing", page.Next)
			}
		})
	}
}

// The word rule of the all and description filters on attributes built to
// tell it apart from the old one (split only at one kind of separator,
// never at digits, all words within one attribute): AWS splits at every
// non-alphanumeric character, at lower→Upper and at letter↔digit
// transitions, and pools the attributes of the secret.
func TestListSecretsPage_WordFilters(t *testing.T) {
	h := newHarness(t)
	date := t0
	mk := func(name, desc string, tags ...fsm.Tag) {
		date++
		h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnOf(name, "abcdef"), Name: name, Description: desc, Tags: tags, Date: date})
	}
	tag := func(k, v string) fsm.Tag { return fsm.Tag{Key: k, Value: v} }
	mk("w/slash/alpha", "")
	mk("w_under_bravo", "")
	mk("w+plus+charlie", "")
	mk("w=equals=delta", "")
	mk("w.dot.echo", "")
	mk("w@at@foxtrot", "")
	mk("w-dash-golf", "")
	mk("w-mixed/hotel_india+juliet=kilo.lima@mike", "")
	mk("w-digits", "", tag("version", "db01"))
	mk("w-camel", "", tag("OwnerTeam", "PlatformOps"))
	mk("w-tagkey-only", "", tag("cost-center_id", "x"))
	mk("w-tagvalue-only", "", tag("x", "app/db-main"))
	mk("w-desc", "Primary key: rotated@night; v2")
	mk("w-upper", "", tag("tier", "USA"))
	// A tag added after creation is searched like the others.
	date++
	h.ok(fsm.CmdTagResource, &fsm.TagResource{ARN: arnOf("w-camel", "abcdef"), Tags: []fsm.Tag{tag("added", "LaterTag")}, Date: date})

	f := func(key string, values ...string) fsm.ListFilter { return fsm.ListFilter{Key: key, Values: values} }
	scope := f("name", "w")
	tests := []struct {
		name    string
		filters []fsm.ListFilter
		want    []string
	}{
		{"separator /", []fsm.ListFilter{scope, f("all", "alpha")}, []string{"w/slash/alpha"}},
		{"separator _", []fsm.ListFilter{scope, f("all", "bravo")}, []string{"w_under_bravo"}},
		{"separator +", []fsm.ListFilter{scope, f("all", "charlie")}, []string{"w+plus+charlie"}},
		{"separator =", []fsm.ListFilter{scope, f("all", "delta")}, []string{"w=equals=delta"}},
		{"separator .", []fsm.ListFilter{scope, f("all", "echo")}, []string{"w.dot.echo"}},
		{"separator @", []fsm.ListFilter{scope, f("all", "foxtrot")}, []string{"w@at@foxtrot"}},
		{"separator -", []fsm.ListFilter{scope, f("all", "golf")}, []string{"w-dash-golf"}},
		{"separators in the value", []fsm.ListFilter{scope, f("all", "under_bra"), f("all", "w=und@bravo"), f("all", "!mixed")}, []string{"w_under_bravo"}},
		{"mixed separators: each word", []fsm.ListFilter{scope, f("all", "hotel"), f("all", "india"), f("all", "juliet"), f("all", "kilo"), f("all", "lima"), f("all", "mike")},
			[]string{"w-mixed/hotel_india+juliet=kilo.lima@mike"}},
		{"mixed separators: value with other separators", []fsm.ListFilter{scope, f("all", "mike:lima hotel/india")}, []string{"w-mixed/hotel_india+juliet=kilo.lima@mike"}},
		{"tag key only (mixed separators)", []fsm.ListFilter{scope, f("all", "center")}, []string{"w-tagkey-only"}},
		{"tag key only, several words", []fsm.ListFilter{scope, f("all", "cost id")}, []string{"w-tagkey-only"}},
		{"tag value only (mixed separators)", []fsm.ListFilter{scope, f("all", "main")}, []string{"w-tagvalue-only"}},
		{"tag value only, case-insensitive", []fsm.ListFilter{scope, f("all", "APP DB")}, []string{"w-tagvalue-only"}},
		{"digits: letter part", []fsm.ListFilter{scope, f("all", "db")}, []string{"w-digits", "w-tagvalue-only"}},
		{"digits: digit part", []fsm.ListFilter{scope, f("all", "01")}, []string{"w-digits"}},
		{"digits: digit prefix", []fsm.ListFilter{scope, f("all", "0")}, []string{"w-digits"}},
		{"digits: value split too", []fsm.ListFilter{scope, f("all", "db01")}, []string{"w-digits"}},
		{"digits: no word starts with 1", []fsm.ListFilter{scope, f("all", "1")}, nil},
		{"camel case tag key", []fsm.ListFilter{scope, f("all", "team")}, []string{"w-camel"}},
		{"camel case tag value", []fsm.ListFilter{scope, f("all", "ops")}, []string{"w-camel"}},
		{"camel case value", []fsm.ListFilter{scope, f("all", "OwnerT PlatO")}, []string{"w-camel"}},
		{"camel case: not a word prefix", []fsm.ListFilter{scope, f("all", "erteam")}, nil},
		{"tag added by TagResource", []fsm.ListFilter{scope, f("all", "later tag")}, []string{"w-camel"}},
		{"no split inside upper case", []fsm.ListFilter{scope, f("all", "sa")}, nil},
		{"upper case word", []fsm.ListFilter{scope, f("all", "us")}, []string{"w-upper"}},
		{"description: any punctuation separates", []fsm.ListFilter{scope, f("description", "night rotated key")}, []string{"w-desc"}},
		{"description: digits", []fsm.ListFilter{scope, f("description", "v 2")}, []string{"w-desc"}},
		{"description: not the tags", []fsm.ListFilter{scope, f("description", "main")}, nil},
		{"description: not the name", []fsm.ListFilter{scope, f("description", "desc")}, nil},
		{"negated: no attribute has the words", []fsm.ListFilter{scope, f("all", "!db")}, []string{"w/slash/alpha", "w_under_bravo", "w+plus+charlie", "w=equals=delta", "w.dot.echo", "w@at@foxtrot",
			"w-dash-golf", "w-mixed/hotel_india+juliet=kilo.lima@mike", "w-camel", "w-tagkey-only", "w-desc", "w-upper"}},
		{"negated across attributes", []fsm.ListFilter{scope, f("all", "!app main")}, []string{"w/slash/alpha", "w_under_bravo", "w+plus+charlie", "w=equals=delta", "w.dot.echo", "w@at@foxtrot",
			"w-dash-golf", "w-mixed/hotel_india+juliet=kilo.lima@mike", "w-digits", "w-camel", "w-tagkey-only", "w-desc", "w-upper"}},
		{"value of separators only matches all", []fsm.ListFilter{scope, f("all", "--"), f("name", "w-d")}, []string{"w-dash-golf", "w-digits", "w-desc"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := fsm.ListSecretsPage(h.txn(), fsm.ListQuery{Filters: tc.filters, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			got, want := names(page), tc.want
			slices.Sort(got)
			want = slices.Clone(want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

// walk lists everything in pages of n and returns the names and the
// number of pages.
func walk(t *testing.T, h *harness, q fsm.ListQuery) ([]string, int) {
	t.Helper()
	var out []string
	pages := 0
	for {
		page, err := fsm.ListSecretsPage(h.txn(), q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		out = append(out, names(page)...)
		if page.Next == "" {
			return out, pages
		}
		if page.Next == q.After {
			t.Fatalf("cursor did not advance: %q", page.Next)
		}
		q.After = page.Next
		if pages > 1000 {
			t.Fatal("listing does not end")
		}
	}
}

func TestListSecretsPage_Orders(t *testing.T) {
	h := newHarness(t)
	// 20 secrets: created in order s00..s19, names in a shuffled order,
	// changed and accessed in yet other orders, with ties on dates.
	var created []string
	for i := range 20 {
		name := fmt.Sprintf("n%02d", (i*7)%20)
		created = append(created, name)
		h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnOf(name, fmt.Sprintf("%06d", i)), Name: name, Date: t0 + int64(i/2)})
	}
	// Change secrets in reverse creation order, two per millisecond.
	for i := 19; i >= 0; i-- {
		desc := "x"
		h.ok(fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: arnOf(created[i], fmt.Sprintf("%06d", i)), Description: &desc, Date: t0 + hour + int64((19-i)/2)})
	}
	// Access every third secret.
	for i := 0; i < 20; i += 3 {
		h.ok(fsm.CmdRecordAccess, &fsm.RecordAccess{Day: t0 - t0%day + int64(i%2)*day, Secrets: []fsm.AccessedSecret{{ARN: arnOf(created[i], fmt.Sprintf("%06d", i))}}})
	}
	all, _, err := fsm.ListSecrets(h.txn(), "", 100, true)
	if err != nil || len(all) != 20 {
		t.Fatalf("%d secrets, %v", len(all), err)
	}
	want := map[string][]string{}
	for _, by := range []string{fsm.SortCreatedDate, fsm.SortName, fsm.SortLastChangedDate, fsm.SortLastAccessedDate} {
		s := slices.Clone(all)
		slices.SortStableFunc(s, func(a, b *fsm.Secret) int {
			switch by {
			case fsm.SortName:
				return strings.Compare(a.Name, b.Name)
			case fsm.SortLastChangedDate:
				return cmpThen(a.LastChangedDate, b.LastChangedDate, a.ARN, b.ARN)
			case fsm.SortLastAccessedDate:
				return cmpThen(a.LastAccessedDate, b.LastAccessedDate, a.ARN, b.ARN)
			}
			return cmpThen(a.CreatedDate, b.CreatedDate, a.ARN, b.ARN)
		})
		for _, x := range s {
			want[by] = append(want[by], x.Name)
		}
	}
	for by, w := range want {
		for _, desc := range []bool{false, true} {
			for _, n := range []int{1, 3, 7, 20, 100} {
				t.Run(fmt.Sprintf("%s desc=%v pages of %d", by, desc, n), func(t *testing.T) {
					got, pages := walk(t, h, fsm.ListQuery{SortBy: by, Desc: desc, Limit: n})
					exp := slices.Clone(w)
					if desc {
						slices.Reverse(exp)
					}
					if !slices.Equal(got, exp) {
						t.Fatalf("got %q\nwant %q", got, exp)
					}
					if wantPages := max(1, (20+n-1)/n); pages != wantPages {
						t.Fatalf("%d pages, want %d", pages, wantPages)
					}
				})
			}
		}
	}
	if want[fsm.SortCreatedDate][0] != created[0] {
		t.Fatalf("created order starts with %s", want[fsm.SortCreatedDate][0])
	}
}

func cmpThen(a, b int64, x, y string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return strings.Compare(x, y)
}

// A scan budget ends a page early, maybe empty, with a cursor that
// continues the walk; together the pages still hold every match once.
func TestListSecretsPage_ScanLimit(t *testing.T) {
	h := newHarness(t)
	for i := range 50 {
		name := fmt.Sprintf("other-%02d", i)
		if i%10 == 9 {
			name = fmt.Sprintf("match-%02d", i)
		}
		h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnOf(name, "abcdef"), Name: name, Date: t0 + int64(i)})
	}
	for _, desc := range []bool{false, true} {
		q := fsm.ListQuery{Filters: []fsm.ListFilter{{Key: "name", Values: []string{"match"}}}, Limit: 2, ScanLimit: 4, Desc: desc}
		got, pages := walk(t, h, q)
		want := []string{"match-09", "match-19", "match-29", "match-39", "match-49"}
		if desc {
			slices.Reverse(want)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("desc=%v: got %q, want %q", desc, got, want)
		}
		if pages < 50/4 {
			t.Fatalf("desc=%v: %d pages; the budget was not applied", desc, pages)
		}
		page, _ := fsm.ListSecretsPage(h.txn(), q)
		if desc {
			continue // the walk starts at match-49
		}
		if len(page.Secrets) != 0 || page.Next == "" || page.Scanned != 4 {
			t.Fatalf("desc=%v: first page %q, Next %q, scanned %d; want empty with a cursor", desc, names(page), page.Next, page.Scanned)
		}
	}
}

// Secrets created and deleted between pages: every secret that exists
// throughout is listed once, in every order and direction.
func TestListSecretsPage_Churn(t *testing.T) {
	for _, by := range []string{fsm.SortCreatedDate, fsm.SortName, fsm.SortLastChangedDate, fsm.SortLastAccessedDate} {
		for _, desc := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s desc=%v", by, desc), func(t *testing.T) {
				h := newHarness(t)
				date := t0
				mk := func(name string) {
					date++
					h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnOf(name, "abcdef"), Name: name, Date: date})
				}
				var stable []string
				for i := range 30 {
					mk(fmt.Sprintf("s%02d", i))
					stable = append(stable, fmt.Sprintf("s%02d", i))
					mk(fmt.Sprintf("v%02d", i))
				}
				seen := map[string]int{}
				q := fsm.ListQuery{SortBy: by, Desc: desc, Limit: 4}
				for round := 0; ; round++ {
					page, err := fsm.ListSecretsPage(h.txn(), q)
					if err != nil {
						t.Fatal(err)
					}
					for _, n := range names(page) {
						seen[n]++
					}
					if page.Next == "" {
						break
					}
					q.After = page.Next
					// Delete the cursor secret if volatile, one more volatile
					// secret, and create two new ones.
					last := page.Secrets[len(page.Secrets)-1].Name
					if last[0] == 'v' {
						h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf(last, "abcdef"), Force: true, Date: date})
					}
					v := fmt.Sprintf("v%02d", (round*7)%30)
					if s := fsm.SecretByARN(h.txn(), arnOf(v, "abcdef")); s != nil && !s.Scheduled() {
						h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf(v, "abcdef"), DeletionDate: date + day, Date: date})
					}
					mk(fmt.Sprintf("a%02d", round))
					mk(fmt.Sprintf("z%02d", round))
				}
				for _, n := range stable {
					if seen[n] != 1 {
						t.Errorf("%s listed %d times", n, seen[n])
					}
				}
				for n, c := range seen {
					if c > 1 {
						t.Errorf("%s listed %d times", n, c)
					}
				}
			})
		}
	}
}

// A secret whose LastChangedDate moves during a listing moves in the
// last-changed-date order: documented, not hidden.
func TestListSecretsPage_MovingKey(t *testing.T) {
	h := newHarness(t)
	for i := range 6 {
		h.ok(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arnOf(fmt.Sprintf("m%d", i), "abcdef"), Name: fmt.Sprintf("m%d", i), Date: t0 + int64(i)})
	}
	q := fsm.ListQuery{SortBy: fsm.SortLastChangedDate, Limit: 3}
	page, _ := fsm.ListSecretsPage(h.txn(), q)
	if got := names(page); !slices.Equal(got, []string{"m0", "m1", "m2"}) {
		t.Fatalf("first page %q", got)
	}
	desc := "changed"
	h.ok(fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: arnOf("m0", "abcdef"), Description: &desc, Date: t0 + hour})
	q.After = page.Next
	rest, _ := walk(t, h, q)
	if !slices.Equal(rest, []string{"m3", "m4", "m5", "m0"}) {
		t.Fatalf("rest %q: m0 changed after the first page and is listed again at its new position", rest)
	}
}

func TestListSecretsPage_BadQuery(t *testing.T) {
	h := newHarness(t)
	if _, err := fsm.ListSecretsPage(h.txn(), fsm.ListQuery{SortBy: "size", Limit: 1}); err == nil {
		t.Fatal("unknown order accepted")
	}
	if _, err := fsm.ListSecretsPage(h.txn(), fsm.ListQuery{Limit: 0}); err == nil {
		t.Fatal("page size 0 accepted")
	}
}
