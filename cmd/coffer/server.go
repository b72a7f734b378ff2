package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/cofferhq/coffer/audit"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/rotation"
	"github.com/cofferhq/coffer/server"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
)

type serverFlags struct {
	nodeID, region, dataDir, apiAddr      string
	clusterAddr, clusterAdvertise         string
	gossipAddr, gossipAdvertise           string
	join                                  []string
	bootstrapExpect                       int
	rootKeyFile, bootstrapCredentialsFile string
	accountID                             string
	logLevel                              string
	heartbeat, election, lease            time.Duration
	snapshotThreshold, trailingLogs       uint64
	snapshotInterval                      time.Duration
	tombstoneRetention                    time.Duration
	deadServerGrace                       time.Duration
	minQuorum                             int
	tlsCAFile, tlsCertFile, tlsKeyFile    string
	gossipKeyFile                         string
	insecurePlaintext                     bool
	wanGossipAddr, wanGossipAdvertise     string
	rotatorExecDir                        string
	pprofAddr                             string
	rotationRetry                         time.Duration
	maxClockSkew                          time.Duration
	wanJoin                               []string
	auditDir                              string
	auditSegmentSize                      int64
}

func serverCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a Coffer server: one node of a region's Raft cluster",
		Long: `Run one node of a Coffer region. Three (or five) nodes of a region, started
with each other's gossip addresses in --join and --bootstrap-expect 3, form a
cluster with no other step; a node started later with --join becomes a voter.

Every port is encrypted. The cluster port (Raft and internal RPC) is mutual
TLS: each node presents its certificate (--tls-cert-file, --tls-key-file) and
accepts only servers of its own region whose certificates the region's CA
(--tls-ca-file) signed; 'coffer operator tls ca create' and 'coffer operator
tls cert create' make them. The API port serves HTTPS (TLS 1.2 or later) with
the same certificate. Gossip is encrypted with --gossip-key-file ('coffer
operator gossip keygen'). SIGHUP reloads the certificate, key and CA files.
Without this material the server refuses to start, unless --insecure-plaintext
is given (every port in the clear; for a closed test network only).

The root key opens the region's keyring. Given whole (--root-key-file, or
base64 in the COFFER_ROOT_KEY environment variable), the node unseals itself
and the first leader of a new region creates the keyring and the root access
key. Without it the node starts sealed: it answers health and the seal
endpoints only, and every other request gets "node is sealed". Initialize a
new region with 'coffer operator init' (Shamir shares) and unseal each node
with 'coffer operator unseal'.

With --bootstrap-credentials-file the root key pair is taken from that file
({"AccessKeyId": "...", "SecretAccessKey": "..."}); otherwise it is generated
and printed once (on stdout, or in the answer to 'coffer operator init').
Later starts ignore the file.

Regions find each other through the WAN pool: every server of every region
started with --wan-gossip-addr and, in --wan-join, the WAN address of any
server of any region (encrypted with the same --gossip-key-file). Each server
publishes its region, addresses, leadership and the region's replication
public key; 'coffer region list' shows what a server knows.

SIGTERM or SIGINT shut down gracefully: in-flight requests finish, a leader
hands leadership to another node, and the node leaves the gossip pool (the
leader then removes it from the Raft configuration). A server that fails
instead and stays failed longer than --dead-server-grace is removed by the
leader, never below --min-quorum voters.

Every API request and every signed operator call is recorded in the node's
audit log before it is answered: hash-chained JSON lines in --audit-dir
(default <data-dir>/audit), checked with 'coffer audit verify' and read with
'coffer audit tail' (docs/audit.md). Auditing cannot be turned off; while the
log cannot be written the node refuses requests with InternalFailure.

If the data directory holds raft/peers.json ('coffer operator raft recover',
after a lost quorum), the server replaces its Raft configuration with it at
start, removes the file and logs RECOVERY.`,
		Example: `  coffer server --node-id n1 --region us-east-1 --data-dir /var/lib/coffer \
    --api-addr 10.0.0.1:8201 --cluster-addr 10.0.0.1:8301 --gossip-addr 10.0.0.1:8401 \
    --join 10.0.0.2:8401,10.0.0.3:8401 --bootstrap-expect 3 \
    --tls-ca-file /etc/coffer/coffer-ca.pem --tls-cert-file /etc/coffer/us-east-1-server-n1.pem \
    --tls-key-file /etc/coffer/us-east-1-server-n1-key.pem --gossip-key-file /etc/coffer/gossip.key \
    --root-key-file /etc/coffer/root.key`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE:    func(cmd *cobra.Command, _ []string) error { return runServer(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.nodeID, "node-id", "", "unique id of this node in the region (required)")
	fl.StringVar(&f.region, "region", "", "region this node serves, e.g. us-east-1 (required)")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for the Raft log, stable store and snapshots (required)")
	fl.StringVar(&f.apiAddr, "api-addr", "127.0.0.1:8201", "address of the AWS API and operator endpoints")
	fl.StringVar(&f.clusterAddr, "cluster-addr", "127.0.0.1:8301", "bind address of the cluster port (Raft and internal RPC)")
	fl.StringVar(&f.clusterAdvertise, "cluster-advertise", "", "cluster address other nodes dial (default: --cluster-addr)")
	fl.StringVar(&f.gossipAddr, "gossip-addr", "127.0.0.1:8401", "bind address of the gossip port (memberlist, TCP and UDP)")
	fl.StringVar(&f.gossipAdvertise, "gossip-advertise", "", "gossip address other nodes dial (default: --gossip-addr)")
	fl.StringSliceVar(&f.join, "join", nil, "gossip addresses of other nodes, comma separated")
	fl.StringVar(&f.wanGossipAddr, "wan-gossip-addr", "", "bind address of the WAN gossip port, the pool of every server of every region (default: none, this region replicates with no other)")
	fl.StringVar(&f.wanGossipAdvertise, "wan-gossip-advertise", "", "WAN gossip address other servers dial (default: --wan-gossip-addr)")
	fl.DurationVar(&f.rotationRetry, "rotation-retry", 30*time.Second, "wait before retrying a failed rotation; doubles with each further failure, up to 1h")
	fl.DurationVar(&f.maxClockSkew, "max-clock-skew", 5*time.Minute, "how far a request's SigV4 signing time may be from this server's clock (AWS allows 5m); a longer window lets a captured request be replayed for longer")
	fl.StringVar(&f.pprofAddr, "pprof-addr", "", "loopback address to serve Go's CPU, heap, block and mutex profiles on (/debug/pprof/; no authentication; off when empty)")
	fl.StringVar(&f.rotatorExecDir, "rotator-exec-dir", "", "directory of the commands exec rotators may run (give every server the same; empty disables exec rotators)")
	fl.StringSliceVar(&f.wanJoin, "wan-join", nil, "WAN gossip addresses of servers of any region, comma separated")
	fl.IntVar(&f.bootstrapExpect, "bootstrap-expect", 0, "bootstrap a new region once this many servers are in the gossip pool")
	fl.StringVar(&f.rootKeyFile, "root-key-file", "", "file holding the region's root key (coffer operator root-key generate); without it (or COFFER_ROOT_KEY) the node starts sealed")
	fl.StringVar(&f.tlsCAFile, "tls-ca-file", "", "PEM CA certificate that signs the region's node certificates (cluster port mutual TLS)")
	fl.StringVar(&f.tlsCertFile, "tls-cert-file", "", "PEM certificate of this node (coffer operator tls cert create), for the cluster and API ports")
	fl.StringVar(&f.tlsKeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fl.StringVar(&f.gossipKeyFile, "gossip-key-file", "", "file holding the gossip encryption key (coffer operator gossip keygen)")
	fl.BoolVar(&f.insecurePlaintext, "insecure-plaintext", false, "run with every port in the clear (no TLS, no gossip encryption): closed test networks only")
	fl.StringVar(&f.bootstrapCredentialsFile, "bootstrap-credentials-file", "", "JSON root access key pair to install when the region bootstraps")
	fl.StringVar(&f.accountID, "account-id", region.DefaultAccountID, "12-digit account id in every ARN the region returns and accepts")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fl.StringVar(&f.auditDir, "audit-dir", "", "directory of the node's audit log (default: <data-dir>/audit)")
	fl.Int64Var(&f.auditSegmentSize, "audit-segment-size", audit.DefaultSegmentBytes, "bytes after which an audit segment file is closed and the next begun")
	d := cluster.DefaultConfig()
	fl.DurationVar(&f.heartbeat, "raft-heartbeat-timeout", d.HeartbeatTimeout, "Raft heartbeat timeout")
	fl.DurationVar(&f.election, "raft-election-timeout", d.ElectionTimeout, "Raft election timeout")
	fl.DurationVar(&f.lease, "raft-leader-lease-timeout", d.LeaderLeaseTimeout, "Raft leader lease timeout")
	fl.Uint64Var(&f.snapshotThreshold, "raft-snapshot-threshold", d.SnapshotThreshold, "log entries between snapshots")
	fl.DurationVar(&f.snapshotInterval, "raft-snapshot-interval", d.SnapshotInterval, "how often to check whether to snapshot")
	fl.Uint64Var(&f.trailingLogs, "raft-trailing-logs", d.TrailingLogs, "log entries kept after a snapshot")
	fl.DurationVar(&f.deadServerGrace, "dead-server-grace", d.DeadServerGrace,
		"how long a server must have failed (not left) before the leader removes it from the Raft voters; 0 never removes")
	fl.IntVar(&f.minQuorum, "min-quorum", d.MinQuorum, "the fewest voters the removal of dead servers leaves")
	fl.DurationVar(&f.tombstoneRetention, "tombstone-retention", 72*time.Hour,
		"how long the change feed keeps a removed secret's tombstone: the longest a replica or watcher may be away and still resume")
	return cmd
}

var accountIDPattern = regexp.MustCompile(`^[0-9]{12}$`)

func runServer(cmd *cobra.Command, f *serverFlags) error {
	for name, v := range map[string]string{"--node-id": f.nodeID, "--region": f.region, "--data-dir": f.dataDir} {
		if v == "" {
			return fmt.Errorf("%s is required", name)
		}
	}
	if !accountIDPattern.MatchString(f.accountID) {
		return fmt.Errorf("--account-id must be 12 digits, got %q", f.accountID)
	}
	if !regionName.MatchString(f.region) || len(f.region) > 128 {
		return fmt.Errorf("--region must be a region name such as us-east-1, got %q", f.region)
	}
	if f.maxClockSkew < time.Second || f.maxClockSkew > time.Hour {
		return fmt.Errorf("--max-clock-skew must be between 1s and 1h, got %s", f.maxClockSkew)
	}
	if f.rotationRetry < time.Second || f.rotationRetry > time.Hour {
		return fmt.Errorf("--rotation-retry must be between 1s and 1h, got %s", f.rotationRetry)
	}
	if f.auditSegmentSize < 4096 {
		return fmt.Errorf("--audit-segment-size must be at least 4096 bytes, got %d", f.auditSegmentSize)
	}
	if f.auditDir == "" {
		f.auditDir = filepath.Join(f.dataDir, "audit")
	}
	sec, err := loadSecurity(f)
	if err != nil {
		return err
	}
	sigs := notifyShutdown()
	rootKey, err := serverRootKey(f.rootKeyFile)
	if err != nil {
		return err
	}
	var creds *region.Credentials
	if f.bootstrapCredentialsFile != "" {
		c, err := readCredentials(f.bootstrapCredentialsFile)
		if err != nil {
			return err
		}
		creds = &c
	}
	logger := newLogger(cmd.ErrOrStderr(), f.logLevel)
	if f.insecurePlaintext {
		logger.Warn("INSECURE: --insecure-plaintext: the API, the cluster port and gossip are in the clear and the cluster port trusts any peer; never run this way on a network you do not fully control")
	}
	if rootKey == nil {
		logger.Warn("no root key given (--root-key-file, COFFER_ROOT_KEY): the node starts sealed; unseal it with `coffer operator unseal`, or initialize a new region with `coffer operator init`")
	}
	// The node's one wall clock, for its timestamps, purge and SigV4
	// window; a faults build may skew it (--faults-clock-file).
	clock, stopClock := faultClock(logger)
	defer stopClock()
	cc := cluster.DefaultConfig()
	cc.NodeID, cc.Region, cc.DataDir = f.nodeID, f.region, f.dataDir
	cc.ClusterAddr, cc.ClusterAdvertise = f.clusterAddr, f.clusterAdvertise
	cc.GossipAddr, cc.GossipAdvertise = f.gossipAddr, f.gossipAdvertise
	cc.Join, cc.BootstrapExpect, cc.APIAddr = f.join, f.bootstrapExpect, f.apiAddr
	cc.TLS, cc.GossipKey = sec.clusterTLS(), sec.gossipKey
	cc.HeartbeatTimeout, cc.ElectionTimeout, cc.LeaderLeaseTimeout = f.heartbeat, f.election, f.lease
	cc.SnapshotThreshold, cc.SnapshotInterval, cc.TrailingLogs = f.snapshotThreshold, f.snapshotInterval, f.trailingLogs
	cc.DeadServerGrace, cc.MinQuorum = f.deadServerGrace, f.minQuorum
	applyFaults(&cc)
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	// The wiring, top to bottom (docs/architecture.md, "Packages"): the
	// region service over its Raft node, then leader-only work registered
	// with the region between New and Start (replication's shippers;
	// rotation's scheduler will join them; the purge is the region's own),
	// then the WAN pool, then the HTTP server over the region.
	// Metrics first: raft reports through go-metrics' global sink from
	// its start.
	reg, err := newMetricsRegistry()
	if err != nil {
		return err
	}
	r, err := region.New(region.Config{
		Cluster: cc, AccountID: f.accountID, RootKey: rootKey, Bootstrap: creds, Logger: logger, Clock: clock,
		TombstoneRetention: f.tombstoneRetention,
		OnGenerated: func(name string, c region.Credentials) {
			fmt.Fprintf(out, "Root credentials of region %s (shown once; store them now):\n  AWS_ACCESS_KEY_ID=%s\n  AWS_SECRET_ACCESS_KEY=%s\n",
				name, c.AccessKeyID, c.SecretAccessKey)
		},
	})
	crypto.Zero(rootKey)
	if err != nil {
		return err
	}
	// The audit log before anything serves: a server that cannot audit
	// does not start.
	alog, err := audit.Open(f.auditDir, audit.Options{SegmentBytes: f.auditSegmentSize})
	if err != nil {
		return err
	}
	defer alog.Close()
	logger.Info("audit log", "dir", f.auditDir, "sequence", alog.Sequence())
	repl := replication.New(replication.Config{Region: r, Logger: logger.Named("replication")})
	sched := rotation.New(rotation.Config{Region: r, Logger: logger.Named("rotation"), Build: rotation.Builder{ExecDir: f.rotatorExecDir}.Build,
		Retry: rotation.Backoff(f.rotationRetry)})
	if err := r.Start(); err != nil {
		return err
	}
	repl.Serve()
	sc := server.Config{APIAddr: f.apiAddr, TLS: sec.api, Logger: logger, Clock: clock, Metrics: reg, Audit: alog, NodeID: f.nodeID, MaxClockSkew: f.maxClockSkew}
	var wan *replication.Pool
	if f.wanGossipAddr != "" {
		wan, err = replication.StartPool(replication.PoolConfig{BindAddr: f.wanGossipAddr, Advertise: f.wanGossipAdvertise,
			Join: f.wanJoin, GossipKey: sec.gossipKey, Logger: logger.Named("wan"),
			Self: func() replication.Node { return replication.Self(r, f.apiAddr) }})
		if err != nil {
			r.Shutdown()
			return err
		}
		sc.Regions = wan.Members
		repl.SetPeers(wan.Members)
	} else if len(f.wanJoin) > 0 {
		r.Shutdown()
		return errors.New("--wan-join needs --wan-gossip-addr")
	}
	srv, err := server.New(sc, r)
	if err == nil {
		sched.SetAPI(srv.Caller(r.Name()))
		err = srv.Start()
	}
	if err != nil {
		if wan != nil {
			wan.Leave(time.Second)
		}
		r.Shutdown()
		return err
	}
	if f.pprofAddr != "" {
		stopPprof, err := servePprof(f.pprofAddr, logger)
		if err != nil {
			shutdown(logger, srv, r)
			return err
		}
		defer stopPprof()
	}
	logger.Info("coffer server started", "node_id", f.nodeID, "region", f.region, "api", srv.Addr(),
		"cluster", r.Node().ClusterAddr(), "gossip", r.Node().GossipAddr())
	stopReload := sec.reloadOnHUP(logger)
	defer stopReload()
	waitForSignal(logger, sigs)
	if wan != nil {
		if err := wan.Leave(2 * time.Second); err != nil {
			logger.Warn("leaving the WAN pool", "error", err)
		}
	}
	shutdown(logger, srv, r)
	return nil
}

// shutdown is graceful: in-flight requests finish, then the node hands
// off leadership and leaves the pool, then Raft stops.
func shutdown(logger hclog.Logger, srv *server.Server, regions ...*region.Region) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		logger.Warn("HTTP shutdown", "error", err)
	}
	for _, r := range regions {
		if err := r.Leave(5 * time.Second); err != nil {
			logger.Warn("leave failed", "region", r.Name(), "error", err)
		}
		if err := r.Shutdown(); err != nil {
			logger.Warn("raft shutdown", "region", r.Name(), "error", err)
		}
	}
	logger.Info("coffer stopped")
}

// notifyShutdown starts catching SIGINT and SIGTERM. Call it before the
// API can answer, so a signal sent as soon as a client got an answer
// shuts down gracefully instead of killing the process.
func notifyShutdown() chan os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	return ch
}

func waitForSignal(logger hclog.Logger, ch chan os.Signal) {
	sig := <-ch
	signal.Stop(ch)
	logger.Info("shutting down", "signal", sig.String())
}

func newLogger(w io.Writer, level string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "coffer", Level: hclog.LevelFromString(level), Output: w})
}

// readCredentials reads a `coffer server` --bootstrap-credentials-file:
// the pair must have the strength of a real one.
func readCredentials(path string) (region.Credentials, error) {
	c, err := loadCredentials(path)
	if err != nil {
		return c, err
	}
	if len(c.AccessKeyID) < 16 || len(c.AccessKeyID) > 128 || strings.ContainsAny(c.AccessKeyID, "/ \t\n") {
		return c, fmt.Errorf("credentials file %s: AccessKeyId must be 16-128 characters without '/' or spaces", path)
	}
	if len(c.SecretAccessKey) < 16 {
		return c, errors.New("credentials file " + path + ": SecretAccessKey must be at least 16 characters")
	}
	return c, nil
}

// loadCredentials parses a credentials file,
// {"AccessKeyId": "...", "SecretAccessKey": "..."}, without judging the keys.
func loadCredentials(path string) (region.Credentials, error) {
	var c region.Credentials
	raw, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read credentials: %w", err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return c, nil
}
