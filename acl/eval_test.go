package acl

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testAccount = "123456789012"
	otherAcct   = "210987654321"
	secretARN   = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
	getValue    = "secretsmanager:GetSecretValue"
)

var (
	alice   = Principal{ARN: "arn:aws:iam::123456789012:user/alice", Account: testAccount, Type: "IAMUser", UserName: "alice", UserID: "AIDAALICE"}
	bob     = Principal{ARN: "arn:aws:iam::123456789012:user/bob", Account: testAccount, Type: "IAMUser", UserName: "bob", UserID: "AIDABOB"}
	carol   = Principal{ARN: "arn:aws:iam::210987654321:user/carol", Account: otherAcct, Type: "IAMUser", UserName: "carol", UserID: "AIDACAROL"}
	root    = Principal{ARN: "arn:aws:iam::123456789012:root", Account: testAccount, Type: "Root", UserID: testAccount}
	otherRt = Principal{ARN: "arn:aws:iam::210987654321:root", Account: otherAcct, Type: "Root", UserID: otherAcct}
	rotator = Principal{ARN: "", Type: "AWSService", Service: "rotation.coffer"}
)

func decisionName(d Decision) string {
	return [...]string{"ImplicitDeny", "Allow", "DenyIdentity", "DenyResource", "ImplicitDenyResource"}[d]
}

// ctxOf builds a Context of one key, through Set.
func ctxOf(key string, values ...string) Context {
	c := Context{}
	c.Set(key, values...)
	return c
}

func mustIdentity(t testing.TB, doc string) *Policy {
	t.Helper()
	p, problems, err := ParseIdentityPolicy(doc)
	if err != nil || len(problems) > 0 {
		t.Fatalf("ParseIdentityPolicy(%s): %v %q", doc, err, problems)
	}
	return p
}

func mustResource(t testing.TB, doc string) *Policy {
	t.Helper()
	p, problems, err := ParsePolicy(doc)
	if err != nil || len(problems) > 0 {
		t.Fatalf("ParsePolicy(%s): %v %q", doc, err, problems)
	}
	return p
}

// TestConditions evaluates one condition block in an identity policy that
// otherwise allows everything: Allow means the block holds.
func TestConditions(t *testing.T) {
	epoch2026 := "1777636800" // 2026-05-01T12:00:00Z
	if got := time.Unix(1777636800, 0).UTC().Format(time.RFC3339); got != "2026-05-01T12:00:00Z" {
		t.Fatalf("epoch2026 is %s", got)
	}
	tests := []struct {
		name    string
		cond    string
		ctx     Context
		want    bool
		problem bool // ParseIdentityPolicy reports the condition's value
	}{
		// String operators.
		{"StringEquals derived key", `{"StringEquals":{"aws:username":"alice"}}`, nil, true, false},
		{"StringEquals match", `{"StringEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, ctxOf("secretsmanager:VersionStage", "AWSCURRENT"), true, false},
		{"StringEquals case differs", `{"StringEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, ctxOf("secretsmanager:VersionStage", "awscurrent"), false, false},
		{"StringEquals missing key", `{"StringEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, nil, false, false},
		{"StringEquals values OR", `{"StringEquals":{"secretsmanager:VersionStage":["AWSPREVIOUS","AWSCURRENT"]}}`, ctxOf("secretsmanager:VersionStage", "AWSCURRENT"), true, false},
		{"StringEquals star is literal", `{"StringEquals":{"secretsmanager:Name":"db-*"}}`, ctxOf("secretsmanager:Name", "db-x"), false, false},
		{"StringNotEquals differs", `{"StringNotEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, ctxOf("secretsmanager:VersionStage", "AWSPREVIOUS"), true, false},
		{"StringNotEquals equal", `{"StringNotEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, ctxOf("secretsmanager:VersionStage", "AWSCURRENT"), false, false},
		{"StringNotEquals missing key", `{"StringNotEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, nil, true, false},
		{"StringEqualsIgnoreCase", `{"StringEqualsIgnoreCase":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, ctxOf("secretsmanager:VersionStage", "awsCurrent"), true, false},
		{"StringEqualsIgnoreCase differs", `{"StringEqualsIgnoreCase":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, ctxOf("secretsmanager:VersionStage", "AWSPENDING"), false, false},
		{"StringEqualsIgnoreCase missing", `{"StringEqualsIgnoreCase":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, nil, false, false},
		{"StringNotEqualsIgnoreCase equal", `{"StringNotEqualsIgnoreCase":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, ctxOf("secretsmanager:VersionStage", "awscurrent"), false, false},
		{"StringNotEqualsIgnoreCase differs", `{"StringNotEqualsIgnoreCase":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, ctxOf("secretsmanager:VersionStage", "AWSPENDING"), true, false},
		{"StringNotEqualsIgnoreCase missing", `{"StringNotEqualsIgnoreCase":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, nil, true, false},
		{"StringLike star", `{"StringLike":{"secretsmanager:Name":"db-*"}}`, ctxOf("secretsmanager:Name", "db-prod"), true, false},
		{"StringLike question mark", `{"StringLike":{"secretsmanager:Name":"d?-prod"}}`, ctxOf("secretsmanager:Name", "db-prod"), true, false},
		{"StringLike no match", `{"StringLike":{"secretsmanager:Name":"db-*"}}`, ctxOf("secretsmanager:Name", "app"), false, false},
		{"StringLike case-sensitive", `{"StringLike":{"secretsmanager:Name":"DB-*"}}`, ctxOf("secretsmanager:Name", "db-prod"), false, false},
		{"StringLike missing", `{"StringLike":{"secretsmanager:Name":"*"}}`, nil, false, false},
		{"StringNotLike match", `{"StringNotLike":{"secretsmanager:Name":"db-*"}}`, ctxOf("secretsmanager:Name", "db-prod"), false, false},
		{"StringNotLike no match", `{"StringNotLike":{"secretsmanager:Name":"db-*"}}`, ctxOf("secretsmanager:Name", "app"), true, false},
		{"StringNotLike missing", `{"StringNotLike":{"secretsmanager:Name":"db-*"}}`, nil, true, false},
		{"StringEqualsIfExists missing", `{"StringEqualsIfExists":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, nil, true, false},
		{"StringEqualsIfExists present, differs", `{"StringEqualsIfExists":{"secretsmanager:VersionStage":"AWSCURRENT"}}`, ctxOf("secretsmanager:VersionStage", "AWSPENDING"), false, false},
		{"StringLikeIfExists present, matches", `{"StringLikeIfExists":{"secretsmanager:VersionStage":"AWS*"}}`, ctxOf("secretsmanager:VersionStage", "AWSPENDING"), true, false},
		{"key set with no values is absent", `{"StringEquals":{"secretsmanager:VersionStage":""}}`, ctxOf("secretsmanager:VersionStage"), false, false},
		{"empty string value", `{"StringEquals":{"secretsmanager:VersionStage":""}}`, ctxOf("secretsmanager:VersionStage", ""), true, false},

		// Key names are case-insensitive, on both sides.
		{"policy key in another case", `{"StringEquals":{"AWS:UserName":"alice"}}`, nil, true, false},
		{"context key in another case", `{"StringEquals":{"secretsmanager:versionstage":"AWSCURRENT"}}`, ctxOf("SecretsManager:VersionStage", "AWSCURRENT"), true, false},
		{"caller's key wins over the derived one", `{"StringEquals":{"aws:username":"alice"}}`, ctxOf("aws:UserName", "mallory"), false, false},
		{"derived principal keys", `{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/alice","aws:PrincipalAccount":"123456789012","aws:PrincipalType":"IAMUser","aws:userid":"AIDAALICE"}}`, nil, true, false},

		// Multi-valued keys.
		{"no prefix, positive, one value matches", `{"StringEquals":{"aws:TagKeys":"a"}}`, ctxOf("aws:TagKeys", "b", "a"), true, false},
		{"no prefix, negated, one value equal", `{"StringNotEquals":{"aws:TagKeys":"a"}}`, ctxOf("aws:TagKeys", "a", "b"), false, false},
		{"no prefix, negated, none equal", `{"StringNotEquals":{"aws:TagKeys":["a","b"]}}`, ctxOf("aws:TagKeys", "c", "d"), true, false},
		{"ForAnyValue hit", `{"ForAnyValue:StringEquals":{"aws:TagKeys":"a"}}`, ctxOf("aws:TagKeys", "b", "a"), true, false},
		{"ForAnyValue miss", `{"ForAnyValue:StringEquals":{"aws:TagKeys":"a"}}`, ctxOf("aws:TagKeys", "b"), false, false},
		{"ForAnyValue missing key", `{"ForAnyValue:StringEquals":{"aws:TagKeys":"a"}}`, nil, false, false},
		{"ForAnyValue no values", `{"ForAnyValue:StringLike":{"aws:TagKeys":"*"}}`, ctxOf("aws:TagKeys"), false, false},
		{"ForAnyValue IfExists missing", `{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":"a"}}`, nil, true, false},
		{"ForAllValues all listed", `{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}`, ctxOf("aws:TagKeys", "b", "a"), true, false},
		{"ForAllValues one not listed", `{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}`, ctxOf("aws:TagKeys", "a", "c"), false, false},
		{"ForAllValues missing key", `{"ForAllValues:StringEquals":{"aws:TagKeys":"a"}}`, nil, true, false},
		{"ForAllValues no values", `{"ForAllValues:StringEquals":{"aws:TagKeys":"a"}}`, ctxOf("aws:TagKeys"), true, false},
		{"ForAllValues negated, none listed", `{"ForAllValues:StringNotEquals":{"aws:TagKeys":"a"}}`, ctxOf("aws:TagKeys", "b", "c"), true, false},
		{"ForAllValues negated, one listed", `{"ForAllValues:StringNotEquals":{"aws:TagKeys":"a"}}`, ctxOf("aws:TagKeys", "a", "b"), false, false},
		{"ForAnyValue negated, one not listed", `{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"a"}}`, ctxOf("aws:TagKeys", "a", "b"), true, false},
		{"ForAnyValue negated, all listed", `{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"a"}}`, ctxOf("aws:TagKeys", "a"), false, false},
		{"ForAnyValue negated, missing", `{"ForAnyValue:StringNotLike":{"aws:TagKeys":"a*"}}`, nil, false, false},

		// AND across operators and keys.
		{"two operators both hold", `{"StringEquals":{"aws:username":"alice"},"Bool":{"aws:SecureTransport":"true"}}`, ctxOf("aws:SecureTransport", "true"), true, false},
		{"two operators, one fails", `{"StringEquals":{"aws:username":"alice"},"Bool":{"aws:SecureTransport":"true"}}`, ctxOf("aws:SecureTransport", "false"), false, false},
		{"two keys, one fails", `{"StringEquals":{"aws:username":"alice","aws:PrincipalAccount":"210987654321"}}`, nil, false, false},

		// Numeric.
		{"NumericEquals", `{"NumericEquals":{"secretsmanager:RecoveryWindowInDays":7}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "7"), true, false},
		{"NumericEquals decimal form", `{"NumericEquals":{"secretsmanager:RecoveryWindowInDays":"7"}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "7.0"), true, false},
		{"NumericEquals differs", `{"NumericEquals":{"secretsmanager:RecoveryWindowInDays":7}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "8"), false, false},
		{"NumericEquals missing", `{"NumericEquals":{"secretsmanager:RecoveryWindowInDays":7}}`, nil, false, false},
		{"NumericEquals request not a number", `{"NumericEquals":{"secretsmanager:RecoveryWindowInDays":7}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "seven"), false, false},
		{"NumericNotEquals differs", `{"NumericNotEquals":{"secretsmanager:RecoveryWindowInDays":7}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "8"), true, false},
		{"NumericNotEquals equal", `{"NumericNotEquals":{"secretsmanager:RecoveryWindowInDays":7}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "7"), false, false},
		{"NumericNotEquals missing", `{"NumericNotEquals":{"secretsmanager:RecoveryWindowInDays":7}}`, nil, true, false},
		{"NumericNotEquals request not a number", `{"NumericNotEquals":{"secretsmanager:RecoveryWindowInDays":7}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "seven"), false, false},
		{"NumericNotEquals NaN", `{"NumericNotEquals":{"secretsmanager:RecoveryWindowInDays":7}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "NaN"), false, false},
		{"NumericLessThan", `{"NumericLessThan":{"secretsmanager:RecoveryWindowInDays":10}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "7"), true, false},
		{"NumericLessThan equal", `{"NumericLessThan":{"secretsmanager:RecoveryWindowInDays":10}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "10"), false, false},
		{"NumericLessThanEquals equal", `{"NumericLessThanEquals":{"secretsmanager:RecoveryWindowInDays":10}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "10"), true, false},
		{"NumericGreaterThan", `{"NumericGreaterThan":{"secretsmanager:RecoveryWindowInDays":10}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "11"), true, false},
		{"NumericGreaterThan equal", `{"NumericGreaterThan":{"secretsmanager:RecoveryWindowInDays":10}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "10"), false, false},
		{"NumericGreaterThanEquals", `{"NumericGreaterThanEquals":{"secretsmanager:RecoveryWindowInDays":10}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "10"), true, false},
		{"NumericGreaterThanEquals below", `{"NumericGreaterThanEquals":{"secretsmanager:RecoveryWindowInDays":10}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "9.5"), false, false},
		{"NumericLessThanIfExists missing", `{"NumericLessThanIfExists":{"secretsmanager:RecoveryWindowInDays":10}}`, nil, true, false},
		{"Numeric policy value not a number", `{"NumericLessThan":{"secretsmanager:RecoveryWindowInDays":"ten"}}`, ctxOf("secretsmanager:RecoveryWindowInDays", "7"), false, true},
		{"NumericNotEquals policy value not a number", `{"NumericNotEquals":{"secretsmanager:RecoveryWindowInDays":"ten"}}`, nil, false, true},

		// Dates: RFC 3339, dates alone, epoch seconds, on either side.
		{"DateLessThan RFC 3339", `{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}`, ctxOf("aws:CurrentTime", "2026-05-01T12:00:00Z"), true, false},
		{"DateLessThan date only", `{"DateLessThan":{"aws:CurrentTime":"2026-05-01"}}`, ctxOf("aws:CurrentTime", "2026-05-01T12:00:00Z"), false, false},
		{"DateGreaterThan date only", `{"DateGreaterThan":{"aws:CurrentTime":"2026-05-01"}}`, ctxOf("aws:CurrentTime", "2026-05-01T12:00:00Z"), true, false},
		{"DateGreaterThan offset", `{"DateGreaterThan":{"aws:CurrentTime":"2026-05-01T13:00:00+02:00"}}`, ctxOf("aws:CurrentTime", "2026-05-01T12:00:00Z"), true, false},
		{"DateEquals epoch against ISO", `{"DateEquals":{"aws:EpochTime":"2026-05-01T12:00:00Z"}}`, ctxOf("aws:EpochTime", epoch2026), true, false},
		{"DateEquals ISO against epoch", `{"DateEquals":{"aws:CurrentTime":` + epoch2026 + `}}`, ctxOf("aws:CurrentTime", "2026-05-01T12:00:00Z"), true, false},
		{"DateNotEquals equal", `{"DateNotEquals":{"aws:CurrentTime":"2026-05-01T12:00:00Z"}}`, ctxOf("aws:CurrentTime", "2026-05-01T12:00:00.000Z"), false, false},
		{"DateNotEquals differs", `{"DateNotEquals":{"aws:CurrentTime":"2026-05-01T12:00:00Z"}}`, ctxOf("aws:CurrentTime", "2026-05-01T12:00:01Z"), true, false},
		{"DateNotEquals missing", `{"DateNotEquals":{"aws:CurrentTime":"2026-05-01T12:00:00Z"}}`, nil, true, false},
		{"DateLessThanEquals equal", `{"DateLessThanEquals":{"aws:EpochTime":` + epoch2026 + `}}`, ctxOf("aws:EpochTime", epoch2026), true, false},
		{"DateGreaterThanEquals equal", `{"DateGreaterThanEquals":{"aws:EpochTime":` + epoch2026 + `}}`, ctxOf("aws:EpochTime", epoch2026), true, false},
		{"DateGreaterThanEquals below", `{"DateGreaterThanEquals":{"aws:EpochTime":"2030-01-01"}}`, ctxOf("aws:EpochTime", epoch2026), false, false},
		{"Date missing", `{"DateLessThan":{"aws:CurrentTime":"2030-01-01"}}`, nil, false, false},
		{"Date request unreadable", `{"DateLessThan":{"aws:CurrentTime":"2030-01-01"}}`, ctxOf("aws:CurrentTime", "yesterday"), false, false},
		{"Date policy value unreadable", `{"DateLessThan":{"aws:CurrentTime":"soon"}}`, ctxOf("aws:CurrentTime", "2026-05-01T12:00:00Z"), false, true},

		// Bool and Binary.
		{"Bool true", `{"Bool":{"aws:SecureTransport":true}}`, ctxOf("aws:SecureTransport", "true"), true, false},
		{"Bool case", `{"Bool":{"aws:SecureTransport":"true"}}`, ctxOf("aws:SecureTransport", "TRUE"), true, false},
		{"Bool differs", `{"Bool":{"aws:SecureTransport":"true"}}`, ctxOf("aws:SecureTransport", "false"), false, false},
		{"Bool missing", `{"Bool":{"aws:SecureTransport":"false"}}`, nil, false, false},
		{"BoolIfExists missing", `{"BoolIfExists":{"aws:SecureTransport":"false"}}`, nil, true, false},
		{"Bool request unreadable", `{"Bool":{"aws:SecureTransport":"true"}}`, ctxOf("aws:SecureTransport", "yes"), false, false},
		{"Bool policy unreadable", `{"Bool":{"aws:SecureTransport":"yes"}}`, ctxOf("aws:SecureTransport", "true"), false, true},
		{"BinaryEquals", `{"BinaryEquals":{"coffer:Blob":"aGVsbG8="}}`, ctxOf("coffer:Blob", "aGVsbG8="), true, false},
		{"BinaryEquals differs", `{"BinaryEquals":{"coffer:Blob":"aGVsbG8="}}`, ctxOf("coffer:Blob", "d29ybGQ="), false, false},
		{"BinaryEquals request not base64", `{"BinaryEquals":{"coffer:Blob":"aGVsbG8="}}`, ctxOf("coffer:Blob", "hello!"), false, false},
		{"BinaryEquals missing", `{"BinaryEquals":{"coffer:Blob":"aGVsbG8="}}`, nil, false, false},
		{"BinaryEquals policy not base64", `{"BinaryEquals":{"coffer:Blob":"hello!"}}`, ctxOf("coffer:Blob", "aGVsbG8="), false, true},

		// IP addresses.
		{"IpAddress IPv4 CIDR", `{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, ctxOf("aws:SourceIp", "203.0.113.7"), true, false},
		{"IpAddress IPv4 outside", `{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, ctxOf("aws:SourceIp", "198.51.100.1"), false, false},
		{"IpAddress unmasked CIDR", `{"IpAddress":{"aws:SourceIp":"203.0.113.99/24"}}`, ctxOf("aws:SourceIp", "203.0.113.7"), true, false},
		{"IpAddress single address", `{"IpAddress":{"aws:SourceIp":"203.0.113.7"}}`, ctxOf("aws:SourceIp", "203.0.113.7"), true, false},
		{"IpAddress single address, other", `{"IpAddress":{"aws:SourceIp":"203.0.113.7"}}`, ctxOf("aws:SourceIp", "203.0.113.8"), false, false},
		{"IpAddress IPv6 CIDR", `{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}`, ctxOf("aws:SourceIp", "2001:db8:1::5"), true, false},
		{"IpAddress IPv6 outside", `{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}`, ctxOf("aws:SourceIp", "2001:db9::5"), false, false},
		{"IpAddress IPv4 against IPv6", `{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}`, ctxOf("aws:SourceIp", "203.0.113.7"), false, false},
		{"IpAddress IPv4-mapped request", `{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, ctxOf("aws:SourceIp", "::ffff:203.0.113.7"), true, false},
		{"IpAddress list", `{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]}}`, ctxOf("aws:SourceIp", "2001:db8::1"), true, false},
		{"IpAddress missing", `{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}`, nil, false, false},
		{"IpAddress request unreadable", `{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}`, ctxOf("aws:SourceIp", "localhost"), false, false},
		{"IpAddress bad CIDR", `{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}`, ctxOf("aws:SourceIp", "10.0.0.1"), false, true},
		{"NotIpAddress outside", `{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, ctxOf("aws:SourceIp", "192.168.1.1"), true, false},
		{"NotIpAddress inside", `{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, ctxOf("aws:SourceIp", "10.1.2.3"), false, false},
		{"NotIpAddress missing", `{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, nil, true, false},
		{"NotIpAddress request unreadable", `{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, ctxOf("aws:SourceIp", "x"), false, false},
		{"NotIpAddress bad CIDR", `{"NotIpAddress":{"aws:SourceIp":"10.0.0/8"}}`, ctxOf("aws:SourceIp", "192.168.1.1"), false, true},
		{"IpAddressIfExists missing", `{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}`, nil, true, false},

		// ARNs: six parts, wildcards per part.
		{"ArnLike", `{"ArnLike":{"secretsmanager:SecretId":"arn:aws:secretsmanager:*:123456789012:secret:db-*"}}`, ctxOf("secretsmanager:SecretId", secretARN), true, false},
		{"ArnLike other account", `{"ArnLike":{"secretsmanager:SecretId":"arn:aws:secretsmanager:*:210987654321:secret:db-*"}}`, ctxOf("secretsmanager:SecretId", secretARN), false, false},
		{"ArnLike star stays in its part", `{"ArnLike":{"secretsmanager:SecretId":"arn:aws:*:123456789012:secret:db-AbCdEf"}}`, ctxOf("secretsmanager:SecretId", secretARN), false, false},
		{"ArnLike last part holds colons", `{"ArnLike":{"secretsmanager:RotationLambdaARN":"arn:aws:lambda:us-east-1:123456789012:function:*"}}`, ctxOf("secretsmanager:RotationLambdaARN", "arn:aws:lambda:us-east-1:123456789012:function:rot:3"), true, false},
		{"ArnLike question mark", `{"ArnLike":{"secretsmanager:SecretId":"arn:aws:secretsmanager:us-east-?:123456789012:secret:db-??????"}}`, ctxOf("secretsmanager:SecretId", secretARN), true, false},
		{"ArnEquals takes wildcards too", `{"ArnEquals":{"secretsmanager:SecretId":"arn:aws:secretsmanager:us-*:123456789012:secret:*"}}`, ctxOf("secretsmanager:SecretId", secretARN), true, false},
		{"ArnEquals exact", `{"ArnEquals":{"secretsmanager:SecretId":"` + secretARN + `"}}`, ctxOf("secretsmanager:SecretId", secretARN), true, false},
		{"ArnEquals case-sensitive", `{"ArnEquals":{"secretsmanager:SecretId":"` + strings.ToUpper(secretARN) + `"}}`, ctxOf("secretsmanager:SecretId", secretARN), false, false},
		{"ArnLike missing", `{"ArnLike":{"secretsmanager:SecretId":"arn:*:*:*:*:*"}}`, nil, false, false},
		{"ArnLike request not an ARN", `{"ArnLike":{"secretsmanager:SecretId":"arn:*:*:*:*:*"}}`, ctxOf("secretsmanager:SecretId", "db"), false, false},
		{"ArnNotLike match", `{"ArnNotLike":{"secretsmanager:SecretId":"arn:aws:secretsmanager:*:*:secret:db-*"}}`, ctxOf("secretsmanager:SecretId", secretARN), false, false},
		{"ArnNotLike no match", `{"ArnNotLike":{"secretsmanager:SecretId":"arn:aws:secretsmanager:*:*:secret:app-*"}}`, ctxOf("secretsmanager:SecretId", secretARN), true, false},
		{"ArnNotLike missing", `{"ArnNotLike":{"secretsmanager:SecretId":"arn:*:*:*:*:*"}}`, nil, true, false},
		{"ArnNotEquals equal", `{"ArnNotEquals":{"secretsmanager:SecretId":"` + secretARN + `"}}`, ctxOf("secretsmanager:SecretId", secretARN), false, false},
		{"ArnNotEquals missing", `{"ArnNotEquals":{"secretsmanager:SecretId":"` + secretARN + `"}}`, nil, true, false},
		{"ArnNotEquals request not an ARN", `{"ArnNotEquals":{"secretsmanager:SecretId":"` + secretARN + `"}}`, ctxOf("secretsmanager:SecretId", "db"), false, false},
		{"ArnLike policy value not an ARN", `{"ArnLike":{"secretsmanager:SecretId":"*"}}`, ctxOf("secretsmanager:SecretId", secretARN), false, true},

		// Null.
		{"Null true, absent", `{"Null":{"aws:TagKeys":"true"}}`, nil, true, false},
		{"Null true, present", `{"Null":{"aws:TagKeys":"true"}}`, ctxOf("aws:TagKeys", "a"), false, false},
		{"Null true, no values", `{"Null":{"aws:TagKeys":true}}`, ctxOf("aws:TagKeys"), true, false},
		{"Null false, present", `{"Null":{"aws:TagKeys":"false"}}`, ctxOf("aws:TagKeys", "a"), true, false},
		{"Null false, absent", `{"Null":{"aws:TagKeys":false}}`, nil, false, false},
		{"Null false, derived key", `{"Null":{"aws:username":false}}`, nil, true, false},
		{"Null unreadable", `{"Null":{"aws:TagKeys":"maybe"}}`, nil, false, true},

		// Policy variables in condition values.
		{"variable", `{"StringEquals":{"secretsmanager:ResourceTag/owner":"${aws:username}"}}`, ctxOf("secretsmanager:ResourceTag/owner", "alice"), true, false},
		{"variable, other value", `{"StringEquals":{"secretsmanager:ResourceTag/owner":"${aws:username}"}}`, ctxOf("secretsmanager:ResourceTag/owner", "bob"), false, false},
		{"variable inside text", `{"StringLike":{"secretsmanager:Name":"${aws:username}/*"}}`, ctxOf("secretsmanager:Name", "alice/db"), true, false},
		{"variable name case-insensitive", `{"StringEquals":{"secretsmanager:ResourceTag/team":"${AWS:PrincipalTag/Team}"}}`, Context{"secretsmanager:resourcetag/team": {"red"}, "aws:principaltag/team": {"red"}}, true, false},
		{"variable absent", `{"StringEquals":{"secretsmanager:ResourceTag/team":"${aws:PrincipalTag/team}"}}`, ctxOf("secretsmanager:ResourceTag/team", ""), false, false},
		{"variable absent, negated", `{"StringNotEquals":{"secretsmanager:ResourceTag/team":"${aws:PrincipalTag/team}"}}`, ctxOf("secretsmanager:ResourceTag/team", "red"), true, false},
		{"variable multi-valued", `{"StringEquals":{"secretsmanager:Name":"${aws:TagKeys}"}}`, Context{"secretsmanager:name": {"a"}, "aws:tagkeys": {"a", "b"}}, false, false},
		{"variable value is literal in Like", `{"StringLike":{"secretsmanager:Name":"${aws:PrincipalTag/p}"}}`, Context{"secretsmanager:name": {"db"}, "aws:principaltag/p": {"*"}}, false, false},
		{"escapes", `{"StringEquals":{"secretsmanager:Name":"${$}{aws:username}${*}${?}"}}`, ctxOf("secretsmanager:Name", "${aws:username}*?"), true, false},
		{"escaped star is no wildcard", `{"StringLike":{"secretsmanager:Name":"a${*}"}}`, ctxOf("secretsmanager:Name", "ab"), false, false},
		{"escaped star matches a star", `{"StringLike":{"secretsmanager:Name":"a${*}*"}}`, ctxOf("secretsmanager:Name", "a*b"), true, false},
		{"unclosed variable is text", `{"StringEquals":{"secretsmanager:Name":"${aws:username"}}`, ctxOf("secretsmanager:Name", "${aws:username"), true, false},
		{"variable in a number", `{"NumericLessThanEquals":{"secretsmanager:RecoveryWindowInDays":"${coffer:MaxWindow}"}}`, Context{"secretsmanager:recoverywindowindays": {"7"}, "coffer:maxwindow": {"10"}}, true, false},
		{"variable in a number, unreadable", `{"NumericLessThanEquals":{"secretsmanager:RecoveryWindowInDays":"${coffer:MaxWindow}"}}`, Context{"secretsmanager:recoverywindowindays": {"7"}, "coffer:maxwindow": {"x"}}, false, false},
		{"variable in an ARN", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/${aws:username}"}}`, nil, true, false},
		{"variable in an IP", `{"IpAddress":{"aws:SourceIp":"${coffer:Net}"}}`, Context{"aws:sourceip": {"10.1.1.1"}, "coffer:net": {"10.0.0.0/8"}}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":` + tc.cond + `}}`
			p, problems, err := ParseIdentityPolicy(doc)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(problems) > 0; got != tc.problem {
				t.Fatalf("problems %q, want some: %v", problems, tc.problem)
			}
			req := Request{Principal: alice, Action: getValue, Resource: secretARN, Context: tc.ctx}
			if got := Evaluate(req, []*Policy{p}, nil) == Allow; got != tc.want {
				t.Fatalf("condition holds = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestVersion2008 checks that variables are text in the old language.
func TestVersion2008(t *testing.T) {
	doc := `{"Version":"2008-10-17","Statement":[
		{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"},
		{"Effect":"Allow","Action":"secretsmanager:DescribeSecret","Resource":"*","Condition":{"StringEquals":{"secretsmanager:Name":"${aws:username}"}}}]}`
	p := mustIdentity(t, doc)
	ev := func(action, resource string, ctx Context) Decision {
		return Evaluate(Request{Principal: alice, Action: action, Resource: resource, Context: ctx}, []*Policy{p}, nil)
	}
	if d := ev(getValue, "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice/db-AbCdEf", nil); d != ImplicitDeny {
		t.Errorf("resource with a variable: %s", decisionName(d))
	}
	if d := ev(getValue, "arn:aws:secretsmanager:us-east-1:123456789012:secret:${aws:username}/db", nil); d != Allow {
		t.Errorf("literal resource: %s", decisionName(d))
	}
	if d := ev("secretsmanager:DescribeSecret", secretARN, ctxOf("secretsmanager:Name", "alice")); d != ImplicitDeny {
		t.Errorf("condition with a variable: %s", decisionName(d))
	}
	if d := ev("secretsmanager:DescribeSecret", secretARN, ctxOf("secretsmanager:Name", "${aws:username}")); d != Allow {
		t.Errorf("literal condition value: %s", decisionName(d))
	}
	// No Version at all is 2008-10-17 too.
	p = mustIdentity(t, `{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}}`)
	if d := ev(getValue, "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice/db-AbCdEf", nil); d != ImplicitDeny {
		t.Errorf("no Version: %s", decisionName(d))
	}
}

// TestStatementMatching covers Action, Resource and their Not forms in
// identity policies, and resource-policy variables.
func TestStatementMatching(t *testing.T) {
	const aliceDB = "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice/db-AbCdEf"
	const bobDB = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bob/db-AbCdEf"
	tests := []struct {
		name      string
		statement string
		who       Principal
		action    string
		resource  string
		want      Decision
	}{
		{"action exact", `{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}`, alice, getValue, secretARN, Allow},
		{"action other", `{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}`, alice, "secretsmanager:PutSecretValue", secretARN, ImplicitDeny},
		{"action case-insensitive", `{"Effect":"Allow","Action":"SecretsManager:getSECRETvalue","Resource":"*"}`, alice, getValue, secretARN, Allow},
		{"action star", `{"Effect":"Allow","Action":"secretsmanager:Get*","Resource":"*"}`, alice, getValue, secretARN, Allow},
		{"action question mark", `{"Effect":"Allow","Action":"secretsmanager:?etSecretValue","Resource":"*"}`, alice, getValue, secretARN, Allow},
		{"action list", `{"Effect":"Allow","Action":["secretsmanager:DescribeSecret","secretsmanager:GetSecretValue"],"Resource":"*"}`, alice, getValue, secretARN, Allow},
		{"action star alone", `{"Effect":"Allow","Action":"*","Resource":"*"}`, alice, "coffer:CreateUser", "*", Allow},
		{"coffer action", `{"Effect":"Allow","Action":"coffer:*","Resource":"*"}`, alice, "coffer:CreateUser", "*", Allow},
		{"coffer action is not secretsmanager", `{"Effect":"Allow","Action":"coffer:*","Resource":"*"}`, alice, getValue, secretARN, ImplicitDeny},
		{"NotAction allows the rest", `{"Effect":"Allow","NotAction":"secretsmanager:Delete*","Resource":"*"}`, alice, getValue, secretARN, Allow},
		{"NotAction spares the named", `{"Effect":"Allow","NotAction":"secretsmanager:Delete*","Resource":"*"}`, alice, "secretsmanager:DeleteSecret", secretARN, ImplicitDeny},
		{"NotAction deny", `{"Effect":"Deny","NotAction":"secretsmanager:Describe*","Resource":"*"}`, alice, getValue, secretARN, DenyIdentity},
		{"resource pattern", `{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:123456789012:secret:db-??????"}`, alice, getValue, secretARN, Allow},
		{"resource pattern, too short", `{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:123456789012:secret:db-?????"}`, alice, getValue, secretARN, ImplicitDeny},
		{"resource case-sensitive", `{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:123456789012:secret:DB-*"}`, alice, getValue, secretARN, ImplicitDeny},
		{"resource ARN pattern does not cover *", `{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:*"}`, alice, "secretsmanager:ListSecrets", "*", ImplicitDeny},
		{"resource * covers *", `{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}`, alice, "secretsmanager:ListSecrets", "*", Allow},
		{"NotResource allows the rest", `{"Effect":"Allow","Action":"*","NotResource":"arn:aws:secretsmanager:*:*:secret:prod/*"}`, alice, getValue, secretARN, Allow},
		{"NotResource spares the named", `{"Effect":"Allow","Action":"*","NotResource":"arn:aws:secretsmanager:*:*:secret:db-*"}`, alice, getValue, secretARN, ImplicitDeny},
		{"NotResource deny", `{"Effect":"Deny","Action":"*","NotResource":"arn:aws:secretsmanager:*:*:secret:app-*"}`, alice, getValue, secretARN, DenyIdentity},
		{"resource variable", `{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}`, alice, getValue, aliceDB, Allow},
		{"resource variable, other user", `{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}`, alice, getValue, bobDB, ImplicitDeny},
		{"resource variable absent", `{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}`, Principal{ARN: alice.ARN, Account: testAccount, Type: "IAMUser"}, getValue, aliceDB, ImplicitDeny},
		{"resource variable absent, NotResource", `{"Effect":"Deny","Action":"*","NotResource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}`, Principal{ARN: alice.ARN, Account: testAccount, Type: "IAMUser"}, getValue, aliceDB, DenyIdentity},
		{"resource escape", `{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:a${*}"}`, alice, getValue, "arn:aws:secretsmanager:us-east-1:123456789012:secret:ab", ImplicitDeny},
		{"resource escape, literal star", `{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:a${*}"}`, alice, getValue, "arn:aws:secretsmanager:us-east-1:123456789012:secret:a*", Allow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustIdentity(t, `{"Version":"2012-10-17","Statement":[`+tc.statement+`]}`)
			req := Request{Principal: tc.who, Action: tc.action, Resource: tc.resource}
			if got := Evaluate(req, []*Policy{p}, nil); got != tc.want {
				t.Fatalf("Evaluate = %s, want %s", decisionName(got), decisionName(tc.want))
			}
		})
	}
}

// TestDecision covers how identity and resource policies combine (§7.3).
func TestDecision(t *testing.T) {
	idp := func(statements string) string { return `{"Version":"2012-10-17","Statement":[` + statements + `]}` }
	rp := idp
	const (
		allowAll     = `{"Effect":"Allow","Action":"*","Resource":"*"}`
		allowGet     = `{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}`
		denyGet      = `{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*"}`
		rpDenyAll    = `{"Effect":"Deny","Principal":"*","Action":"secretsmanager:*","Resource":"*"}`
		rpAllowStar  = `{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}`
		rpAllowAWS   = `{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"secretsmanager:GetSecretValue"}`
		rpAllowAlice = `{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"secretsmanager:GetSecretValue"}`
		rpAllowAcct  = `{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"secretsmanager:GetSecretValue"}`
		rpAllowRoot  = `{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:GetSecretValue"}`
		rpAllowOther = `{"Effect":"Allow","Principal":{"AWS":"210987654321"},"Action":"secretsmanager:GetSecretValue"}`
		rpAllowCarol = `{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::210987654321:user/carol"},"Action":"secretsmanager:GetSecretValue"}`
		rpAllowSvc   = `{"Effect":"Allow","Principal":{"Service":"rotation.coffer"},"Action":"secretsmanager:GetSecretValue"}`
	)
	tests := []struct {
		name     string
		who      Principal
		action   string
		resource string
		identity []string
		policy   string
		want     Decision
	}{
		{"nothing", alice, getValue, secretARN, nil, "", ImplicitDeny},
		{"identity allows", alice, getValue, secretARN, []string{idp(allowGet)}, "", Allow},
		{"second identity policy allows", alice, getValue, secretARN, []string{idp(`{"Effect":"Allow","Action":"secretsmanager:Describe*","Resource":"*"}`), idp(allowGet)}, "", Allow},
		{"identity deny beats identity allow", alice, getValue, secretARN, []string{idp(allowAll), idp(denyGet)}, "", DenyIdentity},
		{"identity deny in the same policy", alice, getValue, secretARN, []string{idp(allowAll + "," + denyGet)}, "", DenyIdentity},
		{"resource deny beats identity allow", alice, getValue, secretARN, []string{idp(allowAll)}, rp(rpDenyAll), DenyResource},
		{"resource deny beats resource allow", alice, getValue, secretARN, nil, rp(rpAllowAlice + "," + rpDenyAll), DenyResource},
		{"identity deny reported before resource deny", alice, getValue, secretARN, []string{idp(denyGet)}, rp(rpDenyAll), DenyIdentity},
		{"resource allows the user", alice, getValue, secretARN, nil, rp(rpAllowAlice), Allow},
		{"resource allows another user", bob, getValue, secretARN, nil, rp(rpAllowAlice), ImplicitDeny},
		{"resource allows *", bob, getValue, secretARN, nil, rp(rpAllowStar), Allow},
		{"resource allows AWS *", bob, getValue, secretARN, nil, rp(rpAllowAWS), Allow},
		{"resource allows another action", alice, "secretsmanager:PutSecretValue", secretARN, nil, rp(rpAllowAlice), ImplicitDeny},
		{"account principal delegates: no identity", alice, getValue, secretARN, nil, rp(rpAllowAcct), ImplicitDeny},
		{"account principal as root ARN delegates", alice, getValue, secretARN, nil, rp(rpAllowRoot), ImplicitDeny},
		{"account principal delegates: identity allows", alice, getValue, secretARN, []string{idp(allowGet)}, rp(rpAllowAcct), Allow},
		{"account principal and the user", alice, getValue, secretARN, nil, rp(`{"Effect":"Allow","Principal":{"AWS":["123456789012","arn:aws:iam::123456789012:user/alice"]},"Action":"*"}`), Allow},
		{"account principal deny applies", alice, getValue, secretARN, []string{idp(allowAll)}, rp(`{"Effect":"Deny","Principal":{"AWS":"123456789012"},"Action":"*"}`), DenyResource},
		{"resource statement on another secret", alice, getValue, secretARN, []string{idp(allowAll)}, rp(`{"Effect":"Deny","Principal":"*","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:other-*"}`), Allow},
		{"resource statement on this secret", alice, getValue, secretARN, []string{idp(allowAll)}, rp(`{"Effect":"Deny","Principal":"*","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:db-*"}`), DenyResource},
		{"resource NotResource *", alice, getValue, secretARN, []string{idp(allowAll)}, rp(`{"Effect":"Deny","Principal":"*","Action":"*","NotResource":"*"}`), Allow},
		{"resource NotAction", alice, getValue, secretARN, []string{idp(allowAll)}, rp(`{"Effect":"Deny","Principal":"*","NotAction":"secretsmanager:Describe*"}`), DenyResource},
		{"NotPrincipal allow covers others", alice, getValue, secretARN, nil, rp(`{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"*"}`), Allow},
		{"NotPrincipal allow spares the named", bob, getValue, secretARN, nil, rp(`{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"*"}`), ImplicitDeny},
		{"NotPrincipal deny covers others", bob, getValue, secretARN, []string{idp(allowAll)}, rp(`{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"*"}`), DenyResource},
		{"NotPrincipal deny spares the named", alice, getValue, secretARN, []string{idp(allowAll)}, rp(`{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"*"}`), Allow},
		{"NotPrincipal deny spares the account", alice, getValue, secretARN, []string{idp(allowAll)}, rp(`{"Effect":"Deny","NotPrincipal":{"AWS":"123456789012"},"Action":"*"}`), Allow},
		{"conditional resource allow", alice, getValue, secretARN, nil, rp(`{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":"123456789012"}}}`), Allow},
		{"conditional resource allow, other account", carol, getValue, secretARN, []string{idp(allowAll)}, rp(`{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":"123456789012"}}}`), ImplicitDenyResource},
		{"no resource: resource policy ignored", alice, "secretsmanager:ListSecrets", "*", []string{idp(allowAll)}, rp(rpDenyAll), Allow},
		{"no resource: identity must allow", alice, "secretsmanager:ListSecrets", "*", nil, rp(`{"Effect":"Allow","Principal":"*","Action":"*"}`), ImplicitDeny},

		// Cross-account.
		{"cross: identity only", carol, getValue, secretARN, []string{idp(allowGet)}, "", ImplicitDenyResource},
		{"cross: identity only, other resource policy", carol, getValue, secretARN, []string{idp(allowGet)}, rp(rpAllowAlice), ImplicitDenyResource},
		{"cross: resource only", carol, getValue, secretARN, nil, rp(rpAllowCarol), ImplicitDeny},
		{"cross: both", carol, getValue, secretARN, []string{idp(allowGet)}, rp(rpAllowCarol), Allow},
		{"cross: both, via the caller's account", carol, getValue, secretARN, []string{idp(allowGet)}, rp(rpAllowOther), Allow},
		{"cross: the secret's account principal is not the caller", carol, getValue, secretARN, []string{idp(allowGet)}, rp(rpAllowAcct), ImplicitDenyResource},
		{"cross: resource deny", carol, getValue, secretARN, []string{idp(allowGet)}, rp(rpAllowCarol + "," + rpDenyAll), DenyResource},
		{"cross: identity deny", carol, getValue, secretARN, []string{idp(allowGet + "," + denyGet)}, rp(rpAllowCarol), DenyIdentity},
		{"cross: * needs identity too", carol, getValue, secretARN, nil, rp(rpAllowStar), ImplicitDeny},

		// Root.
		{"root: no policies", root, getValue, secretARN, nil, "", Allow},
		{"root: identity policies not consulted", root, getValue, secretARN, []string{idp(denyGet)}, "", Allow},
		{"root: resource deny", root, getValue, secretARN, nil, rp(rpDenyAll), DenyResource},
		{"root: account principal deny", root, getValue, secretARN, nil, rp(`{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"*"}`), DenyResource},
		{"root: may always GetResourcePolicy", root, "secretsmanager:GetResourcePolicy", secretARN, nil, rp(rpDenyAll), Allow},
		{"root: may always PutResourcePolicy", root, "secretsmanager:PutResourcePolicy", secretARN, nil, rp(rpDenyAll), Allow},
		{"root: may always DeleteResourcePolicy", root, "secretsmanager:DeleteResourcePolicy", secretARN, nil, rp(rpDenyAll), Allow},
		{"root: may always DescribeSecret", root, "secretsmanager:describesecret", secretARN, nil, rp(rpDenyAll), Allow},
		{"root: ListSecrets", root, "secretsmanager:ListSecrets", "*", nil, "", Allow},
		{"root of another account: nothing", otherRt, getValue, secretARN, nil, "", ImplicitDenyResource},
		{"root of another account: its account allowed", otherRt, getValue, secretARN, nil, rp(rpAllowOther), Allow},
		{"root of another account: no repair", otherRt, "secretsmanager:PutResourcePolicy", secretARN, nil, rp(`{"Effect":"Allow","Principal":{"AWS":"210987654321"},"Action":"*"},` + rpDenyAll), DenyResource},

		// Service principals.
		{"service allowed", rotator, getValue, secretARN, nil, rp(rpAllowSvc), Allow},
		{"service not named", Principal{Type: "AWSService", Service: "other.coffer"}, getValue, secretARN, nil, rp(rpAllowSvc), ImplicitDeny},
		{"service matches *", rotator, getValue, secretARN, nil, rp(rpAllowStar), Allow},
		{"service is not an account member", Principal{Type: "AWSService", Service: "rotation.coffer", Account: testAccount}, getValue, secretARN, []string{idp(allowAll)}, rp(rpAllowAcct), Allow},
		{"user is not a service", alice, getValue, secretARN, nil, rp(rpAllowSvc), ImplicitDeny},
		{"service denied", rotator, getValue, secretARN, nil, rp(rpAllowSvc + `,{"Effect":"Deny","Principal":{"Service":"rotation.coffer"},"Action":"*"}`), DenyResource},
		{"service has no aws:username", rotator, getValue, secretARN, nil, rp(`{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"Null":{"aws:username":"true"},"StringEquals":{"aws:PrincipalType":"AWSService"}}}`), Allow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var identity []*Policy
			for _, doc := range tc.identity {
				identity = append(identity, mustIdentity(t, doc))
			}
			var resource *Policy
			if tc.policy != "" {
				resource = mustResource(t, tc.policy)
			}
			req := Request{Principal: tc.who, Action: tc.action, Resource: tc.resource}
			if got := Evaluate(req, identity, resource); got != tc.want {
				t.Fatalf("Evaluate = %s, want %s", decisionName(got), decisionName(tc.want))
			}
		})
	}
}

func TestEvaluate_ContextUnchanged(t *testing.T) {
	p := mustIdentity(t, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}*","Condition":{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/alice"}}}}`)
	ctx := ctxOf("aws:SourceIp", "10.0.0.1")
	Evaluate(Request{Principal: alice, Action: getValue, Resource: secretARN, Context: ctx}, []*Policy{p}, nil)
	if len(ctx) != 1 {
		t.Fatalf("Evaluate changed the context: %v", ctx)
	}
}

// TestEvaluate_HandBuilt: a Policy not made by a parser is prepared on the
// fly; an unknown operator makes its statement not match.
func TestEvaluate_HandBuilt(t *testing.T) {
	p := &Policy{Version: "2012-10-17", Statements: []Statement{
		{Effect: "Allow", Actions: []string{"secretsmanager:*"}, Resources: []string{"arn:aws:secretsmanager:*:*:secret:${aws:username}*"}},
		{Effect: "Allow", Actions: []string{"*"}, Resources: []string{"*"}, Condition: map[string]map[string][]string{"StringSortOf": {"a": {"b"}}}},
		{Effect: "Deny", Actions: []string{"*"}, Resources: []string{"*"}, Condition: map[string]map[string][]string{"ForAnyValue:ForAllValues:StringEquals": {"aws:username": {"alice"}}}},
	}}
	req := Request{Principal: alice, Action: getValue, Resource: "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice-AbCdEf"}
	if d := Evaluate(req, []*Policy{p}, nil); d != Allow {
		t.Errorf("Evaluate = %s", decisionName(d))
	}
	req.Resource = secretARN
	if d := Evaluate(req, []*Policy{p}, nil); d != ImplicitDeny {
		t.Errorf("unknown operator: Evaluate = %s", decisionName(d))
	}
	if d := Evaluate(req, []*Policy{nil, {Statements: []Statement{{Effect: "allow", Actions: []string{"*"}, Resources: []string{"*"}}}}}, nil); d != ImplicitDeny {
		t.Errorf("bad Effect: Evaluate = %s", decisionName(d))
	}
}

func TestEvaluate_Concurrent(t *testing.T) {
	p := mustIdentity(t, benchIdentity)
	rp := mustResource(t, benchResource)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				who := alice
				if (g+i)%2 == 1 {
					who = bob
				}
				ctx := ctxOf("aws:SourceIp", "10.1.2.3")
				d := Evaluate(Request{Principal: who, Action: getValue, Resource: benchSecret, Context: ctx}, []*Policy{p}, rp)
				if d != Allow {
					t.Errorf("Evaluate = %s", decisionName(d))
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestDecision_Message(t *testing.T) {
	const arn = "arn:aws:iam::123456789012:user/alice"
	get := Request{Principal: alice, Action: getValue, Resource: secretARN}
	list := Request{Principal: alice, Action: "secretsmanager:ListSecrets", Resource: "*"}
	tests := []struct {
		d    Decision
		req  Request
		sent string
		want string
	}{
		{Allow, get, "db", ""},
		{ImplicitDeny, get, "db", "User: " + arn + " is not authorized to perform: secretsmanager:GetSecretValue on resource: db because no identity-based policy allows the secretsmanager:GetSecretValue action"},
		{ImplicitDeny, list, "", "User: " + arn + " is not authorized to perform: secretsmanager:ListSecrets because no identity-based policy allows the secretsmanager:ListSecrets action"},
		{DenyIdentity, get, secretARN, "User: " + arn + " is not authorized to perform: secretsmanager:GetSecretValue on resource: " + secretARN + " with an explicit deny in an identity-based policy"},
		{DenyIdentity, list, "", "User: " + arn + " is not authorized to perform: secretsmanager:ListSecrets with an explicit deny in an identity-based policy"},
		{DenyResource, get, "db", "User: " + arn + " is not authorized to perform: secretsmanager:GetSecretValue on resource: db with an explicit deny in a resource-based policy"},
		{ImplicitDenyResource, get, "db", "User: " + arn + " is not authorized to perform: secretsmanager:GetSecretValue on resource: db because no resource-based policy allows the secretsmanager:GetSecretValue action"},
		{ImplicitDeny, Request{Principal: rotator, Action: getValue}, "db", "User: rotation.coffer is not authorized to perform: secretsmanager:GetSecretValue on resource: db because no identity-based policy allows the secretsmanager:GetSecretValue action"},
	}
	for _, tc := range tests {
		if got := tc.d.Message(tc.req, tc.sent); got != tc.want {
			t.Errorf("%s.Message:\n got %q\nwant %q", decisionName(tc.d), got, tc.want)
		}
	}
	// The cross-account ending comes from Evaluate itself.
	p := mustIdentity(t, `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`)
	req := Request{Principal: carol, Action: getValue, Resource: secretARN}
	if got := Evaluate(req, []*Policy{p}, nil).Message(req, secretARN); !strings.HasSuffix(got, "because no resource-based policy allows the secretsmanager:GetSecretValue action") {
		t.Errorf("cross-account message %q", got)
	}
}

func TestContext(t *testing.T) {
	c := Context{}
	c.Set("AWS:SourceIp", "10.0.0.1", "10.0.0.2")
	if v, ok := c.Get("aws:sourceip"); !ok || len(v) != 2 || v[0] != "10.0.0.1" {
		t.Fatalf("Get = %q %v", v, ok)
	}
	if v, ok := c.Get("Aws:SOURCEIP"); !ok || len(v) != 2 {
		t.Fatalf("Get = %q %v", v, ok)
	}
	c.Set("aws:TagKeys", "Owner")
	if v, _ := c.Get("aws:tagkeys"); v[0] != "Owner" {
		t.Fatalf("values changed: %q", v)
	}
	if _, ok := c.Get("aws:username"); ok {
		t.Fatal("absent key found")
	}
}

func TestParseIdentityPolicy(t *testing.T) {
	valid := []struct{ name, doc string }{
		{"secretsmanager and coffer actions", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["secretsmanager:Get*","coffer:CreateUser","Coffer:*"],"Resource":"*"}]}`},
		{"star action", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}}`},
		{"NotAction and NotResource", `{"Statement":{"Effect":"Deny","NotAction":"secretsmanager:Describe*","NotResource":["arn:aws:secretsmanager:*:*:secret:x*"]}}`},
		{"conditions", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]},"DateLessThan":{"aws:CurrentTime":"2030-01-01"},"NumericLessThan":{"secretsmanager:RecoveryWindowInDays":"${coffer:max}"},"Null":{"aws:TagKeys":true}}}}`},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) { mustIdentity(t, tc.doc) })
	}
	for _, doc := range []string{``, `[`, `null`, `{"Statement":[]} x`} {
		var nj *ErrNotJSON
		if _, _, err := ParseIdentityPolicy(doc); err == nil || !asNotJSON(err, &nj) {
			t.Errorf("ParseIdentityPolicy(%q) = %v, want ErrNotJSON", doc, err)
		}
	}
	stmt := func(body string) string { return `{"Version":"2012-10-17","Statement":[` + body + `]}` }
	invalid := []struct{ name, doc, problem string }{
		{"Principal", stmt(`{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}`), "must not have a Principal"},
		{"NotPrincipal", stmt(`{"Effect":"Allow","NotPrincipal":{"AWS":"123456789012"},"Action":"*","Resource":"*"}`), "must not have a Principal"},
		{"no Resource", stmt(`{"Effect":"Allow","Action":"*"}`), "no Resource"},
		{"Resource and NotResource", stmt(`{"Effect":"Allow","Action":"*","Resource":"*","NotResource":"*"}`), "not both"},
		{"resource not an ARN", stmt(`{"Effect":"Allow","Action":"*","Resource":"db"}`), `"db"`},
		{"other service", stmt(`{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}`), `"s3:GetObject"`},
		{"no Action", stmt(`{"Effect":"Allow","Resource":"*"}`), "no Action"},
		{"bad Effect", stmt(`{"Effect":"Permit","Action":"*","Resource":"*"}`), "Effect"},
		{"unknown operator", stmt(`{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringSortOf":{"a":"b"}}}`), `"StringSortOf"`},
		{"two set prefixes", stmt(`{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAnyValue:ForAllValues:StringEquals":{"a":"b"}}}`), "unknown condition operator"},
		{"NullIfExists", stmt(`{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NullIfExists":{"a":"true"}}}`), "unknown condition operator"},
		{"bad CIDR", stmt(`{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/40"}}}`), `"10.0.0.0/40"`},
		{"bad number", stmt(`{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"k":"ten"}}}`), `"ten"`},
		{"bad date", stmt(`{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"k":"soon"}}}`), `"soon"`},
		{"bad ARN", stmt(`{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"ArnLike":{"k":"arn:aws:iam"}}}`), `"arn:aws:iam"`},
		{"unknown element", stmt(`{"Effect":"Allow","Action":"*","Resource":"*","Principals":"*"}`), `"Principals"`},
		{"bad Version", `{"Version":"2012-10-18","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`, "Version"},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			_, problems, err := ParseIdentityPolicy(tc.doc)
			if err != nil {
				t.Fatalf("ParseIdentityPolicy: %v", err)
			}
			if !strings.Contains(strings.Join(problems, " | "), tc.problem) {
				t.Fatalf("problems %q, want one mentioning %s", problems, tc.problem)
			}
		})
	}
	// Resource policies keep their rules: no coffer actions, and condition
	// values are not read at parse time.
	_, problems, _ := ParsePolicy(`{"Statement":{"Effect":"Allow","Principal":"*","Action":"coffer:CreateUser"}}`)
	if len(problems) == 0 {
		t.Error("ParsePolicy accepted a coffer action")
	}
	mustResource(t, `{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"IpAddress":{"aws:SourceIp":"nowhere"}}}}`)
}

func asNotJSON(err error, target **ErrNotJSON) bool {
	nj, ok := err.(*ErrNotJSON)
	*target = nj
	return ok
}

func TestArnAccount(t *testing.T) {
	for s, want := range map[string]string{
		secretARN: testAccount, "*": "", "": "", "arn:aws:s3:::bucket": "", "arn:aws:iam::123456789012:root": testAccount,
		"arn:aws:secretsmanager:r:a": "", "arn:aws:secretsmanager:r:a:": "a",
	} {
		if got := arnAccount(s); got != want {
			t.Errorf("arnAccount(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		fold, want bool
	}{
		{"secretsmanager:get*", "secretsmanager:GetSecretValue", true, true},
		{"secretsmanager:get*", "secretsmanager:GetSecretValue", false, false},
		{"a?c", "aéc", false, true},
		{"*é", "xÉ", true, true},
		{"k*", "\u212a", true, true}, // the Kelvin sign folds to k and is 3 bytes long
		{"*a*b*c*", "xxaxxbxxcxx", false, true},
		{"*a*b*c*", "xxaxxcxxbxx", false, false},
		{"a*b", "a", false, false},
	} {
		if got := globMatch(nil, tokenize(tc.pattern, true, false), tc.s, tc.fold); got != tc.want {
			t.Errorf("globMatch(%q, %q, fold=%v) = %v", tc.pattern, tc.s, tc.fold, got)
		}
	}
}

const (
	benchSecret   = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf"
	benchIdentity = `{"Version":"2012-10-17","Statement":[
		{"Sid":"Read","Effect":"Allow","Action":["secretsmanager:GetSecretValue","secretsmanager:DescribeSecret"],
		 "Resource":"arn:aws:secretsmanager:*:123456789012:secret:app/*",
		 "Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]}}},
		{"Sid":"List","Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"},
		{"Sid":"NoDelete","Effect":"Deny","Action":"secretsmanager:DeleteSecret","Resource":"*"}]}`
	benchResource = `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"secretsmanager:GetSecretValue","Resource":"*"},
		{"Effect":"Deny","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}`
)

func BenchmarkEvaluate(b *testing.B) {
	p := mustIdentity(b, benchIdentity)
	rp := mustResource(b, benchResource)
	ctx := Context{}
	ctx.Set("aws:SourceIp", "10.1.2.3")
	ctx.Set("aws:SecureTransport", "true")
	req := Request{Principal: alice, Action: getValue, Resource: benchSecret, Context: ctx}
	identity := []*Policy{p}
	b.Run("identity", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if Evaluate(req, identity, nil) != Allow {
				b.Fatal("not allowed")
			}
		}
	})
	b.Run("identity+resource", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if Evaluate(req, identity, rp) != Allow {
				b.Fatal("not allowed")
			}
		}
	})
}

// TestTokenize_Long: a pattern full of unclosed ${ is read in linear time
// (a quadratic reading of this one would take many seconds).
func TestTokenize_Long(t *testing.T) {
	s := strings.Repeat("${$", 200000)
	toks := tokenize(s, true, true)
	if len(toks) != 1 || toks[0].text != s {
		t.Fatalf("got %d tokens", len(toks))
	}
	toks = tokenize("a${*}b${aws:UserName}${}*?${?}", true, true)
	want := []token{{tokLiteral, "a*b"}, {tokVar, "aws:username"}, {tokVar, ""}, {kind: tokStar}, {kind: tokOne}, {tokLiteral, "?"}}
	if len(toks) != len(want) {
		t.Fatalf("tokens %v", toks)
	}
	for i := range want {
		if toks[i] != want[i] {
			t.Fatalf("tokens %v, want %v", toks, want)
		}
	}
}

// BenchmarkEvaluate_TenByTen is a user with 10 policies of 10 statements
// each (issue 15's measure): the one statement that allows is the last of
// the last policy, so every statement is looked at; a third of them carry
// a condition on the request or the secret's tags.
//
//	go test -run '^$' -bench Evaluate_TenByTen -benchmem ./acl/
func BenchmarkEvaluate_TenByTen(b *testing.B) {
	var policies []*Policy
	for p := range 10 {
		var st []string
		for s := range 10 {
			cond := ""
			if s%3 == 0 && (p != 9 || s != 9) {
				cond = fmt.Sprintf(`,"Condition":{"StringEquals":{"aws:ResourceTag/team":"team-%d-%d"},"IpAddress":{"aws:SourceIp":["10.%d.0.0/16","192.168.%d.0/24"]}}`, p, s, p, s)
			}
			resource := fmt.Sprintf("arn:aws:secretsmanager:*:123456789012:secret:svc-%d-%d/*", p, s)
			if p == 9 && s == 9 {
				resource = "arn:aws:secretsmanager:*:123456789012:secret:app/*"
			}
			st = append(st, fmt.Sprintf(`{"Sid":"s%d","Effect":"Allow","Action":["secretsmanager:GetSecretValue","secretsmanager:DescribeSecret","secretsmanager:List*"],"Resource":%q%s}`, s, resource, cond))
		}
		policies = append(policies, mustIdentity(b, `{"Version":"2012-10-17","Statement":[`+strings.Join(st, ",")+`]}`))
	}
	ctx := Context{}
	ctx.Set("aws:SourceIp", "10.1.2.3")
	ctx.Set("aws:ResourceTag/team", "app")
	ctx.Set("secretsmanager:SecretId", benchSecret)
	req := Request{Principal: alice, Action: getValue, Resource: benchSecret, Context: ctx}
	b.ReportAllocs()
	for b.Loop() {
		if Evaluate(req, policies, nil) != Allow {
			b.Fatal("not allowed")
		}
	}
}
