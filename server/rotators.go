package server

import (
	"encoding/json"
	"net/http"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/rotation"
	"github.com/labstack/echo/v4"
)

// The rotator admin endpoints, for `coffer rotator …` (docs/rotation.md).
// Each is SigV4-signed (signing name "coffer") by the region's root
// identity; a rotator is named by its name or its ARN.
//
//	GET  /v1/rotators              every rotator, by name
//	POST /v1/rotators              create: {"name", "type", "config", "description"};
//	                               with "replace": true, change one
//	GET  /v1/rotator?rotator=REF   describe one
//	POST /v1/rotator/delete        {"rotator"}: remove one no secret uses

type rotatorRequest struct {
	Name        string            `json:"name"`
	Type        string            `json:"type"`
	Config      map[string]string `json:"config"`
	Description string            `json:"description"`
	Replace     bool              `json:"replace"`
	Rotator     string            `json:"rotator"`
}

// RotatorInfo is a rotator as the admin API shows it.
type RotatorInfo struct {
	ARN         string            `json:"arn"`
	Name        string            `json:"name"`
	Type        string            `json:"type"`
	Config      map[string]string `json:"config,omitempty"`
	Description string            `json:"description,omitempty"`
	CreatedDate int64             `json:"created_date"`
}

func rotatorInfo(r *fsm.Rotator) RotatorInfo {
	return RotatorInfo{ARN: r.ARN, Name: r.Name, Type: r.Type, Config: r.Config, Description: r.Description, CreatedDate: r.CreatedDate}
}

func (s *Server) rotatorCall(c echo.Context) (Region, *rotatorRequest, error) {
	body, err := s.readBody(c)
	if err != nil {
		return nil, nil, err
	}
	r, err := s.authenticateRoot(c, body, "Only the region's root identity may manage its rotators.")
	if err != nil {
		return nil, nil, err
	}
	var req rotatorRequest
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, nil, apierr.Newf(apierr.Serialization, "the body must be a JSON object: %v", err)
		}
	}
	return r, &req, nil
}

func (s *Server) handleListRotators(c echo.Context) error {
	r, _, err := s.rotatorCall(c)
	if err != nil {
		return writeError(c, err)
	}
	txn, _, err := r.Read(c.Request().Context(), false)
	if err != nil {
		return writeError(c, err)
	}
	regs, err := fsm.Rotators(txn)
	if err != nil {
		return writeError(c, apierr.Newf(apierr.InternalServiceError, "state store: %v", err))
	}
	out := make([]RotatorInfo, 0, len(regs))
	for _, reg := range regs {
		out = append(out, rotatorInfo(reg))
	}
	return c.JSON(http.StatusOK, map[string]any{"rotators": out})
}

func (s *Server) handleCreateRotator(c echo.Context) error {
	r, req, err := s.rotatorCall(c)
	if err != nil {
		return writeError(c, err)
	}
	if err := rotation.ValidName(req.Name); err != nil {
		return writeError(c, apierr.New(apierr.InvalidParameter, err.Error()))
	}
	if err := rotation.Validate(req.Type, req.Config); err != nil {
		return writeError(c, apierr.New(apierr.InvalidParameter, err.Error()))
	}
	reg := fsm.Rotator{ARN: rotation.ARN(r.Name(), r.AccountID(), req.Name), Name: req.Name, Type: req.Type,
		Config: req.Config, Description: req.Description}
	if len(reg.Config) == 0 {
		reg.Config = nil
	}
	if _, _, err := r.Apply(c.Request().Context(), fsm.CmdPutRotator, &fsm.PutRotator{Rotator: reg, Replace: req.Replace, Date: r.Now().UnixMilli()}); err != nil {
		return writeError(c, err)
	}
	return s.describeRotator(c, r, reg.ARN)
}

func (s *Server) handleDescribeRotator(c echo.Context) error {
	r, _, err := s.rotatorCall(c)
	if err != nil {
		return writeError(c, err)
	}
	return s.describeRotator(c, r, c.QueryParam("rotator"))
}

func (s *Server) describeRotator(c echo.Context, r Region, ref string) error {
	txn, _, err := r.Read(c.Request().Context(), false)
	if err != nil {
		return writeError(c, err)
	}
	reg, err := findRotator(txn, ref)
	if err != nil {
		return writeError(c, err)
	}
	if reg == nil {
		return writeError(c, apierr.Newf(apierr.ResourceNotFound, "Coffer can't find the rotator %q (coffer rotator list shows them).", ref))
	}
	return c.JSON(http.StatusOK, rotatorInfo(reg))
}

func (s *Server) handleDeleteRotator(c echo.Context) error {
	r, req, err := s.rotatorCall(c)
	if err != nil {
		return writeError(c, err)
	}
	txn, _, err := r.Read(c.Request().Context(), false)
	if err != nil {
		return writeError(c, err)
	}
	reg, err := findRotator(txn, req.Rotator)
	if err != nil {
		return writeError(c, err)
	}
	if reg == nil {
		return writeError(c, apierr.Newf(apierr.ResourceNotFound, "Coffer can't find the rotator %q (coffer rotator list shows them).", req.Rotator))
	}
	if _, _, err := r.Apply(c.Request().Context(), fsm.CmdDeleteRotator, &fsm.DeleteRotator{ARN: reg.ARN}); err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, rotatorInfo(reg))
}
