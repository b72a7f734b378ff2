package crypto

import (
	"bytes"
	"strings"
	"testing"
)

func TestShares_SplitParseCombine(t *testing.T) {
	root := RandomKey()
	id := NewInitID()
	enc, err := SplitRootKey(root, id, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	var shares []Share
	for _, e := range enc {
		s, err := ParseShare(" " + e + "\n")
		if err != nil {
			t.Fatal(err)
		}
		if s.InitID != id || s.Threshold != 3 {
			t.Fatalf("parsed %+v", s)
		}
		shares = append(shares, s)
	}
	got, err := CombineRootKey([]Share{shares[4], shares[0], shares[2]})
	if err != nil || !bytes.Equal(got, root) {
		t.Fatalf("combine: %v", err)
	}
	t.Run("a changed character fails the checksum", func(t *testing.T) {
		b := []byte(enc[1])
		i := len(b) / 2
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		if _, err := ParseShare(string(b)); err == nil || !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a root key or garbage is not a share", func(t *testing.T) {
		for _, in := range []string{string(EncodeRootKey(root)), "", "not base64!", enc[0][:20]} {
			if _, err := ParseShare(in); err != ErrNotShare {
				t.Errorf("%q: %v", in, err)
			}
		}
	})
}

func FuzzParseShare(f *testing.F) {
	enc, _ := SplitRootKey(RandomKey(), NewInitID(), 3, 2)
	f.Add(enc[0])
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseShare(in)
		if err == nil && (len(s.Data) != KeySize+1 || len(s.InitID) != 2*initIDSize) {
			t.Fatalf("accepted a share of the wrong shape: %+v", s)
		}
	})
}
