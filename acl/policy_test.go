package acl

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	valid := []struct{ name, doc string }{
		{"one statement object", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}`},
		{"a list, every form", `{"Version":"2008-10-17","Id":"x","Statement":[
			{"Sid":"a","Effect":"Allow","Principal":{"AWS":["123456789012","arn:aws:iam::123456789012:role/r"]},"Action":["secretsmanager:Get*","secretsmanager:Describe?ecret"],"Resource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:db-??????"},
			{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/admin"},"NotAction":"secretsmanager:Describe*","NotResource":["arn:aws:secretsmanager:*:*:secret:x*"]},
			{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":"123456789012"},"ForAnyValue:StringLikeIfExists":{"aws:TagKeys":["a*"]},"Bool":{"aws:SecureTransport":true},"NumericLessThan":{"secretsmanager:RecoveryWindowInDays":10},"Null":{"aws:TagKeys":"false"}}},
			{"Effect":"Allow","Principal":{"Service":"rotation.coffer"},"Action":"SecretsManager:GetSecretValue"}
		]}`},
		{"no Version", `{"Statement":[{"Effect":"Deny","Principal":"*","Action":"secretsmanager:*"}]}`},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			p, problems, err := ParsePolicy(tc.doc)
			if err != nil || len(problems) > 0 {
				t.Fatalf("ParsePolicy: %v %q", err, problems)
			}
			if len(p.Statements) == 0 {
				t.Fatal("no statements")
			}
		})
	}

	notJSON := []string{``, `{`, `[]`, `"x"`, `null`, `{"Statement":[]} {}`, `{"a":1,}`}
	for _, doc := range notJSON {
		_, _, err := ParsePolicy(doc)
		var nj *ErrNotJSON
		if !errors.As(err, &nj) {
			t.Errorf("ParsePolicy(%q) = %v, want ErrNotJSON", doc, err)
		}
	}

	stmt := func(body string) string { return `{"Version":"2012-10-17","Statement":[` + body + `]}` }
	invalid := []struct{ name, doc, problem string }{
		{"no Statement", `{"Version":"2012-10-17"}`, "no Statement"},
		{"empty Statement", `{"Statement":[]}`, "must not be empty"},
		{"Statement a string", `{"Statement":"x"}`, "object or a list"},
		{"bad Version", `{"Version":"2020-01-01","Statement":{"Effect":"Allow","Principal":"*","Action":"*"}}`, "Version"},
		{"unknown top-level element", `{"Foo":1,"Statement":{"Effect":"Allow","Principal":"*","Action":"*"}}`, `"Foo"`},
		{"statement not an object", stmt(`1`), "not an object"},
		{"no Effect", stmt(`{"Principal":"*","Action":"*"}`), "Effect"},
		{"Effect in lower case", stmt(`{"Effect":"allow","Principal":"*","Action":"*"}`), "Effect"},
		{"no Principal", stmt(`{"Effect":"Allow","Action":"*"}`), "Principal"},
		{"Principal and NotPrincipal", stmt(`{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"*"}`), "not both"},
		{"Principal a bare account", stmt(`{"Effect":"Allow","Principal":"123456789012","Action":"*"}`), "must be \"*\""},
		{"unknown principal type", stmt(`{"Effect":"Allow","Principal":{"Users":"x"},"Action":"*"}`), `"Users"`},
		{"bad AWS principal", stmt(`{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"*"}`), `"bob"`},
		{"empty principal list", stmt(`{"Effect":"Allow","Principal":{"AWS":[]},"Action":"*"}`), "empty list"},
		{"no Action", stmt(`{"Effect":"Allow","Principal":"*"}`), "no Action"},
		{"another service's action", stmt(`{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}`), `"s3:GetObject"`},
		{"action without a service", stmt(`{"Effect":"Allow","Principal":"*","Action":"GetSecretValue"}`), `"GetSecretValue"`},
		{"action a number", stmt(`{"Effect":"Allow","Principal":"*","Action":5}`), "string or a list"},
		{"resource not an ARN", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Resource":"my-secret"}`), `"my-secret"`},
		{"unknown condition operator", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringSortOf":{"a":"b"}}}`), `"StringSortOf"`},
		{"condition values an object", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"a":{"b":1}}}}`), "values must be"},
		{"condition not an object", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Condition":[]}`), "Condition must be an object"},
		{"unknown statement element", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Actions":"*"}`), `"Actions"`},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			_, problems, err := ParsePolicy(tc.doc)
			if err != nil {
				t.Fatalf("ParsePolicy: %v", err)
			}
			if !strings.Contains(strings.Join(problems, " | "), tc.problem) {
				t.Fatalf("problems %q, want one mentioning %s", problems, tc.problem)
			}
		})
	}
}

func TestPolicy_BroadAccess(t *testing.T) {
	stmt := func(body string) string { return `{"Version":"2012-10-17","Statement":[` + body + `]}` }
	tests := []struct {
		name  string
		doc   string
		broad bool
	}{
		{"account principal", stmt(`{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"*"}`), false},
		{"star", stmt(`{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue"}`), true},
		{"AWS star", stmt(`{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"*"}`), true},
		{"AWS star among others", stmt(`{"Effect":"Allow","Principal":{"AWS":["123456789012","*"]},"Action":"*"}`), true},
		{"NotPrincipal allow", stmt(`{"Effect":"Allow","NotPrincipal":{"AWS":"123456789012"},"Action":"*"}`), true},
		{"star denied", stmt(`{"Effect":"Deny","Principal":"*","Action":"*"}`), false},
		{"star narrowed to an account", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":"123456789012"}}}`), false},
		{"star narrowed to an org, key case-insensitive", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"AWS:PrincipalOrgID":["o-abc"]}}}`), false},
		{"star narrowed by ArnLike without wildcards", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:role/r"}}}`), false},
		{"star with a wildcard account", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringLike":{"aws:PrincipalAccount":"*"}}}`), true},
		{"star with a negated condition", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringNotEquals":{"aws:PrincipalAccount":"123456789012"}}}`), true},
		{"star with an unrelated condition", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}`), true},
		{"star with IfExists", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEqualsIfExists":{"aws:SourceAccount":"123456789012"}}}`), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, problems, err := ParsePolicy(tc.doc)
			if err != nil || len(problems) > 0 {
				t.Fatalf("ParsePolicy: %v %q", err, problems)
			}
			if got := len(p.BroadAccess()) > 0; got != tc.broad {
				t.Fatalf("BroadAccess = %q, want broad=%v", p.BroadAccess(), tc.broad)
			}
		})
	}
}

func TestPolicy_LocksOut(t *testing.T) {
	const caller, account = "arn:aws:iam::000000000000:root", "000000000000"
	const secret = "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf"
	stmt := func(body string) string { return `{"Version":"2012-10-17","Statement":[` + body + `]}` }
	tests := []struct {
		name string
		doc  string
		lock bool
	}{
		{"deny everything to everyone", stmt(`{"Effect":"Deny","Principal":"*","Action":"*"}`), true},
		{"deny secretsmanager:* to the account", stmt(`{"Effect":"Deny","Principal":{"AWS":"000000000000"},"Action":"secretsmanager:*"}`), true},
		{"deny Put* to the caller ARN on this secret", stmt(`{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"secretsmanager:put*","Resource":"arn:aws:secretsmanager:us-east-1:000000000000:secret:db-??????"}`), true},
		{"deny another action", stmt(`{"Effect":"Deny","Principal":"*","Action":"secretsmanager:GetSecretValue"}`), false},
		{"NotAction spares PutResourcePolicy", stmt(`{"Effect":"Deny","Principal":"*","NotAction":"secretsmanager:PutResourcePolicy"}`), false},
		{"NotAction denies it", stmt(`{"Effect":"Deny","Principal":"*","NotAction":"secretsmanager:GetSecretValue"}`), true},
		{"deny another account", stmt(`{"Effect":"Deny","Principal":{"AWS":"111111111111"},"Action":"*"}`), false},
		{"NotPrincipal spares the caller", stmt(`{"Effect":"Deny","NotPrincipal":{"AWS":"000000000000"},"Action":"*"}`), false},
		{"deny on another secret", stmt(`{"Effect":"Deny","Principal":"*","Action":"*","Resource":"arn:aws:secretsmanager:us-east-1:000000000000:secret:other-*"}`), false},
		{"conditional deny", stmt(`{"Effect":"Deny","Principal":"*","Action":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}`), false},
		{"allow only", stmt(`{"Effect":"Allow","Principal":"*","Action":"*"}`), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, problems, err := ParsePolicy(tc.doc)
			if err != nil || len(problems) > 0 {
				t.Fatalf("ParsePolicy: %v %q", err, problems)
			}
			if got := len(p.LocksOut(caller, account, secret)) > 0; got != tc.lock {
				t.Fatalf("LocksOut = %q, want %v", p.LocksOut(caller, account, secret), tc.lock)
			}
		})
	}
}

// wildcardMatch matches s against a pattern with * (any run) and ? (any
// one character), as Resource elements are matched.
func wildcardMatch(pattern, s string) bool {
	return globMatch(nil, tokenize(pattern, true, false), s, false)
}

func TestWildcardMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*c", "abbbc", true}, {"a*c", "abcd", false},
		{"a?c", "abc", true}, {"a?c", "ac", false}, {"*db-??????", "arn:secret:db-AbCdEf", true},
		{"*db-??????", "arn:secret:db-AbCdE", false}, {"a**b", "ab", true}, {"", "", true}, {"", "a", false},
	} {
		if got := wildcardMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v", tc.pattern, tc.s, got)
		}
	}
}
