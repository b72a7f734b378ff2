package server

import (
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/region"
	"github.com/labstack/echo/v4"
)

// regionHealth is one hosted region's health as /v1/health reports it.
type regionHealth struct {
	Region       string `json:"region"`
	NodeID       string `json:"node_id"`
	State        string `json:"state"` // leader, follower, candidate, sealed, shutdown
	LeaderID     string `json:"leader_id"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	// Serving is true when the node can answer API requests: it is
	// unsealed and knows a leader.
	Serving bool `json:"serving"`
}

func health(r Region) regionHealth {
	st := r.Status()
	h := regionHealth{Region: r.Name(), NodeID: st.NodeID, State: st.State, LeaderID: st.LeaderID,
		Term: st.Term, AppliedIndex: st.AppliedIndex}
	if r.Sealed() && st.State != "shutdown" {
		h.State = "sealed"
	}
	h.Serving = h.State != "sealed" && h.State != "shutdown" && st.LeaderID != ""
	return h
}

// The health endpoints need no authentication: load balancers and
// orchestrators probe them. Each answers the same JSON; the status code
// is what differs (Vault's style for load balancers, Kubernetes' probes):
//
//	/v1/health         200 when every hosted region can serve (unsealed,
//	                   with a leader), 503 otherwise; any node, leader or not
//	/v1/health/ready   the same: Kubernetes' readiness probe
//	/v1/health/active  200 on a node that leads every hosted region, 429 on
//	                   one that serves but does not lead (a standby), 503
//	                   when it cannot serve: for a load balancer that sends
//	                   traffic to the leader only
//	/v1/health/live    200 while the process runs, sealed or not (503 once
//	                   it is shutting down): Kubernetes' liveness probe,
//	                   which must not restart a node that waits to be
//	                   unsealed
func (s *Server) handleHealth(c echo.Context) error {
	out := struct {
		regionHealth
		Regions []regionHealth `json:"regions"`
	}{}
	status := http.StatusOK
	variant := strings.TrimPrefix(c.Path(), "/v1/health")
	for i, name := range s.names {
		h := health(s.regions[name])
		if i == 0 {
			out.regionHealth = h
		}
		out.Regions = append(out.Regions, h)
		switch {
		case variant == "/live":
			if h.State == "shutdown" {
				status = http.StatusServiceUnavailable
			}
		case !h.Serving:
			status = http.StatusServiceUnavailable
		case variant == "/active" && h.State != "leader" && status == http.StatusOK:
			status = http.StatusTooManyRequests
		}
	}
	return c.JSON(status, out)
}

// handleClusterStatus is the operator view of the region named in the
// request's SigV4 scope (signing name "coffer"), for the root identity.
func (s *Server) handleClusterStatus(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return writeError(c, err)
	}
	r, err := s.authenticateRoot(c, body, "Only the region's root identity may read the cluster status.")
	if err != nil {
		return writeError(c, err)
	}
	st := r.Status()
	digest, index, err := r.StateDigest()
	if err != nil {
		return writeError(c, apierr.Newf(apierr.InternalFailure, "state digest: %v", err))
	}
	return c.JSON(http.StatusOK, struct {
		cluster.Status
		StateDigest      string `json:"state_digest"`
		StateDigestIndex uint64 `json:"state_digest_index"`
		Sealed           bool   `json:"sealed"`
	}{st, digest, index, r.Sealed()})
}

// adminActions names each signed operator endpoint's action, the name
// IAM policies allow or deny it by (docs/iam.md "Admin actions"). An
// endpoint missing here is the root identity's alone.
var adminActions = map[string]string{
	"GET /v1/cluster/status":                 "coffer:GetClusterStatus",
	"POST /v1/dev/reset":                     "coffer:ResetDevServer",
	"POST /v1/sys/rekey":                     "coffer:Rekey",
	"GET /v1/regions":                        "coffer:ListRegions",
	"GET /v1/replication/status":             "coffer:GetReplicationStatus",
	"POST /v1/region/promote":                "coffer:PromoteRegion",
	"POST /v1/region/demote":                 "coffer:DemoteRegion",
	"GET /v1/region/conflicts":               "coffer:ListConflicts",
	"POST /v1/region/conflicts/dismiss":      "coffer:DismissConflict",
	"GET /v1/operator/snapshot":              "coffer:SaveSnapshot",
	"POST /v1/operator/snapshot":             "coffer:RestoreSnapshot",
	"POST /v1/operator/raft/remove-peer":     "coffer:RemovePeer",
	"POST /v1/operator/raft/transfer-leader": "coffer:TransferLeader",
	"GET /v1/keys":                           "coffer:ListKeys",
	"POST /v1/keys":                          "coffer:CreateKey",
	"GET /v1/key":                            "coffer:DescribeKey",
	"POST /v1/key/rotate":                    "coffer:RotateKey",
	"POST /v1/key/enable":                    "coffer:EnableKey",
	"POST /v1/key/disable":                   "coffer:DisableKey",
	"POST /v1/key/alias":                     "coffer:SetAlias",
	"GET /v1/rotators":                       "coffer:ListRotators",
	"POST /v1/rotators":                      "coffer:CreateRotator",
	"GET /v1/rotator":                        "coffer:DescribeRotator",
	"POST /v1/rotator/delete":                "coffer:DeleteRotator",
}

// authenticateRoot verifies an operator call: SigV4 with the signing name
// "coffer", then its action (adminActions) authorized for the caller as
// API calls are (authz.go), on the resource "*". refusal is the
// AccessDenied message of an endpoint without an action, which only the
// root identity may call.
func (s *Server) authenticateRoot(c echo.Context, body []byte, refusal string) (Region, error) {
	r, identity, err := s.authenticate(c, &s.admin, body)
	if err != nil {
		return nil, err
	}
	return r, s.authorizeAdmin(c, r, identity, refusal)
}

// authorizeAdmin decides an authenticated operator call.
func (s *Server) authorizeAdmin(c echo.Context, r Region, identity, refusal string) error {
	action, named := adminActions[c.Request().Method+" "+c.Path()]
	if !named {
		if identity != region.RootIdentity {
			return apierr.New(apierr.AccessDenied, refusal)
		}
		return nil
	}
	return s.allowAdmin(c, r, identity, action)
}

// allowAdmin decides an admin action for the caller, on the resource "*".
func (s *Server) allowAdmin(c echo.Context, r Region, identity, action string) error {
	az, err := s.authorizer(c, r, identity)
	if err != nil {
		return err
	}
	return az.decide(action, "*", "", nil, nil)
}

// authenticateAdmin verifies an admin call whose action depends on its
// body (IAM's attach and detach name a user or a group) and authorizes
// action for the caller on "*", as authenticateRoot does for the calls
// adminActions names. It returns the region in the call's scope and the
// caller's identity.
func (s *Server) authenticateAdmin(c echo.Context, body []byte, action string) (Region, string, error) {
	r, identity, err := s.authenticate(c, &s.admin, body)
	if err != nil {
		return nil, "", err
	}
	if err := s.allowAdmin(c, r, identity, action); err != nil {
		return nil, "", err
	}
	return r, identity, nil
}
