package server

import (
	"fmt"
	"net/http"
	"strings"

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
