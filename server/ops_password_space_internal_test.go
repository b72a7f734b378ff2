package server

import (
	"strings"
	"testing"

	"github.com/cofferhq/coffer/apierr"
)

// randomPassword with the space: one of the included types, required with
// the others, and counted by the too-short rule.
func TestRandomPassword_SpaceIsAType(t *testing.T) {
	classes := []string{classLower, classUpper, classDigits, classPunctuation, classSpace}
	for range 500 {
		pw, err := randomPassword(passwordOptions{length: 5, space: true, requireAll: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range classes {
			if len(pw) != 5 || !strings.ContainsAny(pw, c) {
				t.Fatalf("%q: want exactly one of each of the five types", pw)
			}
		}
	}
	for _, o := range []passwordOptions{
		{length: 4, space: true, requireAll: true},
		{length: 2, space: true, noUpper: true, noPunct: true, requireAll: true},
	} {
		_, err := randomPassword(o)
		if e, ok := apierr.As(err); !ok || e.Code != apierr.InvalidParameter || e.Message != apierr.MsgPasswordTooShort {
			t.Fatalf("%+v: %v, want too short", o, err)
		}
	}
	// Without the requirement the space is only in the pool.
	noSpace := 0
	for range 200 {
		pw, err := randomPassword(passwordOptions{length: 4, space: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(pw, " ") {
			noSpace++
		}
	}
	if noSpace == 0 {
		t.Fatal("every password has a space without RequireEachIncludedType")
	}
	if pw, err := randomPassword(passwordOptions{length: 1, space: true}); err != nil || len(pw) != 1 {
		t.Fatalf("length 1 without the requirement: %q %v", pw, err)
	}
	// ExcludeCharacters " " empties the space class: not a type any more.
	for range 100 {
		pw, err := randomPassword(passwordOptions{length: 4, space: true, exclude: " ", requireAll: true})
		if err != nil || strings.Contains(pw, " ") {
			t.Fatalf("space excluded: %q %v", pw, err)
		}
	}
}
