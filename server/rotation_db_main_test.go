package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/rotation/dbtest"
	"github.com/cofferhq/coffer/server/servertest"
)

// The database servers are started once per test binary, on first use,
// and stopped by TestMain: each takes seconds to initialize.
var (
	dbDir     string
	serversMu sync.Mutex
	servers   = map[string]*started{}
)

type started struct {
	srv *dbtest.Server
	err error
}

func TestMain(m *testing.M) {
	var err error
	if dbDir, err = os.MkdirTemp("", "coffer-rotation-db-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	for _, s := range servers {
		s.srv.Stop()
	}
	os.RemoveAll(dbDir)
	os.Exit(code)
}

// server returns the running server of kind ("postgres" or "mariadb"),
// starting it on first use; the test skips if its binaries are absent.
func dbServer(t *testing.T, kind string) *dbtest.Server {
	t.Helper()
	serversMu.Lock()
	defer serversMu.Unlock()
	s, ok := servers[kind]
	if !ok {
		s = &started{}
		dir := filepath.Join(dbDir, kind)
		switch kind {
		case "postgres":
			s.srv, s.err = dbtest.Postgres(dir)
		case "mariadb":
			s.srv, s.err = dbtest.MariaDB(dir)
		}
		servers[kind] = s
	}
	if errors.Is(s.err, dbtest.ErrNotInstalled) {
		t.Skipf("no %s server on this machine: %v (.ci/run installs it)", kind, s.err)
	}
	if s.err != nil {
		t.Fatalf("start %s: %v", kind, s.err)
	}
	return s.srv
}

// httpAPI is rotation.API over Coffer's HTTP API, as an AWS SDK calls it:
// a JSON POST named by X-Amz-Target, signed with SigV4.
type httpAPI struct {
	endpoint string
	signer   *v4.Signer
	creds    aws.Credentials
}

func newAPI(c *servertest.Cluster) *httpAPI {
	return &httpAPI{
		endpoint: c.Nodes[0].Endpoint,
		signer:   v4.NewSigner(),
		creds: aws.Credentials{AccessKeyID: servertest.Credentials.AccessKeyID,
			SecretAccessKey: servertest.Credentials.SecretAccessKey},
	}
}

// Call retries while the region elects a leader, as the SDK's clients
// do: the test cluster's leader may change under a loaded machine. The
// operations the rotators call are idempotent (the writes carry a token
// or name their versions).
func (a *httpAPI) Call(ctx context.Context, operation string, in, out any) error {
	for try := 1; ; try++ {
		err := a.call(ctx, operation, in, out)
		if try == 10 || !(apierr.Is(err, apierr.ServiceUnavailable) || apierr.Is(err, apierr.Throttling)) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		}
	}
}

func (a *httpAPI) call(ctx context.Context, operation string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-Amz-Target", "secretsmanager."+operation)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	sum := sha256.Sum256(body)
	if err := a.signer.SignHTTP(ctx, a.creds, req, hex.EncodeToString(sum[:]), "secretsmanager", servertest.Region, time.Now()); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(data, &e); err != nil || e.Type == "" {
			return fmt.Errorf("%s: HTTP %d: %s", operation, resp.StatusCode, data)
		}
		// AWS may send the code with its namespace: "ns#Code".
		if i := strings.LastIndex(e.Type, "#"); i >= 0 {
			e.Type = e.Type[i+1:]
		}
		return apierr.New(e.Type, e.Message)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// uuid returns a random version 4 UUID: a ClientRequestToken.
func uuid() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
