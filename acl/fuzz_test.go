package acl

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Seeds live in testdata/fuzz/<FuzzName>/: headers captured from real SDK
// signing plus malformed variants of them.

func FuzzParseAuthorization(f *testing.F) {
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthorization(h)
		if err != nil {
			checkAPIError(t, err)
			return
		}
		// Whatever parses must satisfy what Verify relies on without
		// re-checking.
		if !isLowerHex64(a.signature) {
			t.Fatalf("accepted signature %q", a.signature)
		}
		if n := len(a.signedHeaders); n == 0 || n > maxSignedHeader {
			t.Fatalf("accepted %d signed headers", n)
		}
		for _, p := range []string{a.accessKeyID, a.date, a.region, a.service, a.term} {
			if p == "" || strings.Contains(p, "/") {
				t.Fatalf("accepted credential part %q", p)
			}
		}
		if len(a.date) != 8 {
			t.Fatalf("accepted credential date %q", a.date)
		}
	})
}

// FuzzVerify fuzzes the inputs a caller fully controls before it is
// authenticated. The other headers are fixed at what the valid seed signed,
// so mutations of that seed reach the signature comparison.
func FuzzVerify(f *testing.F) {
	v := testVerifier()
	f.Fuzz(func(t *testing.T, auth, date, host string, body []byte) {
		h := http.Header{
			"Content-Type":   {"application/x-amz-json-1.1"},
			"X-Amz-Target":   {"secretsmanager.GetSecretValue"},
			"Content-Length": {strconv.Itoa(len(body))},
		}
		if auth != "" {
			h["Authorization"] = []string{auth}
		}
		if date != "" {
			h["X-Amz-Date"] = []string{date}
		}
		sc, err := v.Verify(HTTPRequest{Method: "POST", Path: "/", Header: h, Host: host, Body: body})
		if err != nil {
			checkAPIError(t, err)
			return
		}
		if sc.AccessKeyID != testAKID || sc.Service != "secretsmanager" {
			t.Fatalf("accepted scope %+v", sc)
		}
	})
}
