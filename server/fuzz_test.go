package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/audit"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/region"
)

// FuzzOperations feeds arbitrary bodies and X-Amz-Target values, signed
// with the root keys, to the real handler chain of a real 1-node region
// (Raft, memdb FSM, keyring): authentication, routing, decoding,
// validation and the operation itself. Every answer must be a 200 or a
// 4xx with an AWS error type and a message: no panic (the recovery
// middleware would make it a 500) and no 5xx.
//
// Seeds are in testdata/fuzz/FuzzOperations (a valid request for every
// operation and malformed ones). Run with
//
//	go test -run '^$' -fuzz FuzzOperations -fuzztime 20s -fuzzminimizetime 5s ./server/
//
// (New inputs are minimized first; progress counts pause meanwhile.)
func FuzzOperations(f *testing.F) {
	// One region per fuzz process (each worker runs this body once and
	// then the fuzz function many times).
	creds := region.Credentials{AccessKeyID: "AKIAFUZZFUZZFUZZFUZZ", SecretAccessKey: "fuzz/secret/key/for/coffer/fuzzing/01234"}
	dir := f.TempDir()
	cfg := cluster.DefaultConfig()
	cfg.NodeID, cfg.Region, cfg.DataDir = "fuzz1", "us-east-1", filepath.Join(dir, "n1")
	cfg.ClusterAddr, cfg.GossipAddr, cfg.GossipLocal, cfg.BootstrapExpect = "127.0.0.1:0", "127.0.0.1:0", true, 1
	r, err := region.Start(region.Config{Cluster: cfg, RootKey: crypto.RandomKey(), Bootstrap: &creds})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.Shutdown() })
	alog, err := audit.Open(filepath.Join(dir, "audit"), audit.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { alog.Close() })
	srv, err := New(Config{Audit: alog}, r)
	if err != nil {
		f.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !r.Node().IsLeader() || r.Sealed() {
		if time.Now().After(deadline) {
			f.Fatal("the fuzz region did not start serving")
		}
		time.Sleep(10 * time.Millisecond)
	}

	f.Add("secretsmanager.ListSecrets", []byte(`{}`))
	f.Fuzz(func(t *testing.T, target string, body []byte) {
		for _, c := range []byte(target) {
			if c < 0x20 || c == 0x7f {
				return // not a valid HTTP header value; never reaches a handler
			}
		}
		req := httptest.NewRequest(http.MethodPost, "http://fuzz.local/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		if target != "" {
			req.Header.Set("X-Amz-Target", target)
		}
		// As a transport sends it: SigV4 signs Content-Length, and
		// httptest.NewRequest does not set the header.
		req.Header.Set("Content-Length", strconv.Itoa(len(body)))
		acl.Sign(req, body, creds.AccessKeyID, creds.SecretAccessKey, "us-east-1", "secretsmanager", time.Now())
		rec := httptest.NewRecorder()
		srv.echo.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", target, body, rec.Code, rec.Body.Bytes())
		}
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"Message"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatalf("%s %q: %d answer is not JSON: %q", target, body, rec.Code, rec.Body.Bytes())
		}
		if e.Type == apierr.InvalidSignature || e.Type == apierr.IncompleteSignature {
			// The harness signs every request: a refused signature means
			// the operations are not being fuzzed at all.
			t.Fatalf("%s %q: the harness's signature was refused: %s", target, body, e.Message)
		}
		if rec.Code >= 400 && (e.Type == "" || e.Message == "" || strings.Contains(e.Type, "#")) {
			t.Fatalf("%s %q: %d without an error type and message: %s", target, body, rec.Code, rec.Body.Bytes())
		}
		if rec.Code != http.StatusOK && rec.Code < 400 {
			t.Fatalf("%s %q: status %d", target, body, rec.Code)
		}
	})
}
