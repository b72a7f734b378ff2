// Package acl authenticates requests with AWS Signature Version 4, the scheme
// every AWS SDK and the AWS CLI use, so that unmodified clients can talk to
// Coffer. Errors are *apierr.Error values carrying the codes and, where known,
// the messages AWS itself sends, because SDKs branch on the code (the Go SDK,
// for one, re-signs and retries InvalidSignatureException on clock skew).
package acl

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/apierr"
)

// Credentials looks up the secret access key of an access key id in the
// region the request is scoped to (each region keeps its own keys). ok=false
// when unknown. ctx is the request's: a lookup that has to ask another node
// ends with it.
type Credentials func(ctx context.Context, region, accessKeyID string) (secretAccessKey string, ok bool)

// HTTPRequest is what the verifier needs from an HTTP request.
type HTTPRequest struct {
	Method string      // "POST"
	Path   string      // URL path, "/" for the API (escaped path as received, RawPath or Path)
	Query  string      // raw query string, canonicalized here per SigV4
	Header http.Header // all headers as received, keys in canonical form as net/http gives them
	Host   string      // r.Host (Go moves Host out of Header)
	Body   []byte      // raw body bytes
	// PayloadSHA256, when set, is the hex SHA-256 of a body streamed
	// after the signature is checked (a snapshot restore): it is what the
	// signature covers instead of a hash of Body, and the caller must
	// check the body it reads against it before acting on it.
	PayloadSHA256 string
	// Context is the request's, for the credential lookup; nil is
	// context.Background().
	Context context.Context
}

// Scope is the parsed credential scope of a verified request.
type Scope struct{ AccessKeyID, Date, Region, Service string }

// Verifier checks AWS Signature Version 4 on requests. It is safe for
// concurrent use as long as its fields are not changed.
type Verifier struct {
	Service    string                   // expected signing name, e.g. "secretsmanager" or "coffer"
	Regions    func(region string) bool // whether this server serves that region; nil accepts any
	RegionList func() []string          // hosted region names, quoted in the error for an unserved region
	Lookup     Credentials              // nil treats every access key as unknown
	Now        func() time.Time         // nil = time.Now
	MaxSkew    time.Duration            // 0 = 5 minutes, AWS's window
}

const (
	algorithm       = "AWS4-HMAC-SHA256"
	terminator      = "aws4_request"
	amzDateLayout   = "20060102T150405Z"
	defaultMaxSkew  = 5 * time.Minute
	maxAuthLen      = 8 << 10
	maxSignedHeader = 64
	unsignedPayload = "UNSIGNED-PAYLOAD"
)

// authorization is a parsed Authorization header.
type authorization struct {
	accessKeyID, date, region, service, term string
	signedHeaders                            []string
	signedHeadersRaw                         string
	signature                                string
}

// scope is the credential scope exactly as it enters the string to sign.
func (a *authorization) scope() string {
	return a.date + "/" + a.region + "/" + a.service + "/" + a.term
}

func incomplete(format string, args ...any) *apierr.Error {
	return apierr.Newf(apierr.IncompleteSignature, format, args...)
}

func invalid(format string, args ...any) *apierr.Error {
	return apierr.Newf(apierr.InvalidSignature, format, args...)
}

// parseAuthorization parses "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
// Signature=...". The header is attacker-controlled and arrives before we know
// who is calling, so every step is bounded and nothing indexes unchecked.
func parseAuthorization(h string) (authorization, *apierr.Error) {
	var a authorization
	if len(h) > maxAuthLen {
		return a, incomplete("Authorization header is %d bytes; the limit is %d.", len(h), maxAuthLen)
	}
	alg, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if alg != algorithm {
		return a, incomplete("Unsupported AWS 'algorithm': '%s'. The Authorization header must start with '%s'.", clip(alg), algorithm)
	}
	var cred, signed, sig string
	var haveCred, haveSigned, haveSig bool
	for part := range strings.SplitSeq(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			return a, incomplete("Authorization header parameter '%s' is not of the form key=value.", clip(part))
		}
		var dst *string
		var seen *bool
		switch k {
		case "Credential":
			dst, seen = &cred, &haveCred
		case "SignedHeaders":
			dst, seen = &signed, &haveSigned
		case "Signature":
			dst, seen = &sig, &haveSig
		default:
			return a, incomplete("Authorization header has unknown parameter '%s'; expected Credential, SignedHeaders and Signature.", clip(k))
		}
		if *seen {
			return a, incomplete("Authorization header repeats the '%s' parameter.", k)
		}
		*dst, *seen = val, true
	}
	var missing []string
	for _, p := range []struct {
		name string
		ok   bool
	}{{"Credential", haveCred}, {"Signature", haveSig}, {"SignedHeaders", haveSigned}} {
		if !p.ok {
			missing = append(missing, "Authorization header requires '"+p.name+"' parameter.")
		}
	}
	if len(missing) > 0 {
		return a, incomplete("%s", strings.Join(missing, " "))
	}

	// Count before splitting so a header of slashes cannot make us allocate.
	if strings.Count(cred, "/") != 4 {
		return a, incomplete("Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'.", clip(cred))
	}
	parts := strings.Split(cred, "/")
	for _, p := range parts {
		if p == "" {
			return a, incomplete("Credential must have exactly 5 non-empty slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'.", clip(cred))
		}
	}
	a.accessKeyID, a.date, a.region, a.service, a.term = parts[0], parts[1], parts[2], parts[3], parts[4]
	if len(a.date) != 8 || strings.Trim(a.date, "0123456789") != "" {
		return a, incomplete("Credential date '%s' must be in yyyyMMdd format.", clip(a.date))
	}

	if strings.Count(signed, ";") >= maxSignedHeader {
		return a, incomplete("SignedHeaders names more than %d headers.", maxSignedHeader)
	}
	a.signedHeadersRaw = signed
	a.signedHeaders = strings.Split(signed, ";")
	for _, name := range a.signedHeaders {
		if !isLowerToken(name) {
			return a, incomplete("SignedHeaders entry '%s' is not a lowercase header name; SignedHeaders must be a ';'-separated list such as 'content-type;host;x-amz-date'.", clip(name))
		}
	}

	if !isLowerHex64(sig) {
		return a, incomplete("Signature must be 64 lowercase hexadecimal characters, got '%s'.", clip(sig))
	}
	a.signature = sig
	return a, nil
}

// CredentialRegion is the region in an Authorization header's credential
// scope, unverified, or "" if the header does not parse: for routing a
// request to a region before its signature can be checked.
func CredentialRegion(authorization string) string {
	a, err := parseAuthorization(authorization)
	if err != nil {
		return ""
	}
	return a.region
}

// Verify returns the scope of a correctly signed request, or an *apierr.Error
// whose code is one of MissingAuthenticationTokenException,
// IncompleteSignatureException, InvalidSignatureException or
// UnrecognizedClientException.
//
// Checks that need no secret run first, and the credential lookup and the
// signing-key cache are reached only for a well-formed, current scope of a
// served region, so an unauthenticated caller cannot grow the cache.
func (v *Verifier) Verify(r HTTPRequest) (Scope, error) {
	auths := r.Header.Values("Authorization")
	switch {
	case len(auths) == 0:
		return Scope{}, apierr.New(apierr.MissingAuthenticationTok,
			"Missing Authentication Token. Requests must be signed with AWS Signature Version 4 (an Authorization header).")
	case len(auths) > 1:
		return Scope{}, incomplete("The request has %d Authorization headers; send exactly one.", len(auths))
	}
	a, aerr := parseAuthorization(auths[0])
	if aerr != nil {
		return Scope{}, aerr
	}

	dates := r.Header.Values("X-Amz-Date")
	switch {
	case len(dates) == 0:
		return Scope{}, incomplete("Authorization header requires existence of a 'X-Amz-Date' header.")
	case len(dates) > 1:
		return Scope{}, incomplete("The request has %d X-Amz-Date headers; send exactly one.", len(dates))
	}
	amzDate := dates[0]
	ts, err := time.Parse(amzDateLayout, amzDate)
	// The round trip rejects anything time.Parse tolerates but a signer
	// would never produce, so the string we sign over is the canonical one.
	if err != nil || ts.Format(amzDateLayout) != amzDate {
		return Scope{}, incomplete("X-Amz-Date must be in ISO-8601 basic format yyyyMMdd'T'HHmmss'Z', got '%s'.", clip(amzDate))
	}

	// Without these in the signature a captured request could be replayed
	// against another host, at another time, or with another session token.
	if !slices.Contains(a.signedHeaders, "host") {
		return Scope{}, incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization.")
	}
	if !slices.Contains(a.signedHeaders, "x-amz-date") {
		return Scope{}, incomplete("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
	}
	if len(r.Header.Values("X-Amz-Security-Token")) > 0 && !slices.Contains(a.signedHeaders, "x-amz-security-token") {
		return Scope{}, incomplete("'X-Amz-Security-Token' is present but is not a 'SignedHeader' in the AWS Authorization.")
	}

	if a.date != amzDate[:8] {
		return Scope{}, invalid("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", a.date, amzDate[:8], amzDate)
	}
	if err := v.checkSkew(ts, amzDate); err != nil {
		return Scope{}, err
	}
	if a.term != terminator {
		return Scope{}, invalid("Credential should be scoped with a valid terminator: '%s', not '%s'.", terminator, clip(a.term))
	}
	if a.service != v.Service {
		return Scope{}, invalid("Credential should be scoped to correct service: '%s'.", v.Service)
	}
	if v.Regions != nil && !v.Regions(a.region) {
		msg := fmt.Sprintf("Credential should be scoped to a valid region, not '%s'.", clip(a.region))
		if v.RegionList != nil {
			if list := v.RegionList(); len(list) > 0 {
				msg += " This endpoint serves: " + strings.Join(list, ", ") + "."
			}
		}
		return Scope{}, apierr.New(apierr.InvalidSignature, msg)
	}

	var secret string
	known := false
	if v.Lookup != nil {
		ctx := r.Context
		if ctx == nil {
			ctx = context.Background()
		}
		secret, known = v.Lookup(ctx, a.region, a.accessKeyID)
	}
	if !known {
		return Scope{}, apierr.New(apierr.UnrecognizedClient, apierr.MsgUnknownAccessKey)
	}

	var payloadHash [64]byte
	if r.PayloadSHA256 != "" {
		if len(r.PayloadSHA256) != 64 || strings.ToLower(r.PayloadSHA256) != r.PayloadSHA256 {
			return Scope{}, invalid("x-amz-content-sha256 must be the lowercase hex SHA-256 of the request body.")
		}
		if _, err := hex.DecodeString(r.PayloadSHA256); err != nil {
			return Scope{}, invalid("x-amz-content-sha256 must be the lowercase hex SHA-256 of the request body.")
		}
		copy(payloadHash[:], r.PayloadSHA256)
	} else {
		bodySum := sha256.Sum256(r.Body)
		hex.Encode(payloadHash[:], bodySum[:])
	}
	// The payload hash is always computed here; the header can only agree
	// with it. UNSIGNED-PAYLOAD would leave the body outside the signature.
	for _, h := range r.Header.Values("X-Amz-Content-Sha256") {
		if h == unsignedPayload {
			return Scope{}, invalid("X-Amz-Content-Sha256 is UNSIGNED-PAYLOAD; this service requires the request body to be signed, so send the hex SHA-256 of the body or omit the header.")
		}
		if h != string(payloadHash[:]) {
			return Scope{}, invalid("The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
	}

	values := func(name string) []string {
		if name == "host" {
			return []string{r.Host}
		}
		return r.Header[textproto.CanonicalMIMEHeaderKey(name)]
	}
	want := signature(secret, amzDate, &a, r.Method, r.Path, r.Query, values, payloadHash[:])
	if subtle.ConstantTimeCompare(want[:], []byte(a.signature)) != 1 {
		return Scope{}, apierr.New(apierr.InvalidSignature, apierr.MsgBadSignature)
	}
	return Scope{AccessKeyID: a.accessKeyID, Date: a.date, Region: a.region, Service: a.service}, nil
}

// checkSkew bounds how long a captured request stays replayable. The
// messages copy AWS's, which clients and people already recognise.
func (v *Verifier) checkSkew(ts time.Time, amzDate string) *apierr.Error {
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	now = now.UTC()
	skew := v.MaxSkew
	if skew <= 0 {
		skew = defaultMaxSkew
	}
	skewText := fmt.Sprintf("%d min.", skew/time.Minute)
	if skew%time.Minute != 0 {
		skewText = skew.String() + "."
	}
	if limit := now.Add(-skew); ts.Before(limit) {
		return invalid("Signature expired: %s is now earlier than %s (%s - %s)",
			amzDate, limit.Format(amzDateLayout), now.Format(amzDateLayout), skewText)
	}
	if limit := now.Add(skew); ts.After(limit) {
		return invalid("Signature not yet current: %s is still later than %s (%s + %s)",
			amzDate, limit.Format(amzDateLayout), now.Format(amzDateLayout), skewText)
	}
	return nil
}

// FromHTTP builds an HTTPRequest from an *http.Request and its already-read body.
func FromHTTP(r *http.Request, body []byte) HTTPRequest {
	return HTTPRequest{
		Method: r.Method,
		Path:   r.URL.EscapedPath(),
		Query:  r.URL.RawQuery,
		Header: r.Header,
		Host:   r.Host,
		Body:   body,

		Context: r.Context(),
	}
}

// ignoredHeaders are the headers the Go SDK leaves unsigned: proxies and the
// transport add or rewrite them after signing.
var ignoredHeaders = map[string]bool{
	"authorization":     true,
	"user-agent":        true,
	"x-amzn-trace-id":   true,
	"expect":            true,
	"transfer-encoding": true,
}

// Sign signs req in place (sets X-Amz-Date and Authorization), for Coffer's
// own clients and tests. Like the Go SDK it signs every header present except
// Authorization, User-Agent, X-Amzn-Trace-Id, Expect and Transfer-Encoding,
// plus host and, for a non-empty body, content-length.
func Sign(req *http.Request, body []byte, accessKeyID, secretAccessKey, region, service string, now time.Time) {
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	amzDate := now.UTC().Format(amzDateLayout)
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Del("Authorization")

	// AWS SDKs drop a default port before signing; do the same and pin
	// req.Host so the Host header sent is exactly the one signed.
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	switch {
	case req.URL.Scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	case req.URL.Scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	}
	req.Host = host

	// The transport writes Content-Length from req.ContentLength and ignores
	// the header map, so that is the value the server will see.
	vals := map[string][]string{"host": {host}}
	if req.ContentLength > 0 {
		vals["content-length"] = []string{strconv.FormatInt(req.ContentLength, 10)}
	}
	// Sorted keys give repeated names that differ only in case a stable
	// order, the one the transport writes them in.
	for _, k := range slices.Sorted(maps.Keys(req.Header)) {
		lk := strings.ToLower(k)
		if ignoredHeaders[lk] || lk == "content-length" || lk == "host" {
			continue
		}
		vals[lk] = append(vals[lk], req.Header[k]...)
	}
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	slices.Sort(names)

	a := authorization{
		accessKeyID:      accessKeyID,
		date:             amzDate[:8],
		region:           region,
		service:          service,
		term:             terminator,
		signedHeaders:    names,
		signedHeadersRaw: strings.Join(names, ";"),
	}
	bodySum := sha256.Sum256(body)
	sig := signature(secretAccessKey, amzDate, &a, req.Method, req.URL.EscapedPath(), req.URL.RawQuery,
		func(name string) []string { return vals[name] }, []byte(hex.EncodeToString(bodySum[:])))
	req.Header.Set("Authorization", algorithm+" Credential="+accessKeyID+"/"+a.scope()+
		", SignedHeaders="+a.signedHeadersRaw+", Signature="+string(sig[:]))
}

// signature computes the hex signature of a request over the headers named
// in a.signedHeaders, in the order given there (signers sort them; using the
// client's order means we agree with whatever it actually signed).
func signature(secret, amzDate string, a *authorization, method, path, query string, values func(string) []string, payloadHash []byte) [64]byte {
	buf := make([]byte, 0, 1024)
	buf = append(buf, method...)
	buf = append(buf, '\n')
	buf = appendCanonicalURI(buf, path)
	buf = append(buf, '\n')
	buf = appendCanonicalQuery(buf, query)
	buf = append(buf, '\n')
	for _, name := range a.signedHeaders {
		buf = append(buf, name...)
		buf = append(buf, ':')
		for i, v := range values(name) {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, normalizeValue(v)...)
		}
		buf = append(buf, '\n')
	}
	buf = append(buf, '\n')
	buf = append(buf, a.signedHeadersRaw...)
	buf = append(buf, '\n')
	buf = append(buf, payloadHash...)
	canonicalSum := sha256.Sum256(buf)

	sts := buf[:0]
	sts = append(sts, algorithm+"\n"...)
	sts = append(sts, amzDate...)
	sts = append(sts, '\n')
	sts = append(sts, a.scope()...)
	sts = append(sts, '\n')
	sts = hex.AppendEncode(sts, canonicalSum[:])

	mac := hmac.New(sha256.New, signingKey(secret, a.date, a.region, a.service))
	mac.Write(sts)
	var out [64]byte
	hex.Encode(out[:], mac.Sum(nil))
	return out
}

// normalizeValue trims a header value and collapses runs of spaces, as the
// Go SDK does (botocore also collapses tabs; SDKs never send inner tabs).
func normalizeValue(v string) string {
	if strings.Contains(v, "  ") {
		var b strings.Builder
		b.Grow(len(v))
		prevSpace := false
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c == ' ' && prevSpace {
				continue
			}
			prevSpace = c == ' '
			b.WriteByte(c)
		}
		v = b.String()
	}
	return strings.TrimSpace(v)
}

// appendCanonicalURI escapes the already-escaped path once more, keeping
// '/': SigV4 double-encodes paths for every service except S3, and the Go SDK
// does exactly this.
func appendCanonicalURI(b []byte, path string) []byte {
	if path == "" {
		return append(b, '/')
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '/' || isUnreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return b
}

// appendCanonicalQuery decodes the query, re-encodes every name and value
// RFC 3986 style, and sorts after encoding, because that is the order signers
// use and it can differ from the order of the decoded strings.
func appendCanonicalQuery(b []byte, raw string) []byte {
	if raw == "" {
		return b
	}
	// Pairs that fail to parse are dropped, as url.URL.Query (which the SDK
	// uses when signing) drops them.
	q, _ := url.ParseQuery(raw)
	type pair struct{ k, v string }
	var pairs []pair
	for k, vs := range q {
		ek := escapeQuery(k)
		for _, v := range vs {
			pairs = append(pairs, pair{ek, escapeQuery(v)})
		}
	}
	slices.SortFunc(pairs, func(x, y pair) int {
		if c := strings.Compare(x.k, y.k); c != 0 {
			return c
		}
		return strings.Compare(x.v, y.v)
	})
	for i, p := range pairs {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, p.k...)
		b = append(b, '=')
		b = append(b, p.v...)
	}
	return b
}

func escapeQuery(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

const upperHex = "0123456789ABCDEF"

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// isLowerToken reports whether s is a non-empty RFC 7230 token without
// uppercase letters, i.e. a header name as SignedHeaders must spell it.
func isLowerToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// clip makes a client-supplied string safe to echo in an error message:
// short, printable ASCII only, so hostile input cannot bloat responses or
// forge log lines.
func clip(s string) string {
	const max = 64
	suffix := ""
	if len(s) > max {
		s, suffix = s[:max], "..."
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b) + suffix
}

// keyCache memoizes derived signing keys: deriving one costs four HMACs,
// and a busy client signs thousands of requests a day with the same key.
// Clearing the whole map when it is full is crude but bounds memory and
// costs at most one re-derivation per live key.
type keyCache struct {
	mu sync.Mutex
	m  map[cacheKey][]byte
}

type cacheKey struct{ secret, date, region, service string }

const maxCachedKeys = 1024

var signingKeys = keyCache{m: make(map[cacheKey][]byte)}

func signingKey(secret, date, region, service string) []byte {
	ck := cacheKey{secret, date, region, service}
	signingKeys.mu.Lock()
	k, ok := signingKeys.m[ck]
	signingKeys.mu.Unlock()
	if ok {
		return k
	}
	k = hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, terminator)
	signingKeys.mu.Lock()
	if len(signingKeys.m) >= maxCachedKeys {
		clear(signingKeys.m)
	}
	signingKeys.m[ck] = k
	signingKeys.mu.Unlock()
	return k
}

func hmacSHA256(key []byte, data string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(data))
	return mac.Sum(nil)
}
