package server_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/server"
)

// GetRandomPassword with IncludeSpace through the AWS SDK for Go v2
// (shared/spec §4.14): the space is one of the included types, so with
// RequireEachIncludedType (the default) every password holds a space and
// the space counts towards the length the required types need.
func TestAPI_GetRandomPasswordIncludeSpace(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	const (
		lower = "abcdefghijklmnopqrstuvwxyz"
		upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		digit = "0123456789"
		punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
	)
	gen := func(t *testing.T, in *secretsmanager.GetRandomPasswordInput) string {
		t.Helper()
		out, err := a.any().GetRandomPassword(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.RandomPassword)
	}
	check := func(t *testing.T, pw string, n int, allowed string, required ...string) {
		t.Helper()
		if len(pw) != n {
			t.Fatalf("%q: length %d, want %d", pw, len(pw), n)
		}
		if i := strings.IndexFunc(pw, func(r rune) bool { return !strings.ContainsRune(allowed, r) }); i >= 0 {
			t.Fatalf("%q has %q, not in %q", pw, pw[i], allowed)
		}
		for _, c := range required {
			if !strings.ContainsAny(pw, c) {
				t.Fatalf("%q has no character of %q", pw, c)
			}
		}
	}

	t.Run("every password has a space", func(t *testing.T) {
		// Without the requirement, 32 characters drawn from 95 lack a
		// space about 7 times in 10.
		for range 100 {
			pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true)})
			check(t, pw, 32, lower+upper+digit+punct+" ", lower, upper, digit, punct, " ")
		}
	})
	t.Run("RequireEachIncludedType true explicitly", func(t *testing.T) {
		for range 50 {
			pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), RequireEachIncludedType: aws.Bool(true), PasswordLength: aws.Int64(12)})
			check(t, pw, 12, lower+upper+digit+punct+" ", lower, upper, digit, punct, " ")
		}
	})
	t.Run("shortest length: one of each of the five types", func(t *testing.T) {
		for range 100 {
			pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), PasswordLength: aws.Int64(5)})
			check(t, pw, 5, lower+upper+digit+punct+" ", lower, upper, digit, punct, " ")
		}
	})
	t.Run("with other types excluded", func(t *testing.T) {
		for range 50 {
			pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), ExcludePunctuation: aws.Bool(true),
				ExcludeUppercase: aws.Bool(true), PasswordLength: aws.Int64(3)})
			check(t, pw, 3, lower+digit+" ", lower, digit, " ")
		}
		pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), ExcludeLowercase: aws.Bool(true), ExcludeUppercase: aws.Bool(true),
			ExcludeNumbers: aws.Bool(true), ExcludePunctuation: aws.Bool(true), PasswordLength: aws.Int64(1)})
		if pw != " " {
			t.Fatalf("space only: %q", pw)
		}
	})
	t.Run("ExcludeCharacters removes the space type", func(t *testing.T) {
		// The space class is emptied, so it no longer counts: 4 is enough.
		for range 20 {
			pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), ExcludeCharacters: aws.String(" "), PasswordLength: aws.Int64(4)})
			check(t, pw, 4, lower+upper+digit+punct, lower, upper, digit, punct)
		}
	})
	t.Run("RequireEachIncludedType false: no space required", func(t *testing.T) {
		withSpace, without := 0, 0
		for range 60 {
			pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), RequireEachIncludedType: aws.Bool(false), PasswordLength: aws.Int64(8)})
			check(t, pw, 8, lower+upper+digit+punct+" ")
			if strings.Contains(pw, " ") {
				withSpace++
			} else {
				without++
			}
		}
		// 8 characters from 95 lack a space 92% of the time.
		if without == 0 {
			t.Fatalf("all %d passwords have a space: it is still required", withSpace)
		}
		pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), RequireEachIncludedType: aws.Bool(false), PasswordLength: aws.Int64(1)})
		check(t, pw, 1, lower+upper+digit+punct+" ")
	})
	t.Run("too short counts the space", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			in   *secretsmanager.GetRandomPasswordInput
		}{
			{"4 for 5 types", &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), PasswordLength: aws.Int64(4)}},
			{"1 for 5 types", &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), PasswordLength: aws.Int64(1)}},
			{"2 for lower, digits and space", &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), ExcludePunctuation: aws.Bool(true),
				ExcludeUppercase: aws.Bool(true), PasswordLength: aws.Int64(2)}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := a.any().GetRandomPassword(ctx, tc.in)
				wantAPIError(t, tc.name, err, apierr.InvalidParameter, server.MsgPasswordTooShort)
			})
		}
	})
}
