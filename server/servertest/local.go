package servertest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/audit"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server"
	"github.com/hashicorp/go-hclog"
)

// Local is the HTTP server backed by one in-memory region
// (region.Config.Local): no Raft, no disk, no gossip. Every command is
// applied on the handler's goroutine, so a test of a handler needs
// neither elections nor polling for followers. The region's root key
// pair is Credentials.
type Local struct {
	Region   *region.Region
	Server   *server.Server
	Endpoint string
	// AuditDir is the server's audit log directory (in the test's
	// temporary directory).
	AuditDir string
}

// NewLocal starts a local region named Region behind an HTTP server on
// 127.0.0.1 and waits until it has bootstrapped (unless tune takes its
// root key away). tune, if given, changes
// the region's config first. Everything stops when the test ends.
func NewLocal(t testing.TB, tune ...func(*region.Config)) *Local {
	t.Helper()
	logOut := &testWriter{t: t}
	logger := hclog.New(&hclog.LoggerOptions{Name: "local", Level: hclog.Info, Output: logOut})
	cc := cluster.DefaultConfig()
	cc.NodeID, cc.Region = "local", Region
	creds := Credentials
	rc := region.Config{Cluster: cc, RootKey: crypto.RandomKey(), Bootstrap: &creds, Logger: logger, Local: true}
	for _, f := range tune {
		f(&rc)
	}
	r, err := region.Start(rc)
	if err != nil {
		t.Fatalf("start local region: %v", err)
	}
	l := &Local{Region: r, AuditDir: filepath.Join(t.TempDir(), "audit")}
	alog, err := audit.Open(l.AuditDir, audit.Options{})
	if err != nil {
		r.Shutdown()
		t.Fatalf("open the audit log: %v", err)
	}
	t.Cleanup(func() {
		if l.Server != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			l.Server.Shutdown(ctx)
			cancel()
		}
		r.Shutdown()
		alog.Close()
		logOut.stop()
	})
	srv, err := server.New(server.Config{APIAddr: "127.0.0.1:0", Logger: logger, Clock: rc.Clock, Audit: alog}, r)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		t.Fatalf("start local API: %v", err)
	}
	l.Server, l.Endpoint = srv, "http://"+srv.Addr()
	deadline := time.Now().Add(10 * time.Second)
	// A region started without a root key stays sealed until a test
	// initializes or unseals it.
	for rc.RootKey != nil && r.Sealed() {
		if time.Now().After(deadline) {
			t.Fatal("the local region did not bootstrap within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	return l
}

// Client returns an SDK client signed with the root credentials, retries
// off.
func (l *Local) Client() *secretsmanager.Client {
	return NewClient(l.Endpoint, Region, Credentials, 0)
}
