package acl

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/cofferhq/coffer/apierr"
)

const (
	testAKID   = "AKIDEXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	testBody   = `{"SecretId": "foo"}`
)

var (
	testNow      = time.Date(2026, 11, 23, 1, 52, 16, 0, time.UTC)
	testRegions  = []string{"us-east-1", "us-west-2"}
	testSessTok  = "FQoGZXIvYXdzEXAMPLETOKEN"
	testEndpoint = "http://127.0.0.1:18080/"
)

func testVerifier() *Verifier {
	return &Verifier{
		Service:    "secretsmanager",
		Regions:    func(r string) bool { return slices.Contains(testRegions, r) },
		RegionList: func() []string { return testRegions },
		Lookup: func(_ context.Context, _, id string) (string, bool) {
			if id == testAKID {
				return testSecret, true
			}
			return "", false
		},
		Now: func() time.Time { return testNow },
	}
}

// signOpts describes one request signed by the real AWS SDK signer; zero
// fields take the defaults of a GetSecretValue call from the Go SDK.
type signOpts struct {
	url, body                            string
	akid, secret, token, service, region string
	at                                   time.Time
	before                               func(*http.Request) // runs before signing
}

func sdkRequest(t testing.TB, o signOpts) HTTPRequest {
	t.Helper()
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&o.url, testEndpoint)
	def(&o.body, testBody)
	def(&o.akid, testAKID)
	def(&o.secret, testSecret)
	def(&o.service, "secretsmanager")
	def(&o.region, "us-east-1")
	if o.at.IsZero() {
		o.at = testNow
	}
	req, err := http.NewRequest(http.MethodPost, o.url, strings.NewReader(o.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1; charset=utf-8")
	req.Header.Set("Amz-Sdk-Invocation-Id", "3f0bd4b1-96f4-4f0e-8d2c-1b0e0f6a2c5e")
	req.Header.Set("Amz-Sdk-Request", "attempt=1;  max=3")
	req.Header.Set("User-Agent", "aws-sdk-go-v2/1.47.7 os/linux lang/go#1.26")
	if o.before != nil {
		o.before(req)
	}
	sum := sha256.Sum256([]byte(o.body))
	creds := aws.Credentials{AccessKeyID: o.akid, SecretAccessKey: o.secret, SessionToken: o.token}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), o.service, o.region, o.at); err != nil {
		t.Fatal(err)
	}
	return received(t, req)
}

// received sends req through its wire form and back, so the verifier sees
// exactly what a net/http server hands the handler.
func received(t testing.TB, req *http.Request) HTTPRequest {
	t.Helper()
	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		t.Fatal(err)
	}
	sr, err := http.ReadRequest(bufio.NewReader(&wire))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(sr.Body)
	if err != nil {
		t.Fatal(err)
	}
	return FromHTTP(sr, body)
}

func TestVerify_SDKSigned(t *testing.T) {
	cases := []struct {
		name string
		o    signOpts
	}{
		{"typical call", signOpts{}},
		{"empty body", signOpts{body: "{}"}},
		{"inner and outer spaces", signOpts{before: func(r *http.Request) {
			r.Header.Set("X-Custom", "  a   b \t c  ")
		}}},
		{"repeated header", signOpts{before: func(r *http.Request) {
			r.Header.Add("X-Multi", "one")
			r.Header.Add("X-Multi", " two  three ")
		}}},
		{"session token", signOpts{token: testSessTok}},
		{"content sha256 header", signOpts{before: func(r *http.Request) {
			sum := sha256.Sum256([]byte(testBody))
			r.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
		}}},
		{"default https port dropped", signOpts{url: "https://secrets.example.com:443/"}},
		{"other region", signOpts{region: "us-west-2"}},
		{"path and query", signOpts{url: "http://127.0.0.1:18080/a%20b/c~d?b=2&a=x%2Fy&a=x-y&c=sp%20ace&e="}},
		{"skew at the limit", signOpts{at: testNow.Add(-5 * time.Minute)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := sdkRequest(t, c.o)
			sc, err := testVerifier().Verify(r)
			if err != nil {
				t.Fatalf("Verify: %v\nAuthorization: %s", err, r.Header.Get("Authorization"))
			}
			want := Scope{AccessKeyID: testAKID, Date: "20261123", Region: "us-east-1", Service: "secretsmanager"}
			if c.o.region != "" {
				want.Region = c.o.region
			}
			if sc != want {
				t.Fatalf("scope = %+v, want %+v", sc, want)
			}
		})
	}
}

// The signed-header set the Go SDK produces is the one the spec captured; if
// this changes, the verifier still copes, but the fixtures above would no
// longer be what real clients send.
func TestVerify_SDKSignsWhatSpecSays(t *testing.T) {
	r := sdkRequest(t, signOpts{})
	got := r.Header.Get("Authorization")
	want := "SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-date;x-amz-target,"
	if !strings.Contains(got, want) {
		t.Fatalf("Authorization = %q, want it to contain %q", got, want)
	}
	if r.Host != "127.0.0.1:18080" {
		t.Fatalf("Host = %q", r.Host)
	}
}

func TestVerify_UnsignedHeaderMayChange(t *testing.T) {
	r := sdkRequest(t, signOpts{})
	r.Header.Set("User-Agent", "proxy-rewrote-me")
	r.Header.Set("X-Amzn-Trace-Id", "Root=1-abc")
	if _, err := testVerifier().Verify(r); err != nil {
		t.Fatal(err)
	}
}

func TestVerify_Failures(t *testing.T) {
	const served = "This endpoint serves: us-east-1, us-west-2."
	setAuth := func(f func(string) string) func(*HTTPRequest) {
		return func(r *HTTPRequest) { r.Header.Set("Authorization", f(r.Header.Get("Authorization"))) }
	}
	cases := []struct {
		name  string
		o     signOpts
		after func(*HTTPRequest)
		v     func(*Verifier)
		code  string
		msg   string // exact message when exact, else a substring
		exact bool
	}{
		{name: "tampered body", after: func(r *HTTPRequest) { r.Body = []byte(`{"SecretId": "bar"}`) },
			code: apierr.InvalidSignature, msg: apierr.MsgBadSignature, exact: true},
		{name: "tampered signed header", after: func(r *HTTPRequest) { r.Header.Set("X-Amz-Target", "secretsmanager.DeleteSecret") },
			code: apierr.InvalidSignature, msg: apierr.MsgBadSignature, exact: true},
		{name: "tampered host", after: func(r *HTTPRequest) { r.Host = "127.0.0.1:18081" },
			code: apierr.InvalidSignature, msg: apierr.MsgBadSignature, exact: true},
		{name: "tampered method", after: func(r *HTTPRequest) { r.Method = "PUT" },
			code: apierr.InvalidSignature, msg: apierr.MsgBadSignature, exact: true},
		{name: "tampered query", after: func(r *HTTPRequest) { r.Query = "a=1" },
			code: apierr.InvalidSignature, msg: apierr.MsgBadSignature, exact: true},
		{name: "wrong secret", o: signOpts{secret: "not-the-secret"},
			code: apierr.InvalidSignature, msg: apierr.MsgBadSignature, exact: true},
		{name: "unknown access key", o: signOpts{akid: "AKIDUNKNOWN"},
			code: apierr.UnrecognizedClient, msg: apierr.MsgUnknownAccessKey, exact: true},
		{name: "no credential store", v: func(v *Verifier) { v.Lookup = nil },
			code: apierr.UnrecognizedClient, msg: apierr.MsgUnknownAccessKey, exact: true},
		{name: "expired", o: signOpts{at: testNow.Add(-6 * time.Minute)}, code: apierr.InvalidSignature,
			msg: "Signature expired: 20261123T014616Z is now earlier than 20261123T014716Z (20261123T015216Z - 5 min.)", exact: true},
		{name: "expired, custom skew", o: signOpts{at: testNow.Add(-16 * time.Minute)}, v: func(v *Verifier) { v.MaxSkew = 15 * time.Minute },
			code: apierr.InvalidSignature,
			msg:  "Signature expired: 20261123T013616Z is now earlier than 20261123T013716Z (20261123T015216Z - 15 min.)", exact: true},
		{name: "future", o: signOpts{at: testNow.Add(6 * time.Minute)}, code: apierr.InvalidSignature,
			msg: "Signature not yet current: 20261123T015816Z is still later than 20261123T015716Z (20261123T015216Z + 5 min.)", exact: true},
		{name: "wrong service", o: signOpts{service: "kms"},
			code: apierr.InvalidSignature, msg: "Credential should be scoped to correct service: 'secretsmanager'.", exact: true},
		{name: "unserved region", o: signOpts{region: "eu-west-1"}, code: apierr.InvalidSignature,
			msg: "Credential should be scoped to a valid region, not 'eu-west-1'. " + served, exact: true},
		{name: "missing auth", after: func(r *HTTPRequest) { r.Header.Del("Authorization") },
			code: apierr.MissingAuthenticationTok, msg: "Missing Authentication Token"},
		{name: "garbage auth", after: func(r *HTTPRequest) { r.Header.Set("Authorization", "Bearer eyJhbGciOi") },
			code: apierr.IncompleteSignature, msg: "Unsupported AWS 'algorithm': 'Bearer'"},
		{name: "binary auth", after: func(r *HTTPRequest) { r.Header.Set("Authorization", "\x00\xff\n AWS4") },
			code: apierr.IncompleteSignature, msg: "Unsupported AWS 'algorithm': '?"},
		{name: "empty auth", after: func(r *HTTPRequest) { r.Header.Set("Authorization", "") },
			code: apierr.IncompleteSignature, msg: "Unsupported AWS 'algorithm'"},
		{name: "sigv2-style auth", after: setAuth(func(string) string { return "AWS4-HMAC-SHA1 Credential=a/b/c/d/e" }),
			code: apierr.IncompleteSignature, msg: "must start with 'AWS4-HMAC-SHA256'"},
		{name: "missing signature param", after: setAuth(func(a string) string { return a[:strings.Index(a, ", Signature=")] }),
			code: apierr.IncompleteSignature, msg: "Authorization header requires 'Signature' parameter."},
		{name: "missing all params", after: setAuth(func(string) string { return "AWS4-HMAC-SHA256" }), code: apierr.IncompleteSignature,
			msg: "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter.", exact: true},
		{name: "repeated param", after: setAuth(func(a string) string { return a + ", Signature=" + strings.Repeat("0", 64) }),
			code: apierr.IncompleteSignature, msg: "repeats the 'Signature' parameter"},
		{name: "unknown param", after: setAuth(func(a string) string { return a + ", Foo=bar" }),
			code: apierr.IncompleteSignature, msg: "unknown parameter 'Foo'"},
		{name: "uppercase parameter names", after: setAuth(strings.ToUpper),
			code: apierr.IncompleteSignature, msg: "unknown parameter 'CREDENTIAL'"},
		{name: "signature not lowercase hex", after: setAuth(func(a string) string {
			i := strings.Index(a, "Signature=") + len("Signature=")
			return a[:i] + strings.ToUpper(a[i:])
		}), code: apierr.IncompleteSignature, msg: "Signature must be 64 lowercase hexadecimal characters"},
		{name: "short signature", after: setAuth(func(a string) string { return a[:len(a)-1] }),
			code: apierr.IncompleteSignature, msg: "Signature must be 64 lowercase hexadecimal characters"},
		{name: "credential with 4 elements", after: setAuth(func(a string) string { return strings.Replace(a, "/us-east-1", "", 1) }),
			code: apierr.IncompleteSignature, msg: "Credential must have exactly 5 slash-delimited elements"},
		{name: "credential with empty element", after: setAuth(func(a string) string { return strings.Replace(a, "us-east-1", "", 1) }),
			code: apierr.IncompleteSignature, msg: "non-empty"},
		{name: "credential date not a date", after: setAuth(func(a string) string { return strings.Replace(a, "/20261123/", "/2026-11-2/", 1) }),
			code: apierr.IncompleteSignature, msg: "Credential date '2026-11-2' must be in yyyyMMdd format."},
		{name: "wrong terminator", after: setAuth(func(a string) string { return strings.Replace(a, "aws4_request", "aws4_reqest", 1) }),
			code: apierr.InvalidSignature, msg: "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws4_reqest'.", exact: true},
		{name: "uppercase signed header", after: setAuth(func(a string) string { return strings.Replace(a, "x-amz-target", "X-Amz-Target", 1) }),
			code: apierr.IncompleteSignature, msg: "SignedHeaders entry 'X-Amz-Target' is not a lowercase header name"},
		{name: "empty signed headers", after: setAuth(func(a string) string {
			i := strings.Index(a, "SignedHeaders=") + len("SignedHeaders=")
			return a[:i] + a[strings.Index(a, ", Signature"):]
		}), code: apierr.IncompleteSignature, msg: "SignedHeaders entry '' is not a lowercase header name"},
		{name: "too many signed headers", after: setAuth(func(a string) string {
			return strings.Replace(a, "SignedHeaders=", "SignedHeaders="+strings.Repeat("x;", 64), 1)
		}), code: apierr.IncompleteSignature, msg: "more than 64"},
		{name: "auth header too long", after: setAuth(func(a string) string { return a + strings.Repeat(" ", 8<<10) }),
			code: apierr.IncompleteSignature, msg: "the limit is 8192"},
		{name: "two auth headers", after: func(r *HTTPRequest) { r.Header.Add("Authorization", r.Header.Get("Authorization")) },
			code: apierr.IncompleteSignature, msg: "2 Authorization headers"},
		{name: "missing x-amz-date", after: func(r *HTTPRequest) { r.Header.Del("X-Amz-Date") },
			code: apierr.IncompleteSignature, msg: "requires existence of a 'X-Amz-Date' header"},
		{name: "malformed x-amz-date", after: func(r *HTTPRequest) { r.Header.Set("X-Amz-Date", "2026-11-23T01:52:16Z") },
			code: apierr.IncompleteSignature, msg: "X-Amz-Date must be in ISO-8601 basic format yyyyMMdd'T'HHmmss'Z', got '2026-11-23T01:52:16Z'."},
		{name: "impossible x-amz-date", after: func(r *HTTPRequest) { r.Header.Set("X-Amz-Date", "20261123T015260Z") },
			code: apierr.IncompleteSignature, msg: "ISO-8601"},
		{name: "two x-amz-date headers", after: func(r *HTTPRequest) { r.Header.Add("X-Amz-Date", "20261123T015216Z") },
			code: apierr.IncompleteSignature, msg: "2 X-Amz-Date headers"},
		{name: "x-amz-date day differs from scope", after: func(r *HTTPRequest) { r.Header.Set("X-Amz-Date", "20261124T015216Z") },
			code: apierr.InvalidSignature, msg: "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20261123' != '20261124', from '20261124T015216Z'.", exact: true},
		{name: "host not signed", after: setAuth(func(a string) string { return strings.Replace(a, ";host;", ";", 1) }),
			code: apierr.IncompleteSignature, msg: "'Host' must be a 'SignedHeader'"},
		{name: "x-amz-date not signed", after: setAuth(func(a string) string { return strings.Replace(a, ";x-amz-date;", ";", 1) }),
			code: apierr.IncompleteSignature, msg: "'X-Amz-Date' must be a 'SignedHeader'"},
		{name: "unsigned security token", after: func(r *HTTPRequest) { r.Header.Set("X-Amz-Security-Token", testSessTok) },
			code: apierr.IncompleteSignature, msg: "'X-Amz-Security-Token' is present but is not a 'SignedHeader'"},
		{name: "UNSIGNED-PAYLOAD", o: signOpts{before: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD") }},
			code: apierr.InvalidSignature, msg: "X-Amz-Content-Sha256 is UNSIGNED-PAYLOAD; this service requires the request body to be signed"},
		{name: "content sha256 of another body", o: signOpts{before: func(r *http.Request) {
			sum := sha256.Sum256([]byte("{}"))
			r.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
		}}, code: apierr.InvalidSignature, msg: "The provided 'x-amz-content-sha256' header does not match what was computed."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := sdkRequest(t, c.o)
			if c.after != nil {
				c.after(&r)
			}
			v := testVerifier()
			if c.v != nil {
				c.v(v)
			}
			_, err := v.Verify(r)
			e := checkAPIError(t, err)
			if e.Code != c.code {
				t.Fatalf("code = %s (%q), want %s", e.Code, e.Message, c.code)
			}
			if c.exact && e.Message != c.msg || !c.exact && !strings.Contains(e.Message, c.msg) {
				t.Fatalf("message = %q\nwant %s %q", e.Message, map[bool]string{true: "exactly", false: "containing"}[c.exact], c.msg)
			}
		})
	}
}

// checkAPIError fails unless err is an *apierr.Error a client can be blamed
// for: a 4xx, never a 5xx that SDKs would retry.
func checkAPIError(t testing.TB, err error) *apierr.Error {
	t.Helper()
	if err == nil {
		t.Fatal("Verify accepted the request")
	}
	var e *apierr.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not an *apierr.Error", err, err)
	}
	if s := apierr.Status(e.Code); s < 400 || s > 499 {
		t.Fatalf("code %s maps to HTTP %d, want 4xx", e.Code, s)
	}
	return e
}

func TestVerify_MissingAuthIs403(t *testing.T) {
	_, err := testVerifier().Verify(HTTPRequest{Method: "POST", Path: "/", Header: http.Header{}, Host: "h"})
	if e := checkAPIError(t, err); apierr.Status(e.Code) != http.StatusForbidden {
		t.Fatalf("status %d", apierr.Status(e.Code))
	}
}

func TestVerify_UnservedRegionWithoutList(t *testing.T) {
	v := testVerifier()
	v.RegionList = nil
	_, err := v.Verify(sdkRequest(t, signOpts{region: "eu-west-1"}))
	if e := checkAPIError(t, err); e.Message != "Credential should be scoped to a valid region, not 'eu-west-1'." {
		t.Fatalf("message %q", e.Message)
	}
}

// The real SDK client, end to end over HTTP: proves FromHTTP sees what the
// signer signed, including the Host port and the headers the SDK adds late.
func TestVerify_RealSDKClient(t *testing.T) {
	v := testVerifier()
	v.Now = nil
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-RequestId", "5e7c0b49-6a42-4c4b-9e7a-0d1f1c6f0c11")
		if _, err := v.Verify(FromHTTP(r, body)); err != nil {
			e, _ := apierr.As(err)
			w.WriteHeader(apierr.Status(e.Code))
			fmt.Fprintf(w, `{"__type":%q,"Message":%q}`, e.Code, e.Message)
			return
		}
		if r.Header.Get("X-Amz-Target") == "secretsmanager.GetSecretValue" {
			io.WriteString(w, `{"Name":"foo","SecretString":"bar"}`)
			return
		}
		io.WriteString(w, `{"SecretList":[]}`)
	}))
	defer srv.Close()

	client := func(secret, token string) *secretsmanager.Client {
		return secretsmanager.New(secretsmanager.Options{
			Region:           "us-east-1",
			BaseEndpoint:     aws.String(srv.URL),
			Credentials:      credentials.NewStaticCredentialsProvider(testAKID, secret, token),
			RetryMaxAttempts: 1,
		})
	}
	ctx := context.Background()
	out, err := client(testSecret, "").GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("foo")})
	if err != nil {
		t.Fatalf("GetSecretValue: %v", err)
	}
	if aws.ToString(out.SecretString) != "bar" {
		t.Fatalf("SecretString = %q", aws.ToString(out.SecretString))
	}
	if _, err := client(testSecret, testSessTok).ListSecrets(ctx, &secretsmanager.ListSecretsInput{}); err != nil {
		t.Fatalf("ListSecrets with session token: %v", err)
	}

	_, err = client("wrong", "").GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("foo")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != apierr.InvalidSignature || ae.ErrorMessage() != apierr.MsgBadSignature {
		t.Fatalf("wrong secret: err = %v", err)
	}
}

func TestSign_RoundTrip(t *testing.T) {
	v := testVerifier()
	v.Service = "coffer"
	req, err := http.NewRequest(http.MethodPost, "http://coffer.local:7443/v1/admin?b=1&a=2", strings.NewReader(`{"Name":"ops"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "coffer-cli/1.0")
	req.Header.Set("X-Note", "  spaced   out  ")
	Sign(req, []byte(`{"Name":"ops"}`), testAKID, testSecret, "us-west-2", "coffer", testNow)

	sc, err := v.Verify(received(t, req))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Scope{AccessKeyID: testAKID, Date: "20261123", Region: "us-west-2", Service: "coffer"}); sc != want {
		t.Fatalf("scope = %+v, want %+v", sc, want)
	}
	// Signed for "coffer", so the Secrets Manager endpoint must refuse it.
	_, err = testVerifier().Verify(received(t, cloneSigned(t, req)))
	if e := checkAPIError(t, err); e.Code != apierr.InvalidSignature {
		t.Fatalf("code = %s", e.Code)
	}
}

// cloneSigned re-creates req with a fresh body, since received consumes it.
func cloneSigned(t *testing.T, req *http.Request) *http.Request {
	t.Helper()
	c := req.Clone(context.Background())
	body, err := req.GetBody()
	if err != nil {
		t.Fatal(err)
	}
	c.Body = body
	return c
}

// Sign must produce byte-for-byte the Authorization the Go SDK would, so
// either can be used against any SigV4 verifier.
func TestSign_MatchesSDK(t *testing.T) {
	for _, url := range []string{"http://127.0.0.1:18080/", "https://secrets.example.com:443/x%2Fy?q=a+b"} {
		mk := func() *http.Request {
			req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(testBody))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			req.Header.Set("X-Amz-Target", "secretsmanager.ListSecrets")
			req.Header.Add("X-Multi", "a  b")
			req.Header.Add("X-Multi", "c")
			req.Header.Set("User-Agent", "ua")
			return req
		}
		ours, sdk := mk(), mk()
		Sign(ours, []byte(testBody), testAKID, testSecret, "us-east-1", "secretsmanager", testNow)
		sum := sha256.Sum256([]byte(testBody))
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret},
			sdk, hex.EncodeToString(sum[:]), "secretsmanager", "us-east-1", testNow); err != nil {
			t.Fatal(err)
		}
		if a, b := ours.Header.Get("Authorization"), sdk.Header.Get("Authorization"); a != b {
			t.Fatalf("%s:\nSign: %s\nSDK:  %s", url, a, b)
		}
		if ours.Host != sdk.Host {
			t.Fatalf("Host: Sign %q, SDK %q", ours.Host, sdk.Host)
		}
	}
}

func TestSign_OverHTTP(t *testing.T) {
	v := testVerifier()
	v.Service, v.Now = "coffer", nil
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := v.Verify(FromHTTP(r, body)); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	body := []byte(`{"Action":"coffer:ListUsers"}`)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	Sign(req, body, testAKID, testSecret, "us-east-1", "coffer", time.Now())
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, msg)
	}
}

func TestSigningKeyCache_Bounded(t *testing.T) {
	for i := range 3 * maxCachedKeys {
		signingKey("s", fmt.Sprintf("2026%04d", i), "us-east-1", "secretsmanager")
	}
	signingKeys.mu.Lock()
	n := len(signingKeys.m)
	signingKeys.mu.Unlock()
	if n > maxCachedKeys {
		t.Fatalf("cache holds %d keys, limit %d", n, maxCachedKeys)
	}
	// A cached key must equal a fresh derivation (the AWS documentation's
	// example: secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215,
	// us-east-1, iam).
	const want = "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
	for range 2 {
		if got := hex.EncodeToString(signingKey(testSecret, "20120215", "us-east-1", "iam")); got != want {
			t.Fatalf("signing key = %s, want %s", got, want)
		}
	}
}

func TestVerify_Concurrent(t *testing.T) {
	reqs := []HTTPRequest{
		sdkRequest(t, signOpts{}),
		sdkRequest(t, signOpts{region: "us-west-2"}),
		sdkRequest(t, signOpts{body: `{"SecretId":"other"}`, token: testSessTok}),
	}
	v := testVerifier()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if _, err := v.Verify(reqs[(g+i)%len(reqs)]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkVerify(b *testing.B) {
	r := sdkRequest(b, signOpts{})
	v := testVerifier()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(r); err != nil {
			b.Fatal(err)
		}
	}
}

// A streamed body (a snapshot restore) is verified against the hash the
// client signed, given as PayloadSHA256; the body is not hashed here.
func TestVerify_PayloadSHA256(t *testing.T) {
	body := "a large streamed body"
	sum := sha256.Sum256([]byte(body))
	hash := hex.EncodeToString(sum[:])
	r := sdkRequest(t, signOpts{body: body, before: func(req *http.Request) {
		req.Header.Set("X-Amz-Content-Sha256", hash)
	}})
	r.Body = nil
	r.PayloadSHA256 = hash
	if _, err := testVerifier().Verify(r); err != nil {
		t.Fatalf("streamed body with its signed hash: %v", err)
	}
	other := sha256.Sum256([]byte("another body"))
	r.PayloadSHA256 = hex.EncodeToString(other[:])
	if _, err := testVerifier().Verify(r); err == nil {
		t.Fatal("a hash other than the one in the header was accepted")
	}
	r.Header.Del("X-Amz-Content-Sha256")
	if _, err := testVerifier().Verify(r); err == nil {
		t.Fatal("a hash other than the one signed was accepted")
	}
	r.PayloadSHA256 = "not hex"
	if _, err := testVerifier().Verify(r); err == nil {
		t.Fatal("a malformed hash was accepted")
	}
}
