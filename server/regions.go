package server

import (
	"net/http"

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
