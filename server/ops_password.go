package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"strings"

	"github.com/cofferhq/coffer/apierr"
)

func init() {
	register("GetRandomPassword", getRandomPassword)
}

// GetRandomPassword (shared/spec §4.14). Nothing is stored or logged: the
// password exists only in the response.

// Character classes. Punctuation is the 32 printable ASCII characters that
// are neither letters, digits nor space; the space is a class of its own,
// included only with IncludeSpace.
const (
	classLower            = "abcdefghijklmnopqrstuvwxyz"
	classUpper            = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	classDigits           = "0123456789"
	classPunctuation      = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
	classSpace            = " "
	defaultPasswordLength = 32
)

func getRandomPassword(_ context.Context, r Region, req *request) (any, error) {
	var in struct {
		PasswordLength          *int64  `json:"PasswordLength"`
		ExcludeCharacters       *string `json:"ExcludeCharacters"`
		ExcludeNumbers          *bool   `json:"ExcludeNumbers"`
		ExcludePunctuation      *bool   `json:"ExcludePunctuation"`
		ExcludeUppercase        *bool   `json:"ExcludeUppercase"`
		ExcludeLowercase        *bool   `json:"ExcludeLowercase"`
		IncludeSpace            *bool   `json:"IncludeSpace"`
		RequireEachIncludedType *bool   `json:"RequireEachIncludedType"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	v.intRange(in.PasswordLength, "passwordLength", 1, 4096)
	v.length(in.ExcludeCharacters, "excludeCharacters", 0, 4096)
	if err := v.err(); err != nil {
		return nil, err
	}
	if err := req.authorize(r, nil, ""); err != nil {
		return nil, err
	}
	on := func(b *bool) bool { return b != nil && *b }
	opts := passwordOptions{
		length:     defaultPasswordLength,
		exclude:    deref(in.ExcludeCharacters),
		noLower:    on(in.ExcludeLowercase),
		noUpper:    on(in.ExcludeUppercase),
		noDigits:   on(in.ExcludeNumbers),
		noPunct:    on(in.ExcludePunctuation),
		space:      on(in.IncludeSpace),
		requireAll: in.RequireEachIncludedType == nil || *in.RequireEachIncludedType,
	}
	if in.PasswordLength != nil {
		opts.length = int(*in.PasswordLength)
	}
	pw, err := randomPassword(opts)
	if err != nil {
		return nil, err
	}
	return struct {
		RandomPassword string `json:"RandomPassword"`
	}{pw}, nil
}

type passwordOptions struct {
	length                     int
	exclude                    string
	noLower, noUpper, noDigits bool
	noPunct, space, requireAll bool
}

// randomPassword builds the included classes (ExcludeCharacters removes
// characters from every class; a class left empty no longer counts), draws
// one character from each class when every type is required, fills the
// rest uniformly from the union of the classes, and shuffles. Every draw
// is uniform: crypto/rand with rejection sampling, no modulo bias.
//
// With IncludeSpace the space is one of the included types like the other
// four (shared/spec §4.14): with RequireEachIncludedType every password
// holds at least one space, and the space counts towards the types the
// length must cover ("Password length is too short based on the required
// types.").
func randomPassword(o passwordOptions) (string, error) {
	keep := func(class string) string {
		return strings.Map(func(r rune) rune {
			if strings.ContainsRune(o.exclude, r) {
				return -1
			}
			return r
		}, class)
	}
	var required []string
	for _, c := range []struct {
		chars string
		off   bool
	}{{classLower, o.noLower}, {classUpper, o.noUpper}, {classDigits, o.noDigits}, {classPunctuation, o.noPunct}, {classSpace, !o.space}} {
		if c.off {
			continue
		}
		if k := keep(c.chars); k != "" {
			required = append(required, k)
		}
	}
	union := strings.Join(required, "")
	if union == "" {
		return "", apierr.New(apierr.InvalidParameter, apierr.MsgPasswordNoClasses)
	}
	if !o.requireAll {
		required = nil
	}
	if o.length < len(required) {
		return "", apierr.New(apierr.InvalidParameter, apierr.MsgPasswordTooShort)
	}
	out := make([]byte, 0, o.length)
	for _, class := range required {
		out = append(out, class[uniform(len(class))])
	}
	for len(out) < o.length {
		out = append(out, union[uniform(len(union))])
	}
	for i := len(out) - 1; i > 0; i-- { // Fisher–Yates
		j := uniform(i + 1)
		out[i], out[j] = out[j], out[i]
	}
	return string(out), nil
}

// uniform returns a uniformly random integer in [0, n), 0 < n ≤ 2^31, from
// crypto/rand: 32-bit draws at or above the largest multiple of n are
// rejected, so no value is favoured.
func uniform(n int) int {
	limit := uint64(1<<32) - uint64(1<<32)%uint64(n)
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("crypto/rand failed: " + err.Error()) // Go's crypto/rand does not fail
		}
		if x := uint64(binary.BigEndian.Uint32(b[:])); x < limit {
			return int(x % uint64(n))
		}
	}
}
