package server

import (
	"context"
	"strings"
	"time"

	"github.com/cofferhq/coffer/fsm"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics (GET /v1/metrics, Prometheus's text format). The server counts
// the AWS API requests by operation and outcome and times them; a
// collector reads each hosted region's Raft figures at scrape time; the
// process adds what it registers on the same registry (cmd/coffer: Go
// runtime and process figures, and raft's own go-metrics, bridged).
// The endpoint needs no signature, as /v1/health: scrapers do not sign,
// and no figure names a secret.

type serverMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// The audit log (docs/audit.md): records written, and writes that
	// failed (each refuses or withholds an answer).
	auditRecords  prometheus.Counter
	auditFailures prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer, regions func() []Region) *serverMetrics {
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "coffer", Name: "requests_total",
			Help: "AWS API requests by operation and outcome (OK or the AWS error type).",
		}, []string{"operation", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "coffer", Name: "request_duration_seconds",
			Help:    "Time to answer an AWS API request, by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation"}),
		auditRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "coffer", Name: "audit_records_total",
			Help: "Audit records written (API requests, signed operator calls, rotation events).",
		}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "coffer", Name: "audit_write_failures_total",
			Help: "Audit records that could not be written, and requests refused because the audit log could not be written.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.auditRecords, m.auditFailures, &regionCollector{regions: regions})
	return m
}

// observe wraps the API route: the operation comes from X-Amz-Target
// (an unknown name counts as "unknown", so clients cannot grow the label
// set), the outcome from the error type the answer carries.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		op, _ := strings.CutPrefix(c.Request().Header.Get("X-Amz-Target"), "secretsmanager.")
		if _, known := operations[op]; !known {
			op = "unknown"
		}
		code := c.Response().Header().Get("X-Amzn-ErrorType")
		if code == "" {
			code = "OK"
		}
		s.metrics.requests.WithLabelValues(op, code).Inc()
		s.metrics.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
		return err
	}
}

func (s *Server) handleMetrics(c echo.Context) error {
	promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(c.Response(), c.Request())
	return nil
}

// regionCollector reads each hosted region's Raft figures at scrape time.
type regionCollector struct {
	regions func() []Region
}

var (
	descTerm    = prometheus.NewDesc("coffer_raft_term", "The node's current Raft term.", []string{"region"}, nil)
	descCommit  = prometheus.NewDesc("coffer_raft_commit_index", "The node's Raft commit index.", []string{"region"}, nil)
	descApplied = prometheus.NewDesc("coffer_raft_applied_index", "The Raft index the node's state machine has applied.", []string{"region"}, nil)
	descLeader  = prometheus.NewDesc("coffer_raft_leader", "1 if this node leads its region.", []string{"region"}, nil)
	descVoters  = prometheus.NewDesc("coffer_raft_voters", "Voters in the region's Raft configuration, as this node sees it.", []string{"region"}, nil)
	descSealed  = prometheus.NewDesc("coffer_sealed", "1 while the node is sealed (cannot decrypt or check signatures).", []string{"region"}, nil)
	// A counter kept by the node and read at scrape time, so it is there
	// (at 0) before the first removal and never drops out.
	descDeadRemoved = prometheus.NewDesc("coffer_dead_servers_removed_total", "Dead servers this node removed from the Raft voters while it led (--dead-server-grace).", []string{"region"}, nil)

	// The state's size, as this node has applied it.
	descSecrets    = prometheus.NewDesc("coffer_state_secrets", "Secrets in the region's state, those scheduled for deletion included.", []string{"region"}, nil)
	descDeleted    = prometheus.NewDesc("coffer_state_secrets_scheduled_for_deletion", "Secrets scheduled for deletion, waiting for their window to end.", []string{"region"}, nil)
	descVersions   = prometheus.NewDesc("coffer_state_versions", "Secret versions in the region's state, unlabeled ones included.", []string{"region"}, nil)
	descTombstones = prometheus.NewDesc("coffer_state_tombstones", "Secrets removed for good and remembered for the change feed until compacted.", []string{"region"}, nil)

	// Rotation, from the region's state (docs/rotation.md).
	descRotEnabled  = prometheus.NewDesc("coffer_rotation_enabled", "Secrets whose rotation schedule runs.", []string{"region"}, nil)
	descRotInFlight = prometheus.NewDesc("coffer_rotation_in_flight", "Rotations started and not finished.", []string{"region"}, nil)
	descRotFailing  = prometheus.NewDesc("coffer_rotation_failing", "Rotations in flight whose last attempt failed (DescribeSecret's CofferRotationStatus says why).", []string{"region"}, nil)
	descRotOverdue  = prometheus.NewDesc("coffer_rotation_overdue", "Secrets whose rotation window ended without a rotation finishing.", []string{"region"}, nil)

	// Replication, from the region's state (the figures of coffer region
	// status), per replica region this region ships to and per primary
	// region it receives from.
	replicaLabels    = []string{"region", "replica"}
	descReplLag      = prometheus.NewDesc("coffer_replication_lag_seconds", "Time since the replica region was last known to hold every replicated change (the RPO); 0 when nothing waits.", replicaLabels, nil)
	descReplPending  = prometheus.NewDesc("coffer_replication_pending_changes", "Replicated secrets changed since the replica region's last acknowledgement.", replicaLabels, nil)
	descReplAcked    = prometheus.NewDesc("coffer_replication_acked_index", "This region's log index up to which the replica region has applied every replicated change.", replicaLabels, nil)
	descReplFailing  = prometheus.NewDesc("coffer_replication_failing", "1 while shipping to the replica region fails.", replicaLabels, nil)
	descReplSrcIndex = prometheus.NewDesc("coffer_replication_source_applied_index", "The primary region's log index up to which this region has applied its changes.", []string{"region", "source"}, nil)
)

func (c *regionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTerm, descCommit, descApplied, descLeader, descVoters, descSealed, descDeadRemoved,
		descSecrets, descDeleted, descVersions, descTombstones, descRotEnabled, descRotInFlight, descRotFailing, descRotOverdue,
		descReplLag, descReplPending, descReplAcked, descReplFailing, descReplSrcIndex} {
		ch <- d
	}
}

func (c *regionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.regions() {
		st := r.Status()
		name := r.Name()
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
		}
		gauge(descTerm, float64(st.Term))
		gauge(descCommit, float64(st.CommitIndex))
		gauge(descApplied, float64(st.AppliedIndex))
		gauge(descLeader, b2f(st.State == "leader"))
		voters := 0
		for _, v := range st.Voters {
			if v.Suffrage == "Voter" {
				voters++
			}
		}
		gauge(descVoters, float64(voters))
		gauge(descSealed, b2f(r.Sealed()))
		ch <- prometheus.MustNewConstMetric(descDeadRemoved, prometheus.CounterValue, float64(st.DeadServersRemoved), name)
		// Local state (a stale read): a scrape must not need a quorum.
		if txn, _, err := r.Read(context.Background(), true); err == nil {
			n := fsm.Size(txn)
			gauge(descSecrets, float64(n.Secrets))
			gauge(descDeleted, float64(n.Deleted))
			gauge(descVersions, float64(n.Versions))
			gauge(descTombstones, float64(n.Tombstones))
			if secrets, err := fsm.RotatingSecrets(txn); err == nil {
				var enabled, inFlight, failing, overdue int
				now := r.Now().UnixMilli()
				for _, s := range secrets {
					rot := s.Rotation
					if rot.Token != "" {
						inFlight++
						if rot.Attempts > 0 {
							failing++
						}
					}
					if rot.Enabled {
						enabled++
						if rot.NextDate != 0 && rot.NextDate < now {
							overdue++
						}
					}
				}
				gauge(descRotEnabled, float64(enabled))
				gauge(descRotInFlight, float64(inFlight))
				gauge(descRotFailing, float64(failing))
				gauge(descRotOverdue, float64(overdue))
			}
		}
		if replicas, sources, _, err := r.ReplicationStatus(context.Background(), true); err == nil {
			for _, rs := range replicas {
				for d, v := range map[*prometheus.Desc]float64{descReplLag: rs.LagSeconds, descReplPending: float64(rs.Pending),
					descReplAcked: float64(rs.AckedIndex), descReplFailing: b2f(rs.Error != "")} {
					ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name, rs.Region)
				}
			}
			for _, src := range sources {
				ch <- prometheus.MustNewConstMetric(descReplSrcIndex, prometheus.GaugeValue, float64(src.AppliedIndex), name, src.Region)
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
