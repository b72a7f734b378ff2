package crypto

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// Shamir's secret sharing over GF(2^8), byte by byte: each byte of the
// secret is the constant term of its own random polynomial of degree
// threshold-1, and share i holds every polynomial's value at x_i. Any
// threshold shares determine the polynomials (Lagrange interpolation at
// x=0 gives the secret back); fewer say nothing about it.
//
// A share is the values followed by one trailing byte holding x_i, the
// layout HashiCorp Vault uses, so len(share) == len(secret)+1.
//
// The field is GF(2^8) with the AES reduction polynomial
// x^8+x^4+x^3+x+1 (0x11b). Addition and subtraction are both xor.
// Multiplication is shift-and-add with masks
// rather than log/exp tables: a table lookup indexed by a secret byte
// leaks that byte through the cache, and masks need no table (and so no
// package state) at all. The cost, eight rounds per multiplication, is
// nothing next to the few hundred bytes a split or combine handles.

// maxShares is the number of nonzero elements of GF(2^8): every share
// needs its own nonzero x coordinate.
const maxShares = 255

// Errors from CombineShares. They describe the shares as given; shares
// that are well formed but too few, or from different splits, are not
// detected here (see CombineShares).
var (
	// ErrTooFewShares means fewer than two shares were given; no split
	// has a threshold below two.
	ErrTooFewShares = errors.New("crypto: at least 2 shares are needed to combine")
	// ErrShareTooShort means a share has fewer than two bytes: it cannot
	// hold even one value and its x coordinate.
	ErrShareTooShort = errors.New("crypto: share too short: a share is at least one value byte and its x coordinate")
	// ErrShareLengthMismatch means the shares have different lengths, so
	// they cannot all come from one split.
	ErrShareLengthMismatch = errors.New("crypto: shares have different lengths, so they are not from one split")
	// ErrDuplicateShare means two shares have the same x coordinate: the
	// same share given twice, or shares from different splits that happen
	// to share an x. Either way they cannot both count towards the
	// threshold, and interpolating with them would divide by zero.
	ErrDuplicateShare = errors.New("crypto: two shares have the same x coordinate (the same share given twice?)")
	// ErrZeroShareX means a share's x coordinate is 0. No split produces
	// one: the value at 0 is the secret itself.
	ErrZeroShareX = errors.New("crypto: share has x coordinate 0, which no split produces")
)

// Errors from SplitSecret's argument checks; the returned error wraps one
// of these and says which argument is wrong.
var (
	// ErrEmptySecret means there is nothing to split.
	ErrEmptySecret = errors.New("crypto: cannot split an empty secret")
	// ErrSplitParameters means shares and threshold are not
	// 2 <= threshold <= shares <= 255.
	ErrSplitParameters = errors.New("crypto: need 2 <= threshold <= shares <= 255")
)

// SplitSecret splits secret into shares shares, any threshold of which
// recombine to it with CombineShares. It needs
// 2 <= threshold <= shares <= 255 and a non-empty secret.
//
// Each share is len(secret)+1 bytes: the values, then the share's x
// coordinate. The x coordinates are the first shares entries of a random
// permutation of 1..255, so they are distinct and nonzero, and a share's
// position in the result says nothing about its x. The polynomial
// coefficients come from crypto/rand.
func SplitSecret(secret []byte, shares, threshold int) ([][]byte, error) {
	if len(secret) == 0 {
		return nil, ErrEmptySecret
	}
	switch {
	case threshold < 2:
		return nil, fmt.Errorf("%w: threshold %d is below 2 (a threshold of 1 would hand the secret to every holder)", ErrSplitParameters, threshold)
	case shares < threshold:
		return nil, fmt.Errorf("%w: %d shares are fewer than the threshold %d, so the secret could never be recovered", ErrSplitParameters, shares, threshold)
	case shares > maxShares:
		return nil, fmt.Errorf("%w: %d shares are more than %d, the number of distinct nonzero x coordinates in GF(2^8)", ErrSplitParameters, shares, maxShares)
	}
	xs, err := randomXs(shares)
	if err != nil {
		return nil, err
	}
	return splitWith(secret, xs, threshold, func(b []byte) error {
		_, err := rand.Read(b)
		return err
	})
}

// splitWith is SplitSecret's deterministic core: one share per entry of
// xs, each polynomial of degree threshold-1. For each secret byte in turn,
// coeffs fills a buffer of threshold-1 bytes with the coefficients of x^1
// up to x^(threshold-1). Tests pass fixed xs and coefficients; SplitSecret
// passes random ones.
//
// The coefficients are uniform over all of GF(2^8), zero included: a
// leading coefficient of zero lowers the degree, but forcing it nonzero
// would bias the shares. The buffer is zeroed after use, and the shares
// built so far are zeroed if coeffs fails.
func splitWith(secret, xs []byte, threshold int, coeffs func([]byte) error) ([][]byte, error) {
	if err := checkXs(xs); err != nil {
		return nil, err
	}
	if threshold < 2 || threshold > len(xs) {
		return nil, fmt.Errorf("%w: threshold %d with %d shares", ErrSplitParameters, threshold, len(xs))
	}
	out := make([][]byte, len(xs))
	for i, x := range xs {
		out[i] = make([]byte, len(secret)+1)
		out[i][len(secret)] = x
	}
	a := make([]byte, threshold-1) // a[k] is the coefficient of x^(k+1)
	defer Zero(a)
	for k, s := range secret {
		if err := coeffs(a); err != nil {
			for _, sh := range out {
				Zero(sh)
			}
			return nil, fmt.Errorf("crypto: polynomial coefficients: %w", err)
		}
		for i, x := range xs {
			// Horner: ((a[t-2]·x + a[t-3])·x + ... + a[0])·x + s.
			var y byte
			for j := len(a) - 1; j >= 0; j-- {
				y = gfMul(y, x) ^ a[j]
			}
			out[i][k] = gfMul(y, x) ^ s
		}
	}
	return out, nil
}

// CombineShares recovers a secret from shares made by SplitSecret, by
// Lagrange interpolation at x=0. The shares may come in any order.
//
// It returns an error (wrapping one of ErrTooFewShares, ErrShareTooShort,
// ErrShareLengthMismatch, ErrZeroShareX, ErrDuplicateShare) only for
// shares that cannot be interpolated. Shares that are well formed but
// fewer than the split's threshold, or taken from different splits, give
// a wrong secret without any error: that is inherent to Shamir's scheme,
// which carries no checksum. Callers verify the result by using it, e.g.
// by opening the keyring sealed under the recovered root key.
func CombineShares(shares [][]byte) ([]byte, error) {
	if len(shares) < 2 {
		return nil, fmt.Errorf("%w: got %d", ErrTooFewShares, len(shares))
	}
	for i, sh := range shares {
		if len(sh) < 2 {
			return nil, fmt.Errorf("%w: share %d has %d bytes", ErrShareTooShort, i, len(sh))
		}
	}
	n := len(shares[0])
	for i, sh := range shares[1:] {
		if len(sh) != n {
			return nil, fmt.Errorf("%w: share %d has %d bytes, share 0 has %d", ErrShareLengthMismatch, i+1, len(sh), n)
		}
	}
	xs := make([]byte, len(shares))
	for i, sh := range shares {
		xs[i] = sh[n-1]
	}
	if err := checkXs(xs); err != nil {
		return nil, err
	}

	// With distinct nonzero xs, every x_i^x_j below (i != j) is nonzero,
	// so den is a product of nonzero elements and has an inverse.
	secret := make([]byte, n-1)
	for i, xi := range xs {
		// The Lagrange basis polynomial of share i at 0, in characteristic
		// 2 where subtraction is xor:
		//   l_i(0) = prod_{j != i} (0-x_j)/(x_i-x_j) = prod x_j / prod (x_i^x_j)
		num, den := byte(1), byte(1)
		for j, xj := range xs {
			if j != i {
				num = gfMul(num, xj)
				den = gfMul(den, xi^xj)
			}
		}
		l := gfMul(num, gfInv(den))
		for k, y := range shares[i][:n-1] {
			secret[k] ^= gfMul(l, y)
		}
	}
	return secret, nil
}

// checkXs reports the first zero or repeated x coordinate, the cases in
// which interpolation would divide by zero or a split would give the
// secret away.
func checkXs(xs []byte) error {
	var seen [256]int // 1 + index of the share with that x, or 0
	for i, x := range xs {
		if x == 0 {
			return fmt.Errorf("%w: share %d", ErrZeroShareX, i)
		}
		if seen[x] != 0 {
			return fmt.Errorf("%w: shares %d and %d both have x = %d", ErrDuplicateShare, seen[x]-1, i, x)
		}
		seen[x] = i + 1
	}
	return nil
}

// randomXs returns n distinct nonzero x coordinates: the first n entries
// of a uniformly random permutation of 1..255, by a partial Fisher-Yates
// shuffle with indices drawn from crypto/rand. Rejection sampling keeps
// every index unbiased. The xs are stored in the clear in every share;
// they are random so that a share's x says nothing about how many shares
// were made or which one it was.
func randomXs(n int) ([]byte, error) {
	var perm [maxShares]byte
	for i := range perm {
		perm[i] = byte(i + 1)
	}
	var buf [64]byte
	used := len(buf)
	for i := 0; i < n; i++ {
		bound := maxShares - i   // pick j uniformly from [i, maxShares)
		limit := 256 - 256%bound // the largest multiple of bound that is <= 256
		for {
			if used == len(buf) {
				if _, err := rand.Read(buf[:]); err != nil {
					return nil, err
				}
				used = 0
			}
			r := int(buf[used])
			used++
			if r < limit {
				j := i + r%bound
				perm[i], perm[j] = perm[j], perm[i]
				break
			}
		}
	}
	return append([]byte(nil), perm[:n]...), nil
}

// gfMul multiplies a and b in GF(2^8) mod 0x11b, in constant time: for
// each bit of b, add a if the bit is set, then multiply a by x, reducing
// by 0x1b when a bit falls off the top. Masks (0x00 or 0xff) stand in for
// both branches.
func gfMul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)
		b >>= 1
		carry := -(a >> 7)
		a = (a << 1) ^ (0x1b & carry)
	}
	return p
}

// gfInv returns the multiplicative inverse of a nonzero a as a^254: the
// nonzero elements form a group of order 255, so a^255 = 1. The chain of
// squarings and multiplications is fixed, so the time does not depend on
// a. gfInv(0) is 0, not an inverse; callers never pass 0 (see
// CombineShares).
func gfInv(a byte) byte {
	sq := gfMul(a, a) // a^2
	r := sq
	for range 6 {
		sq = gfMul(sq, sq) // a^4, a^8, ..., a^128
		r = gfMul(r, sq)   // a^6, a^14, ..., a^254
	}
	return r
}
