package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/region"
)

// unsigned are the endpoints that take no signature (health probes,
// metrics, and the seal endpoints that work before any identity can be
// read); every other /v1/ endpoint must be authorized.
var unsigned = map[string]bool{
	"GET /v1/health": true, "GET /v1/health/ready": true, "GET /v1/health/active": true, "GET /v1/health/live": true,
	"GET /v1/metrics": true, "GET /v1/sys/seal-status": true, "POST /v1/sys/init": true, "POST /v1/sys/unseal": true,
}

// Every signed endpoint the server registers, and every API operation,
// refuses a user whom no policy allows anything: an endpoint added
// without an authorization decision fails here.
func TestAuthz_EveryEndpointRefusesAUserWithoutPolicies(t *testing.T) {
	root := region.Credentials{AccessKeyID: "AKIAROOTROOTROOTROOT", SecretAccessKey: "root/secret/key/for/coffer/authz/tests/01"}
	r := startLocalRegion(t, root)
	ctx := context.Background()
	if _, err := r.CreateUser(ctx, "nobody", "/"); err != nil {
		t.Fatal(err)
	}
	user, err := r.CreateAccessKey(ctx, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Audit: openAudit(t)}, r)
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, service, target, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "http://authz.local"+path, strings.NewReader(body))
		if target != "" {
			req.Header.Set("X-Amz-Target", "secretsmanager."+target)
			req.Header.Set("Content-Type", contentTypeJSON11)
		}
		req.Header.Set("Content-Length", strconv.Itoa(len(body)))
		// A snapshot restore is signed with its file's SHA-256.
		sum := sha256.Sum256([]byte(body))
		req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
		acl.Sign(req, []byte(body), user.AccessKeyID, user.SecretAccessKey, "us-east-1", service, time.Now())
		w := httptest.NewRecorder()
		srv.echo.ServeHTTP(w, req)
		return w
	}
	checked := 0
	for _, rt := range srv.echo.Routes() {
		key := rt.Method + " " + rt.Path
		if !strings.HasPrefix(rt.Path, "/v1/") || unsigned[key] || rt.Path == "/v1/dev/reset" {
			continue // /v1/dev/reset answers 404 outside coffer dev
		}
		body := ""
		if rt.Method == http.MethodPost {
			body = "{}"
		}
		w := call(rt.Method, rt.Path, "coffer", "", body)
		if !strings.Contains(w.Body.String(), `"__type":"AccessDeniedException"`) {
			t.Errorf("%s as a user without policies: %d %s", key, w.Code, w.Body)
		}
		checked++
	}
	if checked < 40 {
		t.Fatalf("only %d signed endpoints found", checked)
	}
	// Every operation, with a body its handler accepts as far as the
	// decision (a SecretId where one is needed).
	for name := range operations {
		body := `{"SecretId":"x","Name":"x","SecretIdList":["x"],"Tags":[{"Key":"k","Value":"v"}],"TagKeys":["k"],"ResourcePolicy":"{}","SecretString":"v","ClientRequestToken":"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee","AddReplicaRegions":[{"Region":"us-west-2"}],"RemoveReplicaRegions":["us-west-2"],"MoveToVersionId":"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee","VersionStage":"S"}`
		switch name {
		case "BatchGetSecretValue":
			body = `{"SecretIdList":["x"]}`
		case "ListSecrets", "GetRandomPassword":
			body = `{}`
		}
		w := call(http.MethodPost, "/", "secretsmanager", name, body)
		if !strings.Contains(w.Body.String(), "AccessDeniedException") {
			t.Errorf("%s as a user without policies: %d %s", name, w.Code, w.Body)
		}
	}
}
