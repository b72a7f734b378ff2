package server

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/audit"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
	"github.com/hashicorp/go-memdb"
)

// breakingRegion closes the audit log when a handler resolves a secret:
// the request passed the check before it ran, and its record cannot be
// written once it has run.
type breakingRegion struct {
	*region.Region
	log   *audit.Log
	armed bool
}

func (b *breakingRegion) Resolve(txn *memdb.Txn, id string) *fsm.Secret {
	if b.armed {
		b.log.Close()
	}
	return b.Region.Resolve(txn, id)
}

// A request that ran but whose record cannot be written gets an
// InternalFailure, and its answer (here a secret value) is not sent.
func TestAudit_AnswerWithheldWhenRecordFails(t *testing.T) {
	creds := region.Credentials{AccessKeyID: "AKIAFUZZFUZZFUZZFUZZ", SecretAccessKey: "fuzz/secret/key/for/coffer/fuzzing/01234"}
	r := startLocalRegion(t, creds)
	alog := openAudit(t)
	br := &breakingRegion{Region: r, log: alog}
	srv, err := New(Config{Audit: alog}, br)
	if err != nil {
		t.Fatal(err)
	}
	call := func(op, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "http://audit.local/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", "secretsmanager."+op)
		req.Header.Set("Content-Type", contentTypeJSON11)
		// As the transport would send it (the server checks it as signed).
		req.Header.Set("Content-Length", strconv.Itoa(len(body)))
		acl.Sign(req, []byte(body), creds.AccessKeyID, creds.SecretAccessKey, "us-east-1", "secretsmanager", time.Now())
		w := httptest.NewRecorder()
		srv.echo.ServeHTTP(w, req)
		return w
	}
	const value = "withheld-plaintext-5e6f"
	if w := call("CreateSecret", `{"Name":"w","SecretString":"`+value+`","ClientRequestToken":"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}`); w.Code != 200 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	br.armed = true
	w := call("GetSecretValue", `{"SecretId":"w"}`)
	if w.Code != http.StatusInternalServerError || w.Header().Get("X-Amzn-ErrorType") != "InternalFailure" ||
		bytes.Contains(w.Body.Bytes(), []byte(value)) || !bytes.Contains(w.Body.Bytes(), []byte("audit log")) {
		t.Fatalf("answer with the record unwritten: %d %v %s", w.Code, w.Header(), w.Body)
	}
}

// startLocalRegion starts a one-node local region bootstrapped with
// creds and waits until they sign; it is shut down when t ends.
func startLocalRegion(t testing.TB, creds region.Credentials) *region.Region {
	t.Helper()
	cc := cluster.DefaultConfig()
	cc.NodeID, cc.Region = "local", "us-east-1"
	r, err := region.Start(region.Config{Cluster: cc, RootKey: crypto.RandomKey(), Bootstrap: &creds, Local: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown() })
	for deadline := time.Now().Add(10 * time.Second); r.Sealed() || !hasKey(r, creds.AccessKeyID); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("local region did not bootstrap")
		}
	}
	return r
}

// openAudit opens an audit log in t's temporary directory.
func openAudit(t testing.TB) *audit.Log {
	t.Helper()
	alog, err := audit.Open(filepath.Join(t.TempDir(), "audit"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	return alog
}

func hasKey(r *region.Region, id string) bool {
	_, _, ok := r.AccessKey(context.Background(), id)
	return ok
}
