package server

import (
	"strings"
	"testing"
)

// Unit tests of the pieces behind GetRandomPassword that the SDK tests
// cannot see (LastAccessedDate's are in region/access_internal_test.go).

func TestUniform_NoBias(t *testing.T) {
	for _, n := range []int{1, 2, 7, 94} {
		const perBucket = 5000
		counts := make([]int, n)
		for range n * perBucket {
			x := uniform(n)
			if x < 0 || x >= n {
				t.Fatalf("uniform(%d) = %d", n, x)
			}
			counts[x]++
		}
		// Each count is binomial around perBucket; 6 standard deviations.
		for v, c := range counts {
			if d := c - perBucket; n > 1 && (d > 6*71 || d < -6*71) {
				t.Fatalf("uniform(%d): value %d drawn %d times, expected about %d", n, v, c, perBucket)
			}
		}
	}
}

func TestRandomPassword_Classes(t *testing.T) {
	all := classLower + classUpper + classDigits + classPunctuation
	if len(classPunctuation) != 32 {
		t.Fatalf("%d punctuation characters, want 32", len(classPunctuation))
	}
	// Every character of the union appears, so none is unreachable.
	seen := map[rune]bool{}
	pw, err := randomPassword(passwordOptions{length: 4096, requireAll: true, space: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range pw {
		seen[r] = true
	}
	for _, r := range all + " " {
		if !seen[r] {
			t.Fatalf("%q never drawn in 4096 characters", r)
		}
	}
	// Required types with the shortest possible length: one of each.
	for range 200 {
		pw, err := randomPassword(passwordOptions{length: 4, requireAll: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, class := range []string{classLower, classUpper, classDigits, classPunctuation} {
			if !strings.ContainsAny(pw, class) {
				t.Fatalf("%q lacks a character of %q", pw, class)
			}
		}
	}
	// ExcludeCharacters with characters outside every class is harmless.
	if _, err := randomPassword(passwordOptions{length: 8, exclude: "é€\x00", requireAll: true}); err != nil {
		t.Fatal(err)
	}
	// Space alone.
	pw, err = randomPassword(passwordOptions{length: 3, noLower: true, noUpper: true, noDigits: true, noPunct: true, space: true, requireAll: true})
	if err != nil || pw != "   " {
		t.Fatalf("space only: %q %v", pw, err)
	}
}
