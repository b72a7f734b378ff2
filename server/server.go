// Package server is Coffer's HTTP face: the AWS Secrets Manager JSON 1.1
// protocol on POST /, SigV4 authentication, and the operator endpoints
// under /v1/. It knows HTTP and the AWS wire format, not Raft: it decodes
// and validates requests, builds fsm commands and hands them to the region
// service it is given, through the Region interface (region.go) that it
// defines itself.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/audit"
	"github.com/cofferhq/coffer/replication"
	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures the HTTP server.
type Config struct {
	APIAddr string
	// TLS serves the API over HTTPS; nil serves plain HTTP (coffer dev,
	// --insecure-plaintext).
	TLS *tls.Config
	// Dev enables the dev-only endpoints.
	Dev bool
	// MaxBodyBytes bounds a request body; larger requests are refused
	// before they are read in full.
	MaxBodyBytes int64
	Logger       hclog.Logger
	// Clock is the wall clock of the Date header and of the SigV4
	// request-time window; nil is time.Now. Give it the clock of the
	// regions (region.Config.Clock): a faults build skews both together.
	Clock func() time.Time
	// MaxClockSkew is how far a request's SigV4 time may be from the
	// server's clock (0: AWS's 5 minutes). It bounds how long a captured
	// request stays replayable.
	MaxClockSkew time.Duration
	// Regions lists every server of every region this one knows (the WAN
	// pool; GET /v1/regions); nil answers with the hosted regions alone.
	Regions func() []replication.Node
	// Metrics is the registry GET /v1/metrics serves; the server adds its
	// own figures to it. nil: a registry of the server's own.
	Metrics *prometheus.Registry
	// Audit is the node's audit log (docs/audit.md). Required: auditing
	// is always on, and the server refuses to serve while it cannot write
	// to it. The server does not close it.
	Audit *audit.Log
	// NodeID names this node in audit records (default: the first
	// region's node id).
	NodeID string
}

// devReplicationWait bounds how long coffer dev holds an answer for the
// replica regions to apply a write.
const devReplicationWait = 10 * time.Second

// DefaultConfig returns the server defaults.
func DefaultConfig() Config {
	return Config{MaxBodyBytes: 1 << 20}
}

// Server serves the API for one or more regions hosted by this process.
type Server struct {
	cfg      Config
	logger   hclog.Logger
	echo     *echo.Echo
	http     *http.Server
	ln       net.Listener
	regions  map[string]Region
	names    []string
	verifier acl.Verifier
	admin    acl.Verifier
	// policies and callers cache parsed policy documents and callers
	// (authz.go).
	policies policyCache
	callers  callerCache
	metrics  *serverMetrics
	gatherer prometheus.Gatherer
	nodeID   string
}

// New builds a server for the given regions; Start begins serving.
func New(cfg Config, regions ...Region) (*Server, error) {
	if len(regions) == 0 {
		return nil, errors.New("server needs at least one region")
	}
	if cfg.Audit == nil {
		return nil, errors.New("server needs an audit log (Config.Audit): auditing is always on")
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultConfig().MaxBodyBytes
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Server{cfg: cfg, logger: logger.Named("http"), regions: map[string]Region{}}
	for _, r := range regions {
		s.regions[r.Name()] = r
		r.OnPurge(s.auditPurge(r))
		s.names = append(s.names, r.Name())
	}
	slices.Sort(s.names)
	s.nodeID = cfg.NodeID
	if s.nodeID == "" {
		s.nodeID = s.regions[s.names[0]].Status().NodeID
	}
	reg := cfg.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.gatherer = reg
	s.metrics = newServerMetrics(reg, func() []Region {
		out := make([]Region, 0, len(s.names))
		for _, n := range s.names {
			out = append(out, s.regions[n])
		}
		return out
	})
	lookup := func(ctx context.Context, region, id string) (string, bool) {
		r := s.regions[region]
		if r == nil {
			return "", false
		}
		_, secret, ok := r.AccessKey(ctx, id)
		return secret, ok
	}
	s.verifier = acl.Verifier{Service: "secretsmanager", Regions: s.hosts, RegionList: s.regionNames, Lookup: lookup, Now: cfg.Clock, MaxSkew: cfg.MaxClockSkew}
	s.admin = acl.Verifier{Service: "coffer", Regions: s.hosts, RegionList: s.regionNames, Lookup: lookup, Now: cfg.Clock, MaxSkew: cfg.MaxClockSkew}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The caller's address is the connection's: no proxy is trusted, so
	// X-Forwarded-For and X-Real-IP are ignored (audit records, c.RealIP).
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = s.httpError
	e.Use(s.recoverAndTag)
	// Audited routes: the AWS API, and every signed operator endpoint
	// (health, metrics and the unauthenticated seal endpoints are not).
	api, admin := s.audited(audit.SourceSecretsManager), s.audited(audit.SourceAdmin)
	e.POST("/", s.handleAPI, s.observe, api)
	e.GET("/v1/health", s.handleHealth)
	e.GET("/v1/health/ready", s.handleHealth)
	e.GET("/v1/health/active", s.handleHealth)
	e.GET("/v1/health/live", s.handleHealth)
	e.GET("/v1/metrics", s.handleMetrics)
	e.GET("/v1/cluster/status", s.handleClusterStatus, admin)
	e.POST("/v1/dev/reset", s.handleDevReset, admin) // 404 unless cfg.Dev (dev.go)
	e.GET("/v1/sys/seal-status", s.handleSealStatus)
	e.POST("/v1/sys/init", s.handleInit)
	e.POST("/v1/sys/unseal", s.handleUnseal)
	e.POST("/v1/sys/rekey", s.handleRekey, admin)
	e.GET("/v1/regions", s.handleRegions, admin)
	e.GET("/v1/replication/status", s.handleReplicationStatus, admin)
	e.POST("/v1/region/promote", s.handlePromoteRegion, admin)
	e.POST("/v1/region/demote", s.handleDemoteRegion, admin)
	e.GET("/v1/region/conflicts", s.handleConflicts, admin)
	e.POST("/v1/region/conflicts/dismiss", s.handleDismissConflict, admin)
	e.GET("/v1/operator/snapshot", s.handleSnapshotSave, admin)
	e.POST("/v1/operator/snapshot", s.handleSnapshotRestore, admin)
	e.POST("/v1/operator/raft/remove-peer", s.handleRemovePeer, admin)
	e.POST("/v1/operator/raft/transfer-leader", s.handleTransferLeader, admin)
	e.GET("/v1/keys", s.handleListKeys, admin)
	e.POST("/v1/keys", s.handleCreateKey, admin)
	e.GET("/v1/key", s.handleDescribeKey, admin)
	e.POST("/v1/key/rotate", s.handleRotateKey, admin)
	e.POST("/v1/key/enable", s.handleKeyState(true), admin)
	e.POST("/v1/key/disable", s.handleKeyState(false), admin)
	e.POST("/v1/key/alias", s.handleAlias, admin)
	e.GET("/v1/rotators", s.handleListRotators, admin)
	e.POST("/v1/rotators", s.handleCreateRotator, admin)
	e.GET("/v1/rotator", s.handleDescribeRotator, admin)
	e.POST("/v1/rotator/delete", s.handleDeleteRotator, admin)
	s.iamRoutes(e, admin)
	e.Any("/*", s.unknownRoute)
	s.echo = e
	return s, nil
}

func (s *Server) hosts(region string) bool { return s.regions[region] != nil }

func (s *Server) regionNames() []string { return s.names }

// Start listens on the API address and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen on API address: %w", err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.ln = ln
	s.http = &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          s.logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("API server stopped", "error", err)
		}
	}()
	return nil
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting requests and waits for in-flight ones.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.http == nil {
		return nil
	}
	return s.http.Shutdown(ctx)
}

// recoverAndTag sets the request id and Date on every response and turns a
// panic into an InternalFailure: no panic reaches a client as a dropped
// connection.
func (s *Server) recoverAndTag(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		h := c.Response().Header()
		h.Set("x-amzn-RequestId", newRequestID())
		h.Set("Date", s.cfg.Clock().UTC().Format(http.TimeFormat))
		defer func() {
			if r := recover(); r != nil {
				s.logger.Error("handler panicked", "panic", r, "path", c.Request().URL.Path)
				err = writeError(c, apierr.New(apierr.InternalFailure, "internal error"))
			}
		}()
		return next(c)
	}
}

func (s *Server) httpError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if he.Code == http.StatusNotFound || he.Code == http.StatusMethodNotAllowed {
			writeError(c, apierr.New(apierr.UnknownOperation, "Coffer serves the AWS API on POST / and operator endpoints under /v1/."))
			return
		}
	}
	writeError(c, err)
}

func (s *Server) unknownRoute(c echo.Context) error {
	return writeError(c, apierr.Newf(apierr.UnknownOperation,
		"No such endpoint: %s %s. Coffer serves the AWS API on POST / and operator endpoints under /v1/.",
		c.Request().Method, c.Request().URL.Path))
}

// readBody reads at most MaxBodyBytes.
func (s *Server) readBody(c echo.Context) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, bodyTooLarge(s.cfg.MaxBodyBytes)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, apierr.Newf(apierr.Serialization, "could not read the request body: %v", err)
	}
	if int64(len(body)) > s.cfg.MaxBodyBytes {
		return nil, bodyTooLarge(s.cfg.MaxBodyBytes)
	}
	return body, nil
}

func bodyTooLarge(limit int64) error {
	return apierr.Newf(apierr.RequestEntityTooLarge, "The request body is larger than the %d-byte limit.", limit)
}

// authenticate verifies SigV4 with the given verifier and returns the
// region the request is scoped to and the caller's identity.
func (s *Server) authenticate(c echo.Context, v *acl.Verifier, body []byte) (Region, string, error) {
	return s.authenticateRequest(c, v, acl.FromHTTP(c.Request(), body))
}

// authenticateRequest is authenticate for a request already built (a
// streamed body's, with PayloadSHA256).
func (s *Server) authenticateRequest(c echo.Context, v *acl.Verifier, req acl.HTTPRequest) (Region, string, error) {
	if err := s.sealedError(c.Request()); err != nil {
		return nil, "", err
	}
	scope, err := v.Verify(req)
	if err != nil {
		return nil, "", err
	}
	r := s.regions[scope.Region]
	identity, _, _ := r.AccessKey(c.Request().Context(), scope.AccessKeyID)
	r.NoteKeyUse(scope.AccessKeyID)
	auditAuthenticated(c, r, scope.AccessKeyID, identity)
	return r, identity, nil
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// operation is one API operation's handler.
type operation func(ctx context.Context, r Region, req *request) (any, error)

// operations maps X-Amz-Target's operation name to its handler. Each
// handler registers itself in the init of the file that defines it, so an
// operation is added in one file.
var operations = map[string]operation{}

// register adds an operation; a name registered twice is a programming
// error.
func register(name string, op operation) {
	if _, dup := operations[name]; dup {
		panic("server: operation " + name + " registered twice")
	}
	operations[name] = op
}

// notYet lists the AWS operations Coffer does not serve yet; they are
// refused by name so a client learns what is missing.
var notYet = []string{}

// request is the decoded context of one API call.
type request struct {
	body   []byte
	header http.Header
	// identity is the authenticated caller (region.RootIdentity for now).
	identity string
	// index is set by the handler to the Raft index the answer reflects.
	index uint64
	stale bool
	// known reports whether a region is one of this deployment's.
	known func(region string) bool
	// action is the operation's name, the IAM action it is authorized
	// as (secretsmanager:<action>); authz is the caller (nil for the
	// in-process service caller); authorized is set once a decision was
	// made, and keys holds the request's condition keys by action
	// (authz.go).
	action     string
	authz      *authz
	authorized bool
	keys       map[string]acl.Context
	// arns are the secrets the handler resolved (resolvingRegion), for
	// the audit record; items are BatchGetSecretValue's secrets, each
	// audited as a GetSecretValue of its own.
	arns  arnSet
	items []batchItem
	// events are the service events the operation caused (a deletion
	// window starting, ending or cancelled), audited after its record.
	events []serviceEvent
}

// knownRegion reports whether region is a region of this deployment, which
// replicas may be placed in.
func (req *request) knownRegion(region string) bool { return req.known != nil && req.known(region) }

// knownRegion: a region whose servers are in the WAN pool, or, without
// one, a region this process hosts.
func (s *Server) knownRegion(region string) bool {
	if s.cfg.Regions == nil {
		return s.hosts(region)
	}
	for _, n := range s.cfg.Regions() {
		if n.Region == region {
			return true
		}
	}
	return false
}

// setIndex records the Raft index the answer reflects; 0 (nothing read or
// applied) leaves it as it was.
func (req *request) setIndex(index uint64) {
	if index != 0 {
		req.index = index
	}
}

func (s *Server) handleAPI(c echo.Context) error {
	ev := auditOf(c)
	target := c.Request().Header.Get("X-Amz-Target")
	name, ok := strings.CutPrefix(target, "secretsmanager.")
	op := operations[name]
	ev.name, ev.readOnly = clip(name, 128), readOnlyOps[name]
	if !ok {
		ev.name = clip(target, 128)
	}
	body, err := s.readBody(c)
	if err != nil {
		return writeError(c, err)
	}
	r, identity, err := s.authenticate(c, &s.verifier, body)
	if err != nil {
		return writeError(c, err)
	}
	// Recorded once the caller is known: an unauthenticated client cannot
	// fill the log with its bodies.
	ev.params = requestParameters(body)
	if !ok || op == nil {
		if ok && slices.Contains(notYet, name) {
			return writeError(c, apierr.Newf(apierr.InvalidRequest,
				"%s is not available yet in this version of Coffer.", name))
		}
		if target == "" {
			return writeError(c, apierr.New(apierr.UnknownOperation, "Missing X-Amz-Target header: it names the operation, e.g. secretsmanager.GetSecretValue."))
		}
		return writeError(c, apierr.Newf(apierr.UnknownOperation, "Unknown operation %q.", target))
	}
	az, err := s.authorizer(c, r, identity)
	if err != nil {
		return writeError(c, err)
	}
	req := &request{body: body, header: c.Request().Header, identity: identity, action: name, authz: az,
		stale: strings.EqualFold(c.Request().Header.Get(HeaderConsistency), "stale"), known: s.knownRegion}
	ev.req = req
	out, err := op(c.Request().Context(), resolvingRegion{r, req}, req)
	if err == nil && !req.authorized {
		// Every operation decides authorization before it touches state;
		// an answer none preceded is a bug, and is not sent.
		s.logger.Error("an operation answered without an authorization decision", "operation", name)
		err = apierr.Newf(apierr.InternalFailure, "%s was not authorized by this server; nothing is answered.", name)
	}
	if err == nil && s.cfg.Dev && req.index != 0 {
		// coffer dev answers a write once the regions it replicates to
		// (hosted here too) have applied it, so a test reads its own
		// writes in every region (docs/dev-mode.md). Servers never wait.
		ctx, cancel := context.WithTimeout(c.Request().Context(), devReplicationWait)
		if werr := r.WaitReplicated(ctx, req.index); werr != nil {
			s.logger.Warn("dev: replicas did not apply a write in time", "index", req.index, "error", werr)
		}
		cancel()
	}
	if req.index != 0 {
		c.Response().Header().Set(HeaderIndex, fmt.Sprint(req.index))
	}
	if req.stale {
		c.Response().Header().Set(HeaderLastContact, fmt.Sprint(r.LastContact().Milliseconds()))
	}
	if err != nil {
		return writeError(c, err)
	}
	buf, err := json.Marshal(out)
	if err != nil {
		return writeError(c, apierr.Newf(apierr.InternalFailure, "encode response: %v", err))
	}
	ev.response = out
	// The record is written as the status goes out (auditWriter); if it
	// cannot be, this answer is withheld.
	return c.Blob(http.StatusOK, contentTypeJSON11, buf)
}
