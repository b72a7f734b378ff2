package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/server/servertest"
)

// rawAnswer is one raw HTTP answer from the API.
type rawAnswer struct {
	status  int
	header  http.Header
	body    []byte
	typ     string // "__type"
	message string // "Message"
}

// rawRequest describes a hand-built API request. The zero value of each
// field means the usual thing: POST /, signed now with the root keys for
// us-east-1, the body sent as signed.
type rawRequest struct {
	method string
	path   string
	target string // X-Amz-Target; "" sends none
	body   []byte
	// sign replaces the default signing; it gets the request with its
	// headers set and the body that is about to be sent.
	sign func(req *http.Request, body []byte)
	// send, if not nil, replaces the body after signing.
	send []byte
}

func signRoot(req *http.Request, body []byte) {
	acl.Sign(req, body, servertest.Credentials.AccessKeyID, servertest.Credentials.SecretAccessKey, servertest.Region, "secretsmanager", time.Now())
}

// signWith returns a signer that uses other keys, region or time.
func signWith(accessKeyID, secretKey, region string, at func() time.Time) func(*http.Request, []byte) {
	return func(req *http.Request, body []byte) {
		acl.Sign(req, body, accessKeyID, secretKey, region, "secretsmanager", at())
	}
}

func doRaw(t *testing.T, endpoint string, rr rawRequest) rawAnswer {
	t.Helper()
	method, path := rr.method, rr.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/"
	}
	var body io.Reader = http.NoBody
	if rr.body != nil {
		body = bytes.NewReader(rr.body)
	}
	req, err := http.NewRequestWithContext(ctxT(t), method, endpoint+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if rr.target != "" {
		req.Header.Set("X-Amz-Target", rr.target)
	}
	sign := rr.sign
	if sign == nil {
		sign = signRoot
	}
	sign(req, rr.body)
	if rr.send != nil {
		req.Body = io.NopCloser(bytes.NewReader(rr.send))
		req.ContentLength = int64(len(rr.send))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out := rawAnswer{status: resp.StatusCode, header: resp.Header}
	if out.body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("read answer: %v", err)
	}
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"Message"`
	}
	if json.Unmarshal(out.body, &e) == nil {
		out.typ, out.message = e.Type, e.Message
	}
	return out
}

// op is a signed JSON request to a Secrets Manager operation.
func op(name string, body any) rawRequest {
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			panic(err)
		}
	}
	return rawRequest{target: "secretsmanager." + name, body: b}
}

// with returns rr changed by f, so table entries read as one expression.
func (rr rawRequest) with(f func(*rawRequest)) rawRequest {
	f(&rr)
	return rr
}

func stateDigest(t *testing.T, c *servertest.Cluster) (string, uint64) {
	t.Helper()
	d, i, err := c.Nodes[0].Region.FSM().Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d, i
}

type obj = map[string]any

// Bad requests are refused with the AWS error type and status, a message
// naming what was wrong, a request id and X-Coffer-Outcome: not-applied,
// and they change nothing.
func TestBadInput_RefusedAndNothingChanges(t *testing.T) {
	c := servertest.New(t, 1)
	ctx := ctxT(t)
	ep := c.Nodes[0].Endpoint
	cl := c.Client(0)
	// Two secrets to aim at, and a real NextToken for them.
	if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bi-existing"), SecretString: aws.String("v1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bi-other"), SecretString: aws.String("v1")}); err != nil {
		t.Fatal(err)
	}
	page, err := cl.ListSecrets(ctx, &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(1)})
	if err != nil || page.NextToken == nil {
		t.Fatalf("first page: %v, NextToken %v", err, page)
	}
	realToken := *page.NextToken

	const tok = "00000000-0000-4000-8000-00000000b001"
	str := func(n int) string { return strings.Repeat("a", n) }
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfe}, n)) }
	at := func(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }
	keyID, secretKey := servertest.Credentials.AccessKeyID, servertest.Credentials.SecretAccessKey
	// A body just over the 1 MiB limit; valid JSON, so only its size is wrong.
	huge := []byte(`{"Name":"bi-huge","SecretString":"` + str(1<<20) + `"}`)
	tamperedFrom := []byte(`{"Name":"bi-tamper-a","SecretString":"x"}`)
	tamperedTo := []byte(`{"Name":"bi-tamper-b","SecretString":"x"}`)
	// Change the first character of the MAC: all of its bits count (the
	// last character of unpadded base64 may carry unused ones).
	flipped := []byte(realToken)
	mac := strings.LastIndex(realToken, ".") + 1
	if mac == 0 || mac == len(flipped) {
		t.Fatalf("NextToken %q has no MAC part", realToken)
	}
	if flipped[mac] == 'A' {
		flipped[mac] = 'B'
	} else {
		flipped[mac] = 'A'
	}

	cases := []struct {
		name   string
		req    rawRequest
		status int
		typ    string
		msg    string // a substring of Message
	}{
		// Decoding.
		{"malformed JSON", op("CreateSecret", `{"Name": "bi-x", `), 400, apierr.Serialization, "not valid JSON"},
		{"body is a JSON array", op("CreateSecret", `[{"Name": "bi-x"}]`), 400, apierr.Serialization, "must be a JSON object"},
		{"body is a JSON string", op("DescribeSecret", `"bi-existing"`), 400, apierr.Serialization, "must be a JSON object"},
		{"SecretId is a number", op("GetSecretValue", `{"SecretId": 5}`), 400, apierr.Serialization, "SecretId"},
		{"SecretBinary is not base64", op("CreateSecret", `{"Name": "bi-x", "ClientRequestToken": "`+tok+`", "SecretBinary": "not base64!"}`), 400, apierr.Serialization, "base64"},
		{"VersionStages is a string", op("PutSecretValue", obj{"SecretId": "bi-existing", "ClientRequestToken": tok, "SecretString": "v", "VersionStages": "AWSCURRENT"}), 400, apierr.Serialization, "VersionStages"},
		{"ForceDeleteWithoutRecovery is a string", op("DeleteSecret", obj{"SecretId": "bi-existing", "ForceDeleteWithoutRecovery": "true"}), 400, apierr.Serialization, "ForceDeleteWithoutRecovery"},

		// Routing.
		{"unknown X-Amz-Target", op("Frobnicate", `{}`), 400, apierr.UnknownOperation, "secretsmanager.Frobnicate"},
		{"other service's X-Amz-Target", op("x", `{}`).with(func(r *rawRequest) { r.target = "kms.Decrypt" }), 400, apierr.UnknownOperation, "kms.Decrypt"},
		{"operation name in the wrong case", op("getSecretValue", obj{"SecretId": "bi-existing"}), 400, apierr.UnknownOperation, "getSecretValue"},
		{"missing X-Amz-Target", op("x", `{}`).with(func(r *rawRequest) { r.target = "" }), 400, apierr.UnknownOperation, "X-Amz-Target"},
		{"GET /", rawRequest{method: http.MethodGet, target: "secretsmanager.ListSecrets"}, 400, apierr.UnknownOperation, "POST /"},
		{"POST to another path", op("ListSecrets", `{}`).with(func(r *rawRequest) { r.path = "/secrets" }), 400, apierr.UnknownOperation, "/secrets"},
		{"rotator not registered", op("RotateSecret", obj{"SecretId": "bi-existing", "ClientRequestToken": tok, "RotationLambdaARN": "coffer-rotator"}), 400, apierr.AccessDenied, "cannot invoke the specified Lambda function"},

		// Authentication.
		{"no Authorization", op("ListSecrets", `{}`).with(func(r *rawRequest) { r.sign = func(*http.Request, []byte) {} }), 403, apierr.MissingAuthenticationTok, "Missing Authentication Token"},
		{"garbage Authorization", op("ListSecrets", `{}`).with(func(r *rawRequest) {
			r.sign = func(req *http.Request, body []byte) { signRoot(req, body); req.Header.Set("Authorization", "garbage") }
		}), 400, apierr.IncompleteSignature, "AWS4-HMAC-SHA256"},
		{"truncated Authorization", op("ListSecrets", `{}`).with(func(r *rawRequest) {
			r.sign = func(req *http.Request, body []byte) {
				signRoot(req, body)
				a := req.Header.Get("Authorization")
				req.Header.Set("Authorization", a[:strings.Index(a, ", Signature=")])
			}
		}), 400, apierr.IncompleteSignature, "Signature"},
		{"wrong secret key", op("ListSecrets", `{}`).with(func(r *rawRequest) { r.sign = signWith(keyID, secretKey+"x", "us-east-1", time.Now) }), 400, apierr.InvalidSignature, "signature we calculated does not match"},
		{"unknown access key", op("ListSecrets", `{}`).with(func(r *rawRequest) { r.sign = signWith("AKIAUNKNOWNUNKNOWN00", secretKey, "us-east-1", time.Now) }), 400, apierr.UnrecognizedClient, "security token included in the request is invalid"},
		{"X-Amz-Date 20 minutes old", op("ListSecrets", `{}`).with(func(r *rawRequest) { r.sign = signWith(keyID, secretKey, "us-east-1", at(-20*time.Minute)) }), 400, apierr.InvalidSignature, "Signature expired"},
		{"X-Amz-Date 20 minutes ahead", op("ListSecrets", `{}`).with(func(r *rawRequest) { r.sign = signWith(keyID, secretKey, "us-east-1", at(20*time.Minute)) }), 400, apierr.InvalidSignature, "Signature not yet current"},
		{"body changed after signing", op("CreateSecret", tamperedFrom).with(func(r *rawRequest) { r.send = tamperedTo }), 400, apierr.InvalidSignature, "signature we calculated does not match"},
		{"region not served", op("ListSecrets", `{}`).with(func(r *rawRequest) { r.sign = signWith(keyID, secretKey, "eu-west-3", time.Now) }), 400, apierr.InvalidSignature, "us-east-1"},
		{"body over 1 MiB", op("CreateSecret", huge), 413, apierr.RequestEntityTooLarge, "limit"},

		// Model constraints.
		{"SecretString of 65,537 bytes", op("CreateSecret", obj{"Name": "bi-x", "ClientRequestToken": tok, "SecretString": str(65537)}), 400, apierr.Validation, "secretString"},
		{"SecretString of 32,769 two-byte characters", op("CreateSecret", obj{"Name": "bi-x", "ClientRequestToken": tok, "SecretString": strings.Repeat("é", 32769)}), 400, apierr.Validation, "65536"},
		{"SecretBinary of 65,537 bytes", op("CreateSecret", obj{"Name": "bi-x", "ClientRequestToken": tok, "SecretBinary": b64(65537)}), 400, apierr.Validation, "secretBinary"},
		{"PutSecretValue SecretString of 65,537 bytes", op("PutSecretValue", obj{"SecretId": "bi-existing", "ClientRequestToken": tok, "SecretString": str(65537)}), 400, apierr.Validation, "secretString"},
		{"empty SecretString", op("CreateSecret", obj{"Name": "bi-x", "ClientRequestToken": tok, "SecretString": ""}), 400, apierr.Validation, "greater than or equal to 1"},
		{"empty SecretBinary", op("CreateSecret", obj{"Name": "bi-x", "ClientRequestToken": tok, "SecretBinary": ""}), 400, apierr.Validation, "secretBinary"},
		{"name with a space", op("CreateSecret", obj{"Name": "bi x"}), 400, apierr.Validation, apierr.MsgInvalidName},
		{"name with *", op("CreateSecret", obj{"Name": "bi*x"}), 400, apierr.Validation, apierr.MsgInvalidName},
		{"name with !", op("CreateSecret", obj{"Name": "bi!x"}), 400, apierr.Validation, apierr.MsgInvalidName},
		{"name of 513 characters", op("CreateSecret", obj{"Name": str(513)}), 400, apierr.Validation, "Member must have length less than or equal to 512"},
		{"empty name", op("CreateSecret", obj{"Name": ""}), 400, apierr.Validation, "Member must have length greater than or equal to 1"},
		{"CreateSecret without Name", op("CreateSecret", obj{"SecretString": "v"}), 400, apierr.Validation, "Value null at 'name' failed to satisfy constraint: Member must not be null"},
		{"ClientRequestToken of 10 characters", op("PutSecretValue", obj{"SecretId": "bi-existing", "ClientRequestToken": str(10), "SecretString": "v"}), 400, apierr.Validation, "clientRequestToken' failed to satisfy constraint: Member must have length greater than or equal to 32"},
		{"ClientRequestToken of 65 characters", op("CreateSecret", obj{"Name": "bi-x", "ClientRequestToken": str(65), "SecretString": "v"}), 400, apierr.Validation, "less than or equal to 64"},
		{"VersionStages empty", op("PutSecretValue", obj{"SecretId": "bi-existing", "ClientRequestToken": tok, "SecretString": "v", "VersionStages": []string{}}), 400, apierr.Validation, "versionStages"},
		{"ListSecrets MaxResults 0", op("ListSecrets", obj{"MaxResults": 0}), 400, apierr.Validation, "Member must have value greater than or equal to 1"},
		{"ListSecrets MaxResults 101", op("ListSecrets", obj{"MaxResults": 101}), 400, apierr.Validation, "Member must have value less than or equal to 100"},
		{"GetSecretValue without SecretId", op("GetSecretValue", `{}`), 400, apierr.Validation, "Value null at 'secretId' failed to satisfy constraint: Member must not be null"},
		{"DescribeSecret with SecretId null", op("DescribeSecret", `{"SecretId": null}`), 400, apierr.Validation, "Member must not be null"},
		{"empty body is {}", op("DeleteSecret", ``), 400, apierr.Validation, "Member must not be null"},
		{"two violations", op("GetSecretValue", obj{"SecretId": "", "VersionId": "short"}), 400, apierr.Validation, "2 validation errors detected"},

		// Stateless parameter rules.
		{"both SecretString and SecretBinary", op("CreateSecret", obj{"Name": "bi-x", "ClientRequestToken": tok, "SecretString": "v", "SecretBinary": b64(4)}), 400, apierr.InvalidParameter, apierr.MsgBothValues},
		{"PutSecretValue with both values", op("PutSecretValue", obj{"SecretId": "bi-existing", "ClientRequestToken": tok, "SecretString": "v", "SecretBinary": b64(4)}), 400, apierr.InvalidParameter, apierr.MsgBothValues},
		{"CreateSecret with a value and no ClientRequestToken", op("CreateSecret", obj{"Name": "bi-x", "SecretString": "v"}), 400, apierr.InvalidRequest, apierr.MsgTokenMissing},
		{"PutSecretValue without ClientRequestToken", op("PutSecretValue", obj{"SecretId": "bi-existing", "SecretString": "v"}), 400, apierr.InvalidRequest, apierr.MsgTokenMissing},
		{"PutSecretValue without ClientRequestToken, unknown secret", op("PutSecretValue", obj{"SecretId": "bi-missing", "SecretString": "v"}), 400, apierr.InvalidRequest, apierr.MsgTokenMissing},
		{"PutSecretValue without a value", op("PutSecretValue", obj{"SecretId": "bi-existing", "ClientRequestToken": tok}), 400, apierr.InvalidRequest, apierr.MsgNoValue},
		{"DeleteSecret RecoveryWindowInDays 6", op("DeleteSecret", obj{"SecretId": "bi-existing", "RecoveryWindowInDays": 6}), 400, apierr.InvalidParameter, apierr.MsgRecoveryWindow},
		{"DeleteSecret RecoveryWindowInDays 31", op("DeleteSecret", obj{"SecretId": "bi-existing", "RecoveryWindowInDays": 31}), 400, apierr.InvalidParameter, apierr.MsgRecoveryWindow},
		{"DeleteSecret window with force", op("DeleteSecret", obj{"SecretId": "bi-existing", "RecoveryWindowInDays": 7, "ForceDeleteWithoutRecovery": true}), 400, apierr.InvalidParameter, apierr.MsgWindowAndForce},
		{"ListSecrets forged NextToken", op("ListSecrets", obj{"NextToken": "Zm9yZ2Vk.Zm9yZ2Vk"}), 400, apierr.InvalidNextToken, "NextToken"},
		{"ListSecrets NextToken with a changed MAC", op("ListSecrets", obj{"NextToken": string(flipped)}), 400, apierr.InvalidNextToken, "NextToken"},
		{"ListSecrets NextToken for other options", op("ListSecrets", obj{"NextToken": realToken, "IncludePlannedDeletion": true}), 400, apierr.InvalidNextToken, "NextToken"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d0, i0 := stateDigest(t, c)
			a := doRaw(t, ep, tc.req)
			if a.status != tc.status || a.typ != tc.typ {
				t.Fatalf("got %d %q (%s), want %d %s", a.status, a.typ, a.body, tc.status, tc.typ)
			}
			if !strings.Contains(a.message, tc.msg) {
				t.Errorf("Message %q does not contain %q", a.message, tc.msg)
			}
			if a.header.Get("x-amzn-RequestId") == "" {
				t.Error("no x-amzn-RequestId header")
			}
			if got := a.header.Get(server.HeaderOutcome); got != "not-applied" {
				t.Errorf("%s = %q, want not-applied", server.HeaderOutcome, got)
			}
			if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-amz-json-1.1") {
				t.Errorf("Content-Type %q", ct)
			}
			if et := a.header.Get("X-Amzn-ErrorType"); et != "" && et != tc.typ {
				t.Errorf("X-Amzn-ErrorType %q disagrees with __type %q", et, tc.typ)
			}
			if d1, i1 := stateDigest(t, c); d1 != d0 || i1 != i0 {
				t.Errorf("state changed: digest %s@%d -> %s@%d", d0, i0, d1, i1)
			}
		})
	}

	// Nothing the refused requests named exists, and the targets are intact.
	list, err := cl.ListSecrets(ctx, &secretsmanager.ListSecretsInput{IncludePlannedDeletion: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range list.SecretList {
		names = append(names, aws.ToString(s.Name))
		if s.DeletedDate != nil {
			t.Errorf("%s was scheduled for deletion", aws.ToString(s.Name))
		}
	}
	if strings.Join(names, ",") != "bi-existing,bi-other" {
		t.Errorf("secrets after the refused requests: %v", names)
	}
	desc, err := cl.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("bi-existing")})
	if err != nil {
		t.Fatal(err)
	}
	if len(desc.VersionIdsToStages) != 1 {
		t.Errorf("bi-existing versions: %v", desc.VersionIdsToStages)
	}
}

// The limits are inclusive and unknown members are ignored: these requests
// succeed.
func TestBadInput_AcceptedAtTheEdges(t *testing.T) {
	c := servertest.New(t, 1)
	ctx := ctxT(t)
	ep := c.Nodes[0].Endpoint
	cl := c.Client(0)
	const tok = "00000000-0000-4000-8000-00000000b002"
	cases := []struct {
		name   string
		req    rawRequest
		secret string // created, with this many value bytes
		size   int
	}{
		{"SecretString of exactly 65,536 bytes", op("CreateSecret", obj{"Name": "edge-str", "ClientRequestToken": tok, "SecretString": strings.Repeat("a", 65536)}), "edge-str", 65536},
		{"SecretString of 32,768 two-byte characters", op("CreateSecret", obj{"Name": "edge-utf8", "ClientRequestToken": tok, "SecretString": strings.Repeat("é", 32768)}), "edge-utf8", 65536},
		{"SecretBinary of exactly 65,536 bytes", op("CreateSecret", obj{"Name": "edge-bin", "ClientRequestToken": tok, "SecretBinary": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 65536))}), "edge-bin", 65536},
		{"name of 512 characters", op("CreateSecret", obj{"Name": strings.Repeat("n", 512)}), strings.Repeat("n", 512), 0},
		{"name with every allowed punctuation", op("CreateSecret", obj{"Name": "a/b_c+d=e.f@g-h"}), "a/b_c+d=e.f@g-h", 0},
		{"unknown member ignored", op("CreateSecret", obj{"Name": "edge-foo", "Foo": 1, "Bar": obj{"x": []int{1}}}), "edge-foo", 0},
		{"null member is absent", op("CreateSecret", obj{"Name": "edge-null", "SecretString": nil, "Description": nil}), "edge-null", 0},
		{"Content-Type with charset", op("CreateSecret", obj{"Name": "edge-charset"}).with(func(r *rawRequest) {
			r.sign = func(req *http.Request, body []byte) {
				req.Header.Set("Content-Type", "application/x-amz-json-1.1; charset=utf-8")
				signRoot(req, body)
			}
		}), "edge-charset", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := doRaw(t, ep, tc.req)
			if a.status != http.StatusOK {
				t.Fatalf("got %d %s", a.status, a.body)
			}
			if a.header.Get("x-amzn-RequestId") == "" {
				t.Error("no x-amzn-RequestId header")
			}
			var out struct{ ARN, Name, VersionId string }
			if err := json.Unmarshal(a.body, &out); err != nil || out.Name != tc.secret {
				t.Fatalf("answer %s (%v)", a.body, err)
			}
			if tc.size == 0 {
				if _, err := cl.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(out.ARN)}); err != nil {
					t.Fatalf("describe: %v", err)
				}
				return
			}
			got, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(out.ARN)})
			if err != nil {
				t.Fatalf("read back: %v", err)
			}
			if n := len(aws.ToString(got.SecretString)) + len(got.SecretBinary); n != tc.size {
				t.Fatalf("read back %d bytes, want %d", n, tc.size)
			}
		})
	}
}
