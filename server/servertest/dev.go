package servertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/audit"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/rotation"
	"github.com/cofferhq/coffer/server"
	"github.com/hashicorp/go-hclog"
)

// DevOptions configure NewDev.
type DevOptions struct {
	Regions   []string // default: us-east-1
	AccountID string   // default: region.DefaultAccountID
}

// Dev is what `coffer dev` runs, in-process: one single-node region per
// name, each with its own Raft group, data directory and root key, behind
// one HTTP server with the dev endpoints on. Every region's root key pair
// is Credentials.
type Dev struct {
	Regions  map[string]*region.Region
	Server   *server.Server
	Endpoint string
	// AuditDir is the server's audit log directory (<base>/audit).
	AuditDir string
}

// NewDev starts the regions and waits until each leads with an open
// keyring. Everything stops when the test ends.
func NewDev(t testing.TB, opts DevOptions) *Dev {
	t.Helper()
	names := opts.Regions
	if len(names) == 0 {
		names = []string{Region}
	}
	logOut := &testWriter{t: t}
	base := t.TempDir()
	d := &Dev{Regions: map[string]*region.Region{}, AuditDir: filepath.Join(base, "audit")}
	alog, err := audit.Open(d.AuditDir, audit.Options{})
	if err != nil {
		t.Fatalf("open the audit log: %v", err)
	}
	var regions []*region.Region
	var repls []*replication.Service
	var scheds []*rotation.Scheduler
	leaveWAN := func() {}
	t.Cleanup(func() {
		if d.Server != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			d.Server.Shutdown(ctx)
			cancel()
		}
		leaveWAN()
		for _, r := range regions {
			r.Shutdown()
		}
		alog.Close()
		logOut.stop()
	})
	for _, name := range names {
		cc := cluster.DefaultConfig()
		cc.NodeID, cc.Region, cc.DataDir = "dev", name, filepath.Join(base, name)
		cc.ClusterAddr, cc.GossipAddr, cc.GossipLocal = "127.0.0.1:0", "127.0.0.1:0", true
		// The timings of coffer dev: one voter needs no slack for peers.
		cc.HeartbeatTimeout, cc.ElectionTimeout, cc.LeaderLeaseTimeout = 20*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond
		creds := Credentials
		logger := hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Info, Output: logOut})
		r, err := region.New(region.Config{Cluster: cc, AccountID: opts.AccountID,
			RootKey: crypto.RandomKey(), Bootstrap: &creds, Logger: logger})
		if err != nil {
			t.Fatalf("start region %s: %v", name, err)
		}
		repl := replication.New(replication.Config{Region: r, Logger: logger.Named("replication")})
		scheds = append(scheds, rotation.New(rotation.Config{Region: r, Logger: logger.Named("rotation")}))
		if err := r.Start(); err != nil {
			t.Fatalf("start region %s: %v", name, err)
		}
		repl.Serve()
		regions, repls = append(regions, r), append(repls, repl)
		if err := r.Node().Bootstrap(); err != nil {
			t.Fatalf("bootstrap region %s: %v", name, err)
		}
		d.Regions[name] = r
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range names {
		r := d.Regions[name]
		for !r.Node().IsLeader() || r.Sealed() {
			if time.Now().After(deadline) {
				t.Fatalf("region %s did not start serving within 30s", name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	devLogger := hclog.New(&hclog.LoggerOptions{Name: "dev", Level: hclog.Info, Output: logOut})
	var apiAddr atomic.Value
	apiAddr.Store("")
	members, leave, err := replication.JoinHosted(repls, func() string { return apiAddr.Load().(string) }, devLogger)
	if err != nil {
		t.Fatalf("join the dev regions: %v", err)
	}
	leaveWAN = leave
	served := make([]server.Region, len(regions))
	for i, r := range regions {
		served[i] = r
	}
	srv, err := server.New(server.Config{APIAddr: "127.0.0.1:0", Dev: true, Logger: devLogger, Regions: members, Audit: alog}, served...)
	if err == nil {
		for i, r := range regions {
			scheds[i].SetAPI(srv.Caller(r.Name()))
		}
	}
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		t.Fatalf("start dev API: %v", err)
	}
	d.Server, d.Endpoint = srv, "http://"+srv.Addr()
	apiAddr.Store(srv.Addr())
	return d
}

// Client returns an SDK client signing for region with the dev root key,
// retries off.
func (d *Dev) Client(region string) *secretsmanager.Client {
	return NewClient(d.Endpoint, region, Credentials, 0)
}

// Reset calls POST /v1/dev/reset signed for region with the dev root key.
func (d *Dev) Reset(region string) (status int, body []byte, err error) {
	return DevReset(d.Endpoint, region, Credentials)
}

var devHTTP = &http.Client{Timeout: 60 * time.Second}

// DevReset sends POST /v1/dev/reset to endpoint, signed with SigV4 for the
// signing name "coffer" and region, and returns the status and body.
func DevReset(endpoint, region string, creds region.Credentials) (status int, body []byte, err error) {
	req, err := http.NewRequest(http.MethodPost, endpoint+"/v1/dev/reset", bytes.NewReader(nil))
	if err != nil {
		return 0, nil, err
	}
	acl.Sign(req, nil, creds.AccessKeyID, creds.SecretAccessKey, region, "coffer", time.Now())
	resp, err := devHTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read reset answer: %w", err)
	}
	return resp.StatusCode, body, nil
}
