package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/region"

	"github.com/cofferhq/coffer/replication"
	"github.com/labstack/echo/v4"
)

// handleRegions is GET /v1/regions, for `coffer region list`: every
// region this server knows through the WAN pool, its leader, how many of
// its servers serve, and its replication key's fingerprint. SigV4-signed
// (signing name "coffer") by the root identity.
func (s *Server) handleRegions(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return writeError(c, err)
	}
	if _, err := s.authenticateRoot(c, body, "Only the region's root identity may list the regions."); err != nil {
		return writeError(c, err)
	}
	var nodes []replication.Node
	if s.cfg.Regions != nil {
		nodes = s.cfg.Regions()
	} else {
		for _, name := range s.names {
			nodes = append(nodes, replication.Self(s.regions[name], ""))
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"regions": replication.Regions(nodes)})
}

// handleReplicationStatus is GET /v1/replication/status, for `coffer
// region status` and monitoring: per replica region of the signed region,
// how far it has applied, how many changes wait and the RPO, and per
// primary region how far this one has applied. Linearizable, unless
// X-Coffer-Consistency: stale. Root-signed, like /v1/regions.
func (s *Server) handleReplicationStatus(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return writeError(c, err)
	}
	r, err := s.authenticateRoot(c, body, "Only the region's root identity may read the replication status.")
	if err != nil {
		return writeError(c, err)
	}
	stale := strings.EqualFold(c.Request().Header.Get(HeaderConsistency), "stale")
	replicas, sources, index, err := r.ReplicationStatus(c.Request().Context(), stale)
	if err != nil {
		return writeError(c, err)
	}
	c.Response().Header().Set(HeaderIndex, fmt.Sprint(index))
	return c.JSON(http.StatusOK, ReplicationStatusOut{Region: r.Name(), Replicas: replicas, Sources: sources})
}

// ReplicationStatusOut is the answer of GET /v1/replication/status.
type ReplicationStatusOut struct {
	Region   string                 `json:"region"`
	Replicas []region.ReplicaStatus `json:"replicas"`
	Sources  []region.SourceStatus  `json:"sources"`
}

// The failover calls (`coffer region promote | demote | conflicts`,
// docs/replication.md "Promotion"), root-signed and scoped to the region
// they act on:
//
//	POST /v1/region/promote    {"from": "us-east-1"}, or {} for every primary region
//	POST /v1/region/demote     {}
//	GET  /v1/region/conflicts
//	POST /v1/region/conflicts/dismiss  {"secret_id": "db/main", "version_id": "…"}

type promoteRequest struct {
	From string `json:"from"`
}

// PromoteOut answers POST /v1/region/promote and /v1/region/demote.
type PromoteOut struct {
	Region  string `json:"region"`
	Secrets int    `json:"secrets"`
	Index   uint64 `json:"index"`
}

func (s *Server) handlePromoteRegion(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return writeError(c, err)
	}
	r, err := s.authenticateRoot(c, body, "Only the region's root identity may promote the region.")
	if err != nil {
		return writeError(c, err)
	}
	var req promoteRequest
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return writeError(c, apierr.Newf(apierr.Serialization, "the body must be a JSON object: %v", err))
		}
	}
	if req.From == r.Name() {
		return writeError(c, apierr.Newf(apierr.InvalidParameter, "Region %s cannot be promoted over itself: --from names the primary region whose replicas to promote.", r.Name()))
	}
	n, index, err := r.PromoteRegion(c.Request().Context(), req.From)
	if err != nil {
		return writeError(c, err)
	}
	s.logger.Warn("region promoted", "region", r.Name(), "from", req.From, "secrets", n, "index", index)
	c.Response().Header().Set(HeaderIndex, fmt.Sprint(index))
	return c.JSON(http.StatusOK, PromoteOut{Region: r.Name(), Secrets: n, Index: index})
}

func (s *Server) handleDemoteRegion(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return writeError(c, err)
	}
	r, err := s.authenticateRoot(c, body, "Only the region's root identity may demote the region.")
	if err != nil {
		return writeError(c, err)
	}
	n, index, err := r.DemoteRegion(c.Request().Context())
	if err != nil {
		return writeError(c, err)
	}
	s.logger.Warn("region demoted", "region", r.Name(), "secrets", n, "index", index)
	c.Response().Header().Set(HeaderIndex, fmt.Sprint(index))
	return c.JSON(http.StatusOK, PromoteOut{Region: r.Name(), Secrets: n, Index: index})
}

func (s *Server) handleConflicts(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return writeError(c, err)
	}
	r, err := s.authenticateRoot(c, body, "Only the region's root identity may list conflicts.")
	if err != nil {
		return writeError(c, err)
	}
	stale := strings.EqualFold(c.Request().Header.Get(HeaderConsistency), "stale")
	out, index, err := r.Conflicts(c.Request().Context(), stale)
	if err != nil {
		return writeError(c, err)
	}
	c.Response().Header().Set(HeaderIndex, fmt.Sprint(index))
	return c.JSON(http.StatusOK, map[string]any{"region": r.Name(), "conflicts": out})
}

type dismissRequest struct {
	SecretID  string `json:"secret_id"`
	VersionID string `json:"version_id"`
}

// DismissOut answers POST /v1/region/conflicts/dismiss.
type DismissOut struct {
	Region    string `json:"region"`
	ARN       string `json:"arn"`
	Name      string `json:"name"`
	VersionID string `json:"version_id"`
	Index     uint64 `json:"index"`
}

func (s *Server) handleDismissConflict(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return writeError(c, err)
	}
	r, err := s.authenticateRoot(c, body, "Only the region's root identity may dismiss conflicts.")
	if err != nil {
		return writeError(c, err)
	}
	var req dismissRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return writeError(c, apierr.Newf(apierr.Serialization, "the body must be a JSON object: %v", err))
	}
	if req.SecretID == "" || req.VersionID == "" {
		return writeError(c, apierr.New(apierr.InvalidParameter, "Name the conflict to dismiss: secret_id (a name or ARN) and version_id, as coffer region conflicts lists them."))
	}
	res, index, err := r.DismissConflict(c.Request().Context(), req.SecretID, req.VersionID)
	if err != nil {
		return writeError(c, err)
	}
	s.logger.Warn("conflict version dismissed", "region", r.Name(), "secret", res.ARN, "version", res.VersionID, "index", index)
	c.Response().Header().Set(HeaderIndex, fmt.Sprint(index))
	return c.JSON(http.StatusOK, DismissOut{Region: r.Name(), ARN: res.ARN, Name: res.Name, VersionID: res.VersionID, Index: index})
}
