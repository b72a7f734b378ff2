package server

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/cluster"
	"github.com/labstack/echo/v4"
)

// The dev-only endpoint: POST /v1/dev/reset empties every hosted region
// between the tests of a suite (see docs/dev-mode.md). It exists only when
// Config.Dev is set; a `coffer server` answers 404 for it, so no request
// can wipe a real region.

// regionReset is one region's part of the reset answer.
type regionReset struct {
	Region string `json:"region"`
	Index  uint64 `json:"index"`
}

// handleDevReset authenticates like /v1/cluster/status: SigV4 with the
// signing name "coffer", scoped to any hosted region, by that region's
// root identity (coffer dev gives every region the same root key). It
// resets all hosted regions at once; each region's reset is atomic, the
// set of them is not (they are separate Raft groups).
func (s *Server) handleDevReset(c echo.Context) error {
	if !s.cfg.Dev {
		return writeNotFound(c, "POST /v1/dev/reset exists only on a coffer dev server; this server does not offer it.")
	}
	body, err := s.readBody(c)
	if err != nil {
		return writeError(c, err)
	}
	if _, err := s.authenticateRoot(c, body, "Only the root identity may reset the dev server."); err != nil {
		return writeError(c, err)
	}
	start := time.Now()
	out := make([]regionReset, len(s.names))
	errs := make([]error, len(s.names))
	var wg sync.WaitGroup
	for i, name := range s.names {
		wg.Go(func() {
			out[i].Region = name
			out[i].Index, errs[i] = s.regions[name].Reset(c.Request().Context())
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			s.logger.Warn("dev reset failed", "region", s.names[i], "error", err)
			return writeError(c, inRegion(s.names[i], err))
		}
	}
	s.logger.Info("dev reset", "regions", len(s.names), "took", time.Since(start))
	return c.JSON(http.StatusOK, struct {
		Regions []regionReset `json:"regions"`
	}{out})
}

// inRegion names the region in an error's message, keeping its type.
func inRegion(region string, err error) error {
	if ae, ok := apierr.As(err); ok {
		return apierr.Newf(ae.Code, "region %s: %s", region, ae.Message)
	}
	if ue, ok := err.(*cluster.UnavailableError); ok {
		return &cluster.UnavailableError{Reason: "region " + region + ": " + ue.Reason, Outcome: ue.Outcome}
	}
	return err
}

// writeNotFound answers 404 with an AWS-style JSON error body.
func writeNotFound(c echo.Context, msg string) error {
	h := c.Response().Header()
	h.Set(HeaderOutcome, string(cluster.OutcomeNotApplied))
	h.Set("X-Amzn-ErrorType", apierr.UnknownOperation)
	body, _ := json.Marshal(map[string]string{"__type": apierr.UnknownOperation, "Message": msg})
	return c.Blob(http.StatusNotFound, contentTypeJSON11, body)
}
