package main

// End-to-end tests of the built coffer binary: real processes, real ports,
// real signals. They build ./cmd/coffer once (without -race: only the test
// process needs it) and drive the servers through /v1/health and the AWS
// SDK. Every wait polls against a deadline; none sleeps a fixed time.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server/servertest"
	"github.com/cofferhq/coffer/tlsutil/tlstest"
)

const (
	binRegion    = "us-east-1"
	pollInterval = 100 * time.Millisecond
	// callTimeout bounds one SDK call or health probe.
	callTimeout = 15 * time.Second
)

var binCreds = region.Credentials{AccessKeyID: "AKIABINARYTEST000001", SecretAccessKey: "binary/test/secret/key/0123456789abcdefgh"}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// cofferBinary builds ./cmd/coffer once per test run and returns its path.
func cofferBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the coffer binary; skipped with -short")
	}
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir, err = os.MkdirTemp("", "coffer-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(binDir, "coffer")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/coffer")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/coffer: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// moduleRoot walks up from the working directory (cmd/coffer under go
// test) to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// childEnv is the test's environment without COFFER_* variables, so only
// what a test sets reaches the binary through env binding.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COFFER_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

var (
	portsMu sync.Mutex
	used    = map[int]bool{}
)

// freeAddr returns 127.0.0.1:port for a port that was free for TCP and UDP
// (gossip uses both) and that this test run has not handed out before.
func freeAddr(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if used[port] {
			continue
		}
		used[port] = true
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	t.Fatal("no free port found")
	return ""
}

// logBuffer collects a process's output; the exec copier writes while the
// test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is one coffer process, restartable with the same arguments.
type proc struct {
	bin    string
	name   string
	args   []string
	env    []string
	stdout *logBuffer
	stderr *logBuffer // may be stdout

	cmd     *exec.Cmd
	done    chan struct{} // closed when Wait returned
	waitErr error         // set before done is closed
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	// The copiers must not outlive the process by much, should anything
	// inherit its pipes.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		p.waitErr = cmd.Wait()
		close(done)
	}()
}

func (p *proc) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be reaped.
func (p *proc) kill(t *testing.T) {
	if !p.running() {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("SIGKILL %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%s not reaped 30s after SIGKILL", p.name)
	}
}

// stop sends sig and requires a clean exit (status 0) within timeout.
func (p *proc) stop(t *testing.T, sig syscall.Signal, timeout time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s of %s", p.name, timeout, sig)
	}
	if p.waitErr != nil || p.cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("%s after %s: want exit status 0, got %v (state %v)", p.name, sig, p.waitErr, p.cmd.ProcessState)
	}
}

// dumpOnFailure logs every process's output if the test failed. Register
// it before the cleanup that kills the processes: cleanups run last first.
func dumpOnFailure(t *testing.T, procs []*proc) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range procs {
			if p.stderr != nil && p.stderr != p.stdout {
				t.Logf("===== %s stdout =====\n%s", p.name, p.stdout.String())
				t.Logf("===== %s stderr =====\n%s", p.name, p.stderr.String())
			} else {
				t.Logf("===== %s output =====\n%s", p.name, p.stdout.String())
			}
		}
	})
}

// health is the part of GET /v1/health the tests read.
type health struct {
	Region   string `json:"region"`
	NodeID   string `json:"node_id"`
	State    string `json:"state"`
	LeaderID string `json:"leader_id"`
	Term     uint64 `json:"term"`
	Serving  bool   `json:"serving"`
}

// healthClient uses the default transport, which trusts tlstest's shared
// CA (servertest), the CA of the servers these tests start.
var healthClient = &http.Client{Timeout: 3 * time.Second}

// securityFlags makes a server's TLS and gossip material with the binary's
// own commands, as an operator would, from tlstest's shared CA (which the
// test clients trust), and returns the flags that give it to the server.
func securityFlags(t *testing.T, bin, base, node string) []string {
	t.Helper()
	return securityFlagsIn(t, bin, base, node, binRegion)
}

// securityFlagsIn is securityFlags for a node of another region (one CA
// and one gossip key serve every region of a test).
func securityFlagsIn(t *testing.T, bin, base, node, region string) []string {
	t.Helper()
	caFile, caKey, gossipKey := filepath.Join(base, "coffer-ca.pem"), filepath.Join(base, "coffer-ca-key.pem"), filepath.Join(base, "gossip.key")
	if _, err := os.Stat(caFile); err != nil {
		ca := tlstest.Shared()
		os.WriteFile(caFile, ca.CertPEM, 0o644)
		os.WriteFile(caKey, ca.KeyPEM, 0o600)
		key, err := exec.Command(bin, "operator", "gossip", "keygen").Output()
		if err != nil {
			t.Fatalf("gossip keygen: %v", err)
		}
		os.WriteFile(gossipKey, key, 0o600)
	}
	cmd := exec.Command(bin, "operator", "tls", "cert", "create", "--node", node, "--region", region,
		"--ca", caFile, "--ca-key", caKey, "--out-dir", base)
	cmd.Env = childEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tls cert create: %v\n%s", err, out)
	}
	prefix := filepath.Join(base, region+"-server-"+node)
	return []string{"--tls-ca-file", caFile, "--tls-cert-file", prefix + ".pem", "--tls-key-file", prefix + "-key.pem", "--gossip-key-file", gossipKey}
}

func getHealth(apiAddr string) (health, int, error) {
	var h health
	resp, err := healthClient.Get("https://" + apiAddr + "/v1/health")
	if err != nil {
		return h, 0, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return h, resp.StatusCode, fmt.Errorf("decode health: %w", err)
	}
	return h, resp.StatusCode, nil
}

// waitUntil polls cond until it returns nil or timeout passes; the last
// error explains the timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(pollInterval)
	}
}

// transient reports whether an SDK error may go away by itself: the node
// is down or restarting (no API answer at all), or the cluster answered
// ServiceUnavailable (no leader yet, timeouts). Any other API error is a
// real answer and fails the test.
func transient(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode() == apierr.ServiceUnavailable || ae.ErrorCode() == apierr.Throttling
	}
	return true
}

// call retries op until it succeeds, while its errors are transient.
func call(t *testing.T, timeout time.Duration, what string, op func(ctx context.Context) error) {
	t.Helper()
	waitUntil(t, timeout, what, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		err := op(ctx)
		if err != nil && !transient(err) {
			t.Fatalf("%s: %v", what, err)
		}
		return err
	})
}

// newToken returns a fresh UUID for ClientRequestToken: one per logical
// write, reused by its retries so they are idempotent.
func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

type cluster3 struct {
	t       *testing.T
	nodes   []*proc
	ids     []string
	api     []string
	clients []*secretsmanager.Client
	// want is every secret written so far and its current value.
	want map[string]string
}

func (c *cluster3) index(id string) int { return slices.Index(c.ids, id) }

// waitAgreedLeader waits until every node in idx answers 200, knows a
// leader, they all name the same one, and that leader is in idx and says
// it leads. It returns the leader's index.
func (c *cluster3) waitAgreedLeader(idx []int, timeout time.Duration, what string) int {
	c.t.Helper()
	leader := -1
	waitUntil(c.t, timeout, what, func() error {
		var ids []string
		var leading []int
		for _, i := range idx {
			h, code, err := getHealth(c.api[i])
			if err != nil {
				return fmt.Errorf("%s: %v", c.ids[i], err)
			}
			if code != http.StatusOK || h.LeaderID == "" {
				return fmt.Errorf("%s: status %d, state %q, leader %q", c.ids[i], code, h.State, h.LeaderID)
			}
			if h.Region != binRegion {
				c.t.Fatalf("%s serves region %q, want %q (set through COFFER_REGION)", c.ids[i], h.Region, binRegion)
			}
			ids = append(ids, h.LeaderID)
			if h.State == "leader" {
				leading = append(leading, i)
			}
		}
		for _, id := range ids {
			if id != ids[0] {
				return fmt.Errorf("nodes disagree on the leader: %v", ids)
			}
		}
		l := c.index(ids[0])
		if l < 0 || !slices.Contains(idx, l) || len(leading) != 1 || leading[0] != l {
			return fmt.Errorf("leader %q is not one of the nodes asked, or does not say it leads (leading: %v)", ids[0], leading)
		}
		leader = l
		return nil
	})
	return leader
}

// put writes name=value through node i (CreateSecret the first time).
func (c *cluster3) put(i int, name, value string, timeout time.Duration) {
	c.t.Helper()
	token := newToken()
	_, exists := c.want[name]
	what := fmt.Sprintf("write %s=%s through %s", name, value, c.ids[i])
	call(c.t, timeout, what, func(ctx context.Context) error {
		if exists {
			_, err := c.clients[i].PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
				SecretId: aws.String(name), SecretString: aws.String(value), ClientRequestToken: aws.String(token)})
			return err
		}
		_, err := c.clients[i].CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String(name), SecretString: aws.String(value), ClientRequestToken: aws.String(token)})
		return err
	})
	c.want[name] = value
}

// readAll reads every secret written so far through each node in idx. A
// successful read must return the last acknowledged value: reads are
// linearizable on every node.
func (c *cluster3) readAll(idx []int, timeout time.Duration) {
	c.t.Helper()
	names := make([]string, 0, len(c.want))
	for name := range c.want {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, i := range idx {
		for _, name := range names {
			call(c.t, timeout, fmt.Sprintf("read %s through %s", name, c.ids[i]), func(ctx context.Context) error {
				out, err := c.clients[i].GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
				if err != nil {
					return err
				}
				if got := aws.ToString(out.SecretString); got != c.want[name] {
					c.t.Fatalf("read %s through %s: got %q, want %q", name, c.ids[i], got, c.want[name])
				}
				return nil
			})
		}
	}
}

// Three `coffer server` processes find each other through --join, bootstrap
// with --bootstrap-expect 3 and serve the SDK on every node; the cluster
// survives SIGKILL of its leader, the killed node comes back from its data
// directory and catches up, and SIGTERM shuts a node down cleanly.
// genRootKey writes a root key file with `coffer operator root-key
// generate` and returns its path.
func genRootKey(t *testing.T, bin, path string) string {
	t.Helper()
	gen := exec.Command(bin, "operator", "root-key", "generate", "--out", path)
	gen.Env = childEnv()
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("root-key generate: %v\n%s", err, out)
	}
	return path
}

// startCluster3 starts three `coffer server` processes of one region,
// with TLS on every port and the test's root credentials, in a temporary
// directory (returned: the CA and key files are there).
func startCluster3(t *testing.T) (*cluster3, string) {
	t.Helper()
	bin := cofferBinary(t)
	base := t.TempDir()

	rootKey := genRootKey(t, bin, filepath.Join(base, "root.key"))
	if fi, err := os.Stat(rootKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("root key file: %v, %v", fi, err)
	}
	credsFile := filepath.Join(base, "bootstrap-creds.json")
	raw, _ := json.Marshal(map[string]string{"AccessKeyId": binCreds.AccessKeyID, "SecretAccessKey": binCreds.SecretAccessKey})
	if err := os.WriteFile(credsFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	c := &cluster3{t: t, want: map[string]string{}}
	var gossip []string
	for i := range 3 {
		c.ids = append(c.ids, fmt.Sprintf("n%d", i+1))
		c.api = append(c.api, freeAddr(t))
		gossip = append(gossip, freeAddr(t))
	}
	for i, id := range c.ids {
		var join []string
		for j := range gossip {
			if j != i {
				join = append(join, gossip[j])
			}
		}
		out := &logBuffer{}
		c.nodes = append(c.nodes, &proc{
			bin:  bin,
			name: id,
			// --region comes from COFFER_REGION: env binding is under test.
			args: append([]string{"server",
				"--node-id", id,
				"--data-dir", filepath.Join(base, id),
				"--api-addr", c.api[i],
				"--cluster-addr", freeAddr(t),
				"--gossip-addr", gossip[i],
				"--join", strings.Join(join, ","),
				"--bootstrap-expect", "3",
				"--root-key-file", rootKey,
				"--bootstrap-credentials-file", credsFile,
				"--log-level", "info",
			}, securityFlags(t, bin, base, id)...),
			env:    childEnv("COFFER_REGION=" + binRegion),
			stdout: out, stderr: out,
		})
		c.clients = append(c.clients, servertest.NewClient("https://"+c.api[i], binRegion, binCreds, 0))
	}
	dumpOnFailure(t, c.nodes)
	t.Cleanup(func() {
		for _, p := range c.nodes {
			p.kill(t)
		}
	})
	for _, p := range c.nodes {
		p.start(t)
	}
	return c, base
}

func TestBinary_ThreeProcessesFormClusterAndSurviveKill9(t *testing.T) {
	c, _ := startCluster3(t)
	all := []int{0, 1, 2}

	// The region forms with no other step and every node serves.
	start := time.Now()
	c.waitAgreedLeader(all, 60*time.Second, "three nodes to elect and agree on a leader")
	t.Logf("cluster formed in %s", time.Since(start).Round(time.Millisecond))

	// Writes through every node; linearizable reads of everything
	// through every node.
	for i, id := range c.ids {
		c.put(i, "secret-"+id, "value-"+id, 30*time.Second)
	}
	c.readAll(all, 30*time.Second)

	// SIGKILL the leader: no leadership transfer, no gossip leave.
	leader := c.waitAgreedLeader(all, 30*time.Second, "a leader before the kill")
	killed := c.ids[leader]
	var survivors []int
	for _, i := range all {
		if i != leader {
			survivors = append(survivors, i)
		}
	}
	c.nodes[leader].kill(t)
	if c.nodes[leader].running() {
		t.Fatalf("%s survived SIGKILL", killed)
	}
	t.Logf("killed leader %s with SIGKILL", killed)

	start = time.Now()
	newLeader := c.waitAgreedLeader(survivors, 60*time.Second, "the survivors to agree on a new leader")
	t.Logf("survivors elected %s in %s", c.ids[newLeader], time.Since(start).Round(time.Millisecond))
	for _, i := range survivors {
		c.put(i, "secret-"+c.ids[i], "value-"+c.ids[i]+"-while-"+killed+"-down", 30*time.Second)
		c.put(i, "created-on-"+c.ids[i]+"-while-"+killed+"-down", "fresh-"+c.ids[i], 30*time.Second)
	}
	c.put(survivors[0], "secret-"+killed, "value-"+killed+"-rewritten-while-down", 30*time.Second)
	c.readAll(survivors, 30*time.Second)

	// The killed node restarts from its data directory with the same
	// flags and catches up with what it missed.
	c.nodes[leader].stdout.Write([]byte("\n===== restarted =====\n"))
	c.nodes[leader].start(t)
	start = time.Now()
	waitUntil(t, 60*time.Second, "the restarted node to serve", func() error {
		h, code, err := getHealth(c.api[leader])
		if err != nil {
			return err
		}
		if code != http.StatusOK || h.LeaderID == "" {
			return fmt.Errorf("status %d, state %q, leader %q", code, h.State, h.LeaderID)
		}
		return nil
	})
	c.readAll([]int{leader}, 60*time.Second)
	t.Logf("%s restarted and caught up in %s", killed, time.Since(start).Round(time.Millisecond))

	// SIGTERM a follower: graceful shutdown, exit status 0.
	leader = c.waitAgreedLeader(all, 60*time.Second, "all three nodes to agree on a leader after the restart")
	follower := (leader + 1) % 3
	rest := []int{leader, (leader + 2) % 3}
	start = time.Now()
	c.nodes[follower].stop(t, syscall.SIGTERM, 20*time.Second)
	t.Logf("%s exited 0 %s after SIGTERM", c.ids[follower], time.Since(start).Round(time.Millisecond))
	for _, i := range rest {
		c.put(i, "after-sigterm-"+c.ids[i], "still-serving-"+c.ids[i], 30*time.Second)
	}
	c.readAll(rest, 30*time.Second)
}

var (
	devKeyID  = regexp.MustCompile(`(?m)^\s*AWS_ACCESS_KEY_ID=(\S+)\s*$`)
	devSecret = regexp.MustCompile(`(?m)^\s*AWS_SECRET_ACCESS_KEY=(\S+)\s*$`)
	devField  = regexp.MustCompile(`(?m)^\s*(Region|Endpoint|Data directory):\s+(\S+)\s*$`)
)

// `coffer dev` prints a ready-to-use key pair and endpoint once it serves,
// the SDK works with them, and SIGINT stops it cleanly.
func TestBinary_DevPrintsCredentialsAndServes(t *testing.T) {
	bin := cofferBinary(t)
	apiAddr := freeAddr(t)
	tmp := t.TempDir()
	p := &proc{
		bin:  bin,
		name: "dev",
		args: []string{"dev", "--api-addr", apiAddr},
		// The default data directory is a temporary one: keep it inside
		// the test's.
		env:    childEnv("TMPDIR=" + tmp),
		stdout: &logBuffer{}, stderr: &logBuffer{},
	}
	dumpOnFailure(t, []*proc{p})
	t.Cleanup(func() { p.kill(t) })
	p.start(t)

	var out string
	waitUntil(t, 60*time.Second, "the dev server's banner", func() error {
		if !p.running() {
			t.Fatalf("coffer dev exited early: %v", p.waitErr)
		}
		out = p.stdout.String()
		// "Try it:" follows the key pair and the endpoint.
		if !strings.Contains(out, "Coffer dev server is serving.") || !strings.Contains(out, "Try it:") {
			return errors.New("not printed yet")
		}
		return nil
	})
	// The AWS CLI v2 and the SDKs read AWS_REGION; the CLI v1 reads only
	// AWS_DEFAULT_REGION: the example sets both.
	if want := "AWS_REGION=" + binRegion + " AWS_DEFAULT_REGION=" + binRegion + " "; !strings.Contains(out, want) {
		t.Fatalf("the Try it line does not set %q:\n%s", want, out)
	}
	keyID, secret := devKeyID.FindStringSubmatch(out), devSecret.FindStringSubmatch(out)
	if keyID == nil || secret == nil {
		t.Fatalf("no AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY lines in:\n%s", out)
	}
	fields := map[string]string{}
	for _, m := range devField.FindAllStringSubmatch(out, -1) {
		fields[m[1]] = m[2]
	}
	if fields["Region"] != binRegion || fields["Endpoint"] != "http://"+apiAddr {
		t.Fatalf("banner names region %q, endpoint %q; want %q, %q", fields["Region"], fields["Endpoint"], binRegion, "http://"+apiAddr)
	}
	dataDir := fields["Data directory"]
	if !strings.HasPrefix(dataDir, tmp) {
		t.Fatalf("data directory %q is not a temporary directory under TMPDIR %s", dataDir, tmp)
	}

	creds := region.Credentials{AccessKeyID: keyID[1], SecretAccessKey: secret[1]}
	cl := servertest.NewClient("http://"+apiAddr, binRegion, creds, 0)
	token := newToken()
	call(t, 30*time.Second, "CreateSecret with the printed credentials", func(ctx context.Context) error {
		_, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String("hello"), SecretString: aws.String("world"), ClientRequestToken: aws.String(token)})
		return err
	})
	call(t, 30*time.Second, "GetSecretValue with the printed credentials", func(ctx context.Context) error {
		got, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("hello")})
		if err == nil && aws.ToString(got.SecretString) != "world" {
			t.Fatalf("got %q, want %q", aws.ToString(got.SecretString), "world")
		}
		return err
	})

	p.stop(t, syscall.SIGINT, 20*time.Second)
	// Without --data-dir the data lives only as long as the server.
	if _, err := os.Stat(dataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dev data directory %s still exists after exit (stat: %v)", dataDir, err)
	}
}
