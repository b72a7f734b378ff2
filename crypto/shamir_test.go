package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestGF_MulMatchesFIPS197(t *testing.T) {
	// FIPS-197 §4.2 and §4.2.1 (xtime).
	for _, tc := range []struct {
		name    string
		a, b, p byte
	}{
		{"0x57 times 0x83 is 0xc1", 0x57, 0x83, 0xc1},
		{"0x57 times 0x13 is 0xfe", 0x57, 0x13, 0xfe},
		{"0x57 times 0x02 is 0xae", 0x57, 0x02, 0xae},
		{"0x57 times 0x04 is 0x47", 0x57, 0x04, 0x47},
		{"0x57 times 0x08 is 0x8e", 0x57, 0x08, 0x8e},
		{"0x57 times 0x10 is 0x07", 0x57, 0x10, 0x07},
		{"anything times 0x01 is itself", 0xa7, 0x01, 0xa7},
		{"anything times 0x00 is 0x00", 0xa7, 0x00, 0x00},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := gfMul(tc.a, tc.b); got != tc.p {
				t.Fatalf("gfMul(%#02x, %#02x) = %#02x, want %#02x", tc.a, tc.b, got, tc.p)
			}
		})
	}
}

func TestGF_Inverse(t *testing.T) {
	t.Run("the inverse of 0x53 is 0xca, as in the AES S-box derivation", func(t *testing.T) {
		if got := gfInv(0x53); got != 0xca {
			t.Fatalf("gfInv(0x53) = %#02x, want 0xca", got)
		}
	})
	t.Run("every nonzero element times its inverse is 1", func(t *testing.T) {
		for a := 1; a < 256; a++ {
			if p := gfMul(byte(a), gfInv(byte(a))); p != 1 {
				t.Errorf("%#02x · gfInv(%#02x) = %#02x, want 1", a, a, p)
			}
		}
	})
}

func TestGF_MulIsCommutative(t *testing.T) {
	for a := range 256 {
		for b := range 256 {
			if ab, ba := gfMul(byte(a), byte(b)), gfMul(byte(b), byte(a)); ab != ba {
				t.Fatalf("%#02x·%#02x = %#02x but %#02x·%#02x = %#02x", a, b, ab, b, a, ba)
			}
		}
	}
}

// shamirFixedCoeffs returns a coefficient source for splitWith that hands
// out rows in order, one per secret byte.
func shamirFixedCoeffs(t *testing.T, rows ...[]byte) func([]byte) error {
	t.Helper()
	next := 0
	return func(a []byte) error {
		if next == len(rows) || len(rows[next]) != len(a) {
			t.Fatalf("coefficient row %d: splitWith asked for %d coefficients", next, len(a))
		}
		copy(a, rows[next])
		next++
		return nil
	}
}

// shamirSubsets returns every subset of size k of shares, keeping order.
func shamirSubsets(shares [][]byte, k int) [][][]byte {
	if k == 0 {
		return [][][]byte{nil}
	}
	if len(shares) < k {
		return nil
	}
	var out [][][]byte
	for _, rest := range shamirSubsets(shares[1:], k-1) {
		out = append(out, append([][]byte{shares[0]}, rest...))
	}
	return append(out, shamirSubsets(shares[1:], k)...)
}

func TestSplitWith_KnownVectors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		secret    []byte
		xs        []byte
		threshold int
		coeffs    [][]byte // one row per secret byte: a1, a2, ...
		want      [][]byte
	}{
		{
			// f(x) = 0x42 ^ 0x01·x:
			//   f(1) = 0x42^0x01 = 0x43, f(2) = 0x42^0x02 = 0x40, f(3) = 0x42^0x03 = 0x41.
			name:      "a threshold-2 split of 0x42 with a1 = 0x01 gives 0x43, 0x40, 0x41",
			secret:    []byte{0x42},
			xs:        []byte{1, 2, 3},
			threshold: 2,
			coeffs:    [][]byte{{0x01}},
			want:      [][]byte{{0x43, 1}, {0x40, 2}, {0x41, 3}},
		},
		{
			// Byte 0: f(x) = 0x42 ^ 0x57·x ^ 0x01·x², using FIPS-197's
			// 0x57·0x02 = 0xae and 0x57·0x04 = 0x47, and
			//   0x57·0x03 = 0x57·0x02 ^ 0x57 = 0xae^0x57 = 0xf9,
			//   squares: 1² = 0x01, 2² = 0x04, 3² = (x+1)² = x²+1 = 0x05, 4² = x⁴ = 0x10.
			//   f(1) = 0x42 ^ 0x57 ^ 0x01 = 0x15 ^ 0x01 = 0x14
			//   f(2) = 0x42 ^ 0xae ^ 0x04 = 0xec ^ 0x04 = 0xe8
			//   f(3) = 0x42 ^ 0xf9 ^ 0x05 = 0xbb ^ 0x05 = 0xbe
			//   f(4) = 0x42 ^ 0x47 ^ 0x10 = 0x05 ^ 0x10 = 0x15
			// Byte 1: f(x) = 0xff ^ 0x01·x ^ 0x00·x² (a zero top
			// coefficient is allowed; the polynomial just has lower degree):
			//   f(1) = 0xfe, f(2) = 0xfd, f(3) = 0xfc, f(4) = 0xfb
			name:      "a threshold-3 split of 0x42 0xff computed by hand matches",
			secret:    []byte{0x42, 0xff},
			xs:        []byte{1, 2, 3, 4},
			threshold: 3,
			coeffs:    [][]byte{{0x57, 0x01}, {0x01, 0x00}},
			want:      [][]byte{{0x14, 0xfe, 1}, {0xe8, 0xfd, 2}, {0xbe, 0xfc, 3}, {0x15, 0xfb, 4}},
		},
		{
			// The xs need not be small or in order: f(x) = 0x00 ^ 0x83·x, so
			// f(0x57) = 0x83·0x57 = 0xc1 and f(0x13) = 0x83·0x13. The latter
			// by xtime: 0x83·0x02 = 0x106^0x11b = 0x1d, ·0x04 = 0x3a,
			// ·0x08 = 0x74, ·0x10 = 0xe8; 0x13 = 0x10^0x02^0x01 gives
			// 0xe8 ^ 0x1d ^ 0x83 = 0x76.
			name:      "x coordinates 0x57 and 0x13 with a1 = 0x83 give 0xc1 and 0x76",
			secret:    []byte{0x00},
			xs:        []byte{0x57, 0x13},
			threshold: 2,
			coeffs:    [][]byte{{0x83}},
			want:      [][]byte{{0xc1, 0x57}, {0x76, 0x13}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitWith(tc.secret, tc.xs, tc.threshold, shamirFixedCoeffs(t, tc.coeffs...))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tc.want, bytes.Equal) {
				t.Fatalf("shares = %x, want %x", got, tc.want)
			}
			for _, sub := range shamirSubsets(tc.want, tc.threshold) {
				back, err := CombineShares(sub)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(back, tc.secret) {
					t.Fatalf("CombineShares(%x) = %x, want %x", sub, back, tc.secret)
				}
			}
		})
	}
}

func TestSplitWith_RefusesBadXs(t *testing.T) {
	never := func([]byte) error { t.Fatal("coefficients drawn for invalid xs"); return nil }
	if _, err := splitWith([]byte{1}, []byte{0, 1}, 2, never); !errors.Is(err, ErrZeroShareX) {
		t.Fatalf("x = 0: got %v, want ErrZeroShareX", err)
	}
	if _, err := splitWith([]byte{1}, []byte{7, 7}, 2, never); !errors.Is(err, ErrDuplicateShare) {
		t.Fatalf("repeated x: got %v, want ErrDuplicateShare", err)
	}
}

func TestSplitWith_ReportsCoefficientFailure(t *testing.T) {
	boom := errors.New("no randomness")
	calls := 0
	coeffs := func(a []byte) error {
		if calls++; calls == 2 {
			return boom
		}
		a[0] = 0x5a
		return nil
	}
	if _, err := splitWith([]byte{0x42, 0x43}, []byte{1, 2}, 2, coeffs); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the coefficient source's error", err)
	}
}

func TestSplitCombine_RoundTrip(t *testing.T) {
	for _, size := range []int{1, 32, 64} {
		for _, p := range []struct{ shares, threshold int }{{2, 2}, {5, 3}, {10, 7}, {255, 2}, {20, 20}} {
			t.Run(fmt.Sprintf("a %d-byte secret split %d ways with threshold %d comes back", size, p.shares, p.threshold), func(t *testing.T) {
				secret := RandomKey()
				for len(secret) < size {
					secret = append(secret, RandomKey()...)
				}
				secret = secret[:size]
				orig := bytes.Clone(secret)
				shares, err := SplitSecret(secret, p.shares, p.threshold)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(secret, orig) {
					t.Fatal("SplitSecret changed its input")
				}
				if len(shares) != p.shares {
					t.Fatalf("%d shares, want %d", len(shares), p.shares)
				}
				for i, sh := range shares {
					if len(sh) != size+1 {
						t.Fatalf("share %d has %d bytes, want %d", i, len(sh), size+1)
					}
				}
				// The last threshold shares, in reverse order, then all of them.
				some := slices.Clone(shares[p.shares-p.threshold:])
				slices.Reverse(some)
				for _, set := range [][][]byte{some, shares} {
					got, err := CombineShares(set)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, secret) {
						t.Fatalf("combining %d shares gave %x, want %x", len(set), got, secret)
					}
				}
			})
		}
	}
}

func TestSplitSecret_SharesHaveDistinctRandomNonzeroXs(t *testing.T) {
	t.Run("a 255-way split uses every nonzero x exactly once", func(t *testing.T) {
		shares, err := SplitSecret([]byte{0x42}, 255, 2)
		if err != nil {
			t.Fatal(err)
		}
		var xs []int
		for _, sh := range shares {
			xs = append(xs, int(sh[len(sh)-1]))
		}
		slices.Sort(xs)
		for i, x := range xs {
			if x != i+1 {
				t.Fatalf("sorted xs = %v, want 1..255", xs)
			}
		}
	})
	t.Run("x coordinates are not simply 1 to n", func(t *testing.T) {
		// Five splits all giving 1..5 in order has probability about 1e-60.
		for range 5 {
			shares, err := SplitSecret([]byte{0x42}, 5, 3)
			if err != nil {
				t.Fatal(err)
			}
			for i, sh := range shares {
				if sh[1] != byte(i+1) {
					return
				}
			}
		}
		t.Fatal("five splits in a row used x = 1..5 in order")
	})
	t.Run("every nonzero byte is about equally likely to be the first x coordinate", func(t *testing.T) {
		// 200 draws per value on average (standard deviation about 14).
		// A fair shuffle puts a value outside [100, 300] with probability
		// below 1e-9 over all 255 values; modulo bias in drawing the index
		// (r%255 for a byte r) would give x = 1 about 400.
		const perValue = 200
		var count [256]int
		for range 255 * perValue {
			xs, err := randomXs(1)
			if err != nil {
				t.Fatal(err)
			}
			count[xs[0]]++
		}
		if count[0] != 0 {
			t.Fatalf("x = 0 drawn %d times", count[0])
		}
		for x := 1; x < 256; x++ {
			if c := count[x]; c < perValue/2 || c > perValue*3/2 {
				t.Errorf("x = %d drawn first %d times, want about %d", x, c, perValue)
			}
		}
	})
}

func TestCombineShares_EverySubsetOfThresholdRecovers(t *testing.T) {
	secret := RandomKey()
	shares, err := SplitSecret(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	subsets := shamirSubsets(shares, 3)
	if len(subsets) != 10 {
		t.Fatalf("%d subsets of 3 of 5, want 10", len(subsets))
	}
	for _, sub := range subsets {
		t.Run(fmt.Sprintf("shares with x %d, %d and %d recover the secret", sub[0][KeySize], sub[1][KeySize], sub[2][KeySize]), func(t *testing.T) {
			got, err := CombineShares(sub)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, secret) {
				t.Fatalf("got %x, want %x", got, secret)
			}
		})
	}
}

func TestCombineShares_FewerThanThresholdDoNotRecover(t *testing.T) {
	// With 32-byte secrets, a wrong combination equals the secret with
	// probability 2^-256.
	secret := RandomKey()
	shares, err := SplitSecret(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range shamirSubsets(shares, 2) {
		t.Run(fmt.Sprintf("shares with x %d and %d of a 3-of-5 split give a wrong secret", pair[0][KeySize], pair[1][KeySize]), func(t *testing.T) {
			got, err := CombineShares(pair)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(got, secret) {
				t.Fatal("two shares recovered a threshold-3 secret")
			}
		})
	}
}

func TestCombineShares_MixedSplitsDoNotRecover(t *testing.T) {
	secret := RandomKey()
	a, err := SplitSecret(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SplitSecret(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Two shares of a, and a share of b whose x is not theirs (one of b's
	// five always qualifies).
	mixed := [][]byte{a[0], a[1]}
	for _, sh := range b {
		if x := sh[KeySize]; x != a[0][KeySize] && x != a[1][KeySize] {
			mixed = append(mixed, sh)
			break
		}
	}
	got, err := CombineShares(mixed)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, secret) {
		t.Fatal("shares of two different splits recovered the secret")
	}
}

func TestCombineShares_Errors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shares [][]byte
		want   error
	}{
		{"no shares at all are too few", nil, ErrTooFewShares},
		{"a single share is too few", [][]byte{{0x43, 1}}, ErrTooFewShares},
		{"a one-byte share is too short", [][]byte{{0x43, 1}, {2}}, ErrShareTooShort},
		{"an empty share is too short", [][]byte{{}, {0x40, 2}}, ErrShareTooShort},
		{"a nil share is too short", [][]byte{{0x43, 1}, nil}, ErrShareTooShort},
		{"shares of different lengths do not combine", [][]byte{{0x43, 1}, {0x40, 0x40, 2}}, ErrShareLengthMismatch},
		{"a share with x coordinate 0 is refused", [][]byte{{0x43, 1}, {0x42, 0}}, ErrZeroShareX},
		{"the same share given twice is a duplicate", [][]byte{{0x43, 1}, {0x40, 2}, {0x43, 1}}, ErrDuplicateShare},
		{"two different shares with one x coordinate are duplicates", [][]byte{{0x43, 1}, {0x44, 1}}, ErrDuplicateShare},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CombineShares(tc.shares)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %x, %v; want error %v", got, err, tc.want)
			}
			if got != nil {
				t.Fatalf("got %x with the error, want nil", got)
			}
		})
	}
}

func TestSplitSecret_ArgumentErrors(t *testing.T) {
	for _, tc := range []struct {
		name              string
		secret            []byte
		shares, threshold int
		want              error
	}{
		{"an empty secret cannot be split", []byte{}, 3, 2, ErrEmptySecret},
		{"a nil secret cannot be split", nil, 3, 2, ErrEmptySecret},
		{"a threshold of 1 is refused", []byte{1}, 3, 1, ErrSplitParameters},
		{"a threshold of 0 is refused", []byte{1}, 3, 0, ErrSplitParameters},
		{"a negative threshold is refused", []byte{1}, 3, -2, ErrSplitParameters},
		{"fewer shares than the threshold are refused", []byte{1}, 2, 3, ErrSplitParameters},
		{"256 shares are more than there are x coordinates", []byte{1}, 256, 2, ErrSplitParameters},
		{"256 shares with threshold 256 are refused too", []byte{1}, 256, 256, ErrSplitParameters},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SplitSecret(tc.secret, tc.shares, tc.threshold)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %x, %v; want error %v", got, err, tc.want)
			}
			if got != nil {
				t.Fatal("shares returned with the error")
			}
		})
	}
	t.Run("the largest split, 255 shares with threshold 255, is accepted", func(t *testing.T) {
		shares, err := SplitSecret([]byte{0x42}, 255, 255)
		if err != nil {
			t.Fatal(err)
		}
		got, err := CombineShares(shares)
		if err != nil || !bytes.Equal(got, []byte{0x42}) {
			t.Fatalf("got %x, %v; want 42", got, err)
		}
	})
}

// FuzzCombineShares cuts data into shares of width bytes (the last one
// shorter if width does not divide len(data)) and checks that
// CombineShares never panics, returns a secret or an error but not both,
// leaves its input alone, and, when it succeeds, gives a secret one byte
// shorter than the shares that does not depend on their order. Seeds in
// testdata/fuzz/FuzzCombineShares cover the hand-computed threshold-3
// shares and each error case.
func FuzzCombineShares(f *testing.F) {
	f.Add(uint8(2), []byte{0x43, 1, 0x40, 2, 0x41, 3})
	f.Fuzz(func(t *testing.T, width uint8, data []byte) {
		w := max(int(width), 1)
		var shares [][]byte
		for rest := data; len(rest) > 0; {
			n := min(w, len(rest))
			shares = append(shares, rest[:n:n])
			rest = rest[n:]
		}
		orig := bytes.Clone(data)
		got, err := CombineShares(shares)
		if !bytes.Equal(data, orig) {
			t.Fatal("CombineShares changed its input")
		}
		if err != nil {
			if got != nil {
				t.Fatalf("got %x with error %v", got, err)
			}
			return
		}
		if len(got) != w-1 {
			t.Fatalf("secret has %d bytes from shares of %d", len(got), w)
		}
		rev := slices.Clone(shares)
		slices.Reverse(rev)
		again, err := CombineShares(rev)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("reversed order gave %x, %v; want %x", again, err, got)
		}
	})
}
