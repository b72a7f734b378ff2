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

// FuzzEvaluate parses a policy document (as an identity policy or as a
// resource policy) and evaluates it against a request: whatever the
// document and the request, nothing may panic and the decision must be
// one Evaluate can return, stable from call to call.
func FuzzEvaluate(f *testing.F) {
	kinds := []string{"IAMUser", "Root", "AWSService"}
	f.Fuzz(func(t *testing.T, doc string, identity bool, action, resource, arn, account string, kind uint8, ctx string) {
		parse := ParsePolicy
		if identity {
			parse = ParseIdentityPolicy
		}
		p, _, err := parse(doc)
		if err != nil {
			return
		}
		who := Principal{ARN: arn, Account: account, Type: kinds[int(kind)%len(kinds)], UserName: "u", UserID: "AIDAU"}
		if who.Type == "AWSService" {
			who.Service = arn
		}
		// ctx is lines of key=value; a key may repeat to give several values.
		c := Context{}
		for line := range strings.SplitSeq(ctx, "\n") {
			k, v, _ := strings.Cut(line, "=")
			vals, _ := c.Get(k)
			c.Set(k, append(vals, v)...)
		}
		req := Request{Principal: who, Action: action, Resource: resource, Context: c}
		evaluate := func() Decision {
			if identity {
				return Evaluate(req, []*Policy{p}, nil)
			}
			return Evaluate(req, nil, p)
		}
		d := evaluate()
		if d > ImplicitDenyResource {
			t.Fatalf("decision %d", d)
		}
		if again := evaluate(); again != d {
			t.Fatalf("decision %d, then %d", d, again)
		}
		if msg := d.Message(req, resource); (msg == "") != (d == Allow) {
			t.Fatalf("%d.Message = %q", d, msg)
		}
		p.LocksOut(arn, account, resource)
		p.BroadAccess()
	})
}
