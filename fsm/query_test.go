package fsm_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/fsm"
)

func TestResolveSecret(t *testing.T) {
	h := newHarness(t)
	secrets := map[string]string{ // name → suffix
		"MyTestDatabaseSecret": "a1b2c3",
		"path/to/secret":       "2jm5Pa",
		"Name-abcdef":          "bJ0ZSv", // ends like an ARN suffix
		"prefix":               "000000",
		"prefix-x":             "111111",
	}
	for name, suffix := range secrets {
		h.ok(fsm.CmdCreateSecret, createCmd(name, suffix, nil, t0))
	}
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf("prefix-x", "111111"), DeletionDate: t0 + 7*day, Date: t0 + 1})

	const (
		otherRegion  = "arn:aws:secretsmanager:eu-west-1:" + testAccount + ":secret:"
		otherAccount = "arn:aws:secretsmanager:" + testRegion + ":210987654321:secret:"
	)
	tests := []struct {
		id   string
		want string // name of the secret found, "" for none
	}{
		// Names: exact and case-sensitive.
		{"MyTestDatabaseSecret", "MyTestDatabaseSecret"},
		{"mytestdatabasesecret", ""},
		{"MyTestDatabase", ""},
		{"path/to/secret", "path/to/secret"},
		{"Name-abcdef", "Name-abcdef"},
		{"prefix-x", "prefix-x"}, // scheduled secrets resolve
		{"nope", ""},
		// Full ARNs.
		{arnOf("MyTestDatabaseSecret", "a1b2c3"), "MyTestDatabaseSecret"},
		{arnOf("path/to/secret", "2jm5Pa"), "path/to/secret"},
		{arnOf("Name-abcdef", "bJ0ZSv"), "Name-abcdef"},
		{arnOf("prefix-x", "111111"), "prefix-x"},
		{arnOf("MyTestDatabaseSecret", "a1b2c4"), ""}, // wrong suffix: a complete ARN, not retried
		{arnOf("MyTestDatabaseSecret", "A1B2C3"), ""},
		// Partial ARNs (no suffix).
		{arnPrefix + "MyTestDatabaseSecret", "MyTestDatabaseSecret"},
		{arnPrefix + "path/to/secret", "path/to/secret"},
		{arnPrefix + "prefix", "prefix"},
		{arnPrefix + "prefix-x", "prefix-x"},
		// Not a complete ARN of any secret, so tried as a partial one: a
		// name ending like an ARN suffix is still found (issue 16: AWS SDK
		// clients rely on partial ARNs of names such as my-secret).
		{arnPrefix + "Name-abcdef", "Name-abcdef"},
		{arnPrefix + "Name", ""},
		{arnPrefix + "MyTestDatabaseSecret-a1b2c", ""},
		{arnPrefix + "nope", ""},
		// Another region, account, partition or service names nothing here.
		{otherRegion + "MyTestDatabaseSecret-a1b2c3", ""},
		{otherRegion + "MyTestDatabaseSecret", ""},
		{otherAccount + "MyTestDatabaseSecret-a1b2c3", ""},
		{otherAccount + "MyTestDatabaseSecret", ""},
		{"arn:aws-cn:secretsmanager:" + testRegion + ":" + testAccount + ":secret:MyTestDatabaseSecret-a1b2c3", ""},
		{"arn:aws-cn:secretsmanager:" + testRegion + ":" + testAccount + ":secret:MyTestDatabaseSecret", ""},
		{"arn::secretsmanager:" + testRegion + ":" + testAccount + ":secret:MyTestDatabaseSecret", ""},
		{"arn:aws:ssm:" + testRegion + ":" + testAccount + ":secret:MyTestDatabaseSecret-a1b2c3", ""},
		{"arn:aws:secretsmanager:" + testRegion + ":" + testAccount + ":parameter:MyTestDatabaseSecret", ""},
		{"arn:aws:secretsmanager:" + testRegion + ":" + testAccount + ":secret:", ""},
		{"arn:aws:secretsmanager:" + testRegion + ":" + testAccount + ":secret", ""},
		// Garbage.
		{"", ""},
		{"arn:", ""},
		{"arn", ""},
		{"arn:aws", ""},
		{"arn:aws:secretsmanager", ""},
		{":::::::", ""},
		{"arn:::::::", ""},
		{"arn:::::::-abcdef", ""},
		{"arn:aws:secretsmanager:::secret:MyTestDatabaseSecret", ""},
		{"\x00", ""},
		{"arn:aws:secretsmanager:" + testRegion + ":" + testAccount + ":secret:\x00", ""},
	}
	txn := h.txn()
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			got := fsm.ResolveSecret(txn, tc.id, testRegion, testAccount)
			switch {
			case tc.want == "" && got != nil:
				t.Fatalf("found %s, want nothing", got.ARN)
			case tc.want != "" && got == nil:
				t.Fatalf("found nothing, want %s", tc.want)
			case tc.want != "" && got.Name != tc.want:
				t.Fatalf("found %s, want %s", got.Name, tc.want)
			}
		})
	}
}

func TestListSecrets(t *testing.T) {
	h := newHarness(t)
	// 7 secrets; two share a creation date (ties go by ARN), creation order
	// differs from name order, and two are scheduled for deletion.
	type sec struct {
		name, suffix string
		date         int64
		scheduled    bool
	}
	all := []sec{
		{"zeta", "aaaaaa", t0, false},
		{"alpha", "bbbbbb", t0 + 1, true},
		{"tie-b", "cccccc", t0 + 2, false},
		{"mid", "dddddd", t0 + 3, true},
		{"beta", "eeeeee", t0 + 4, false},
		{"omega", "ffffff", t0 + 5, false},
		{"tie-a", "gggggg", t0 + 2, false}, // created later in the log, earlier in list order
	}
	for _, s := range all {
		h.ok(fsm.CmdCreateSecret, createCmd(s.name, s.suffix, nil, s.date))
	}
	for _, s := range all {
		if s.scheduled {
			h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf(s.name, s.suffix), DeletionDate: t0 + 7*day, Date: t0 + 10})
		}
	}
	wantAll := []string{"zeta", "alpha", "tie-a", "tie-b", "mid", "beta", "omega"}
	wantActive := []string{"zeta", "tie-a", "tie-b", "beta", "omega"}

	txn := h.txn()
	for _, includeDeleted := range []bool{false, true} {
		want := wantActive
		if includeDeleted {
			want = wantAll
		}
		for limit := 1; limit <= len(want)+1; limit++ {
			t.Run(fmt.Sprintf("limit %d includeDeleted %v", limit, includeDeleted), func(t *testing.T) {
				var got []string
				cursor := ""
				for pages := 0; ; pages++ {
					if pages > len(want)+1 {
						t.Fatal("pagination does not end")
					}
					page, more, err := fsm.ListSecrets(txn, cursor, limit, includeDeleted)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) > limit || (more && len(page) != limit) {
						t.Fatalf("page of %d with more=%v, limit %d", len(page), more, limit)
					}
					for _, s := range page {
						got = append(got, s.Name)
						if s.Scheduled() && !includeDeleted {
							t.Fatalf("scheduled %s listed", s.Name)
						}
					}
					// more is exact: a full last page says there is nothing after it.
					remaining := len(want) - len(got)
					if more != (remaining > 0) {
						t.Fatalf("after %d of %d: more=%v", len(got), len(want), more)
					}
					if !more {
						break
					}
					cursor = page[len(page)-1].ListKey
				}
				if !slices.Equal(got, want) {
					t.Fatalf("listed %v, want %v", got, want)
				}
			})
		}
	}

	t.Run("cursor past the end", func(t *testing.T) {
		last, _, _ := fsm.ListSecrets(txn, "", 100, true)
		page, more, err := fsm.ListSecrets(txn, last[len(last)-1].ListKey, 10, true)
		if err != nil || len(page) != 0 || more {
			t.Fatalf("page %d more %v err %v", len(page), more, err)
		}
	})
	t.Run("cursor of a secret since deleted", func(t *testing.T) {
		// The cursor is a position, not a reference: it still works after
		// its secret is gone.
		h2 := newHarness(t)
		for _, s := range all {
			h2.ok(fsm.CmdCreateSecret, createCmd(s.name, s.suffix, nil, s.date))
		}
		first, _, _ := fsm.ListSecrets(h2.txn(), "", 3, true) // zeta alpha tie-a
		cursor := first[2].ListKey
		h2.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: first[2].ARN, Force: true, Date: t0 + 20})
		page, more, _ := fsm.ListSecrets(h2.txn(), cursor, 2, true)
		if len(page) != 2 || page[0].Name != "tie-b" || page[1].Name != "mid" || !more {
			t.Fatalf("page after a deleted cursor: %d more %v", len(page), more)
		}
	})
	t.Run("only scheduled after the page", func(t *testing.T) {
		// beta and omega are active, then nothing but scheduled secrets:
		// a page ending on omega has no more.
		h3 := newHarness(t)
		h3.ok(fsm.CmdCreateSecret, createCmd("a", "aaaaaa", nil, t0))
		h3.ok(fsm.CmdCreateSecret, createCmd("b", "bbbbbb", nil, t0+1))
		h3.ok(fsm.CmdCreateSecret, createCmd("c", "cccccc", nil, t0+2))
		h3.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf("c", "cccccc"), DeletionDate: t0 + 7*day, Date: t0 + 3})
		page, more, _ := fsm.ListSecrets(h3.txn(), "", 2, false)
		if len(page) != 2 || more {
			t.Fatalf("page %d more %v, want 2 and no more", len(page), more)
		}
	})
	t.Run("empty state", func(t *testing.T) {
		txn, _ := fsm.New(nil).ReadTxn()
		page, more, err := fsm.ListSecrets(txn, "", 10, true)
		if err != nil || len(page) != 0 || more {
			t.Fatalf("page %d more %v err %v", len(page), more, err)
		}
	})
}

func TestListKey_Order(t *testing.T) {
	// Creation time first, numerically, then the ARN.
	keys := []string{
		fsm.ListKey(9, "arn:z"),
		fsm.ListKey(10, "arn:a"),
		fsm.ListKey(10, "arn:b"),
		fsm.ListKey(t0, "arn:a"),
		fsm.ListKey(t0, "arn:a-"),
		fsm.ListKey(t0+1, "arn:"),
	}
	if !slices.IsSorted(keys) {
		t.Fatalf("list keys out of order: %q", keys)
	}
}
