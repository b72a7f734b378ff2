package crypto

import (
	"fmt"
	"testing"
)

// Envelope encryption of one value: a fresh data key, the value sealed
// under it, the data key wrapped by the KEK; and the reverse.
func BenchmarkEnvelope(b *testing.B) {
	kr := NewKeyring("k1")
	aad := ValueAAD("arn:aws:secretsmanager:us-east-1:000000000000:secret:bench-AbCdEf", "v1")
	for _, size := range []int{1 << 10, 64 << 10} {
		value := make([]byte, size)
		b.Run(fmt.Sprintf("encrypt-%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := kr.Encrypt("k1", value, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
		env, _ := kr.Encrypt("k1", value, aad)
		b.Run(fmt.Sprintf("decrypt-%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := kr.Decrypt(env, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Re-wrapping one data key under another KEK (KEK rotation): unwrap and
// wrap again; the value is not touched, so its size does not matter.
func BenchmarkRewrap(b *testing.B) {
	kr, err := NewKeyring("k1").WithKEK("default/2")
	if err != nil {
		b.Fatal(err)
	}
	aad := ValueAAD("arn:aws:secretsmanager:us-east-1:000000000000:secret:bench-AbCdEf", "v1")
	env, _ := kr.Encrypt("k1", make([]byte, 1<<10), aad)
	for b.Loop() {
		if _, err := kr.Rewrap(env, aad, "default/2"); err != nil {
			b.Fatal(err)
		}
	}
}

// Splitting and combining a root key (init, rekey, unseal).
func BenchmarkShamir(b *testing.B) {
	root := RandomKey()
	shares, _ := SplitSecret(root, 5, 3)
	b.Run("split-5-of-3", func(b *testing.B) {
		for b.Loop() {
			SplitSecret(root, 5, 3)
		}
	})
	b.Run("combine-3", func(b *testing.B) {
		for b.Loop() {
			CombineShares(shares[:3])
		}
	})
}
