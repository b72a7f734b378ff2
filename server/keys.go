package server

import (
	"encoding/json"
	"net/http"

	"github.com/cofferhq/coffer/apierr"
	"github.com/labstack/echo/v4"
)

// The key admin endpoints (region/kms.go), for `coffer key …`. Each is
// SigV4-signed (signing name "coffer") by the region's root identity;
// a key is named by its id, its ARN or an alias.
//
//	GET  /v1/keys          every key, the default key first
//	POST /v1/keys          create: {"description", "alias"}
//	GET  /v1/key?key=REF   describe one
//	POST /v1/key/rotate    {"key"}: add a version
//	POST /v1/key/enable    {"key"}
//	POST /v1/key/disable   {"key"}
//	POST /v1/key/alias     {"alias", "key"}: create or move an alias;
//	                       an empty key deletes it

// keyRequest is the body of the key calls.
type keyRequest struct {
	Key         string `json:"key"`
	Alias       string `json:"alias"`
	Description string `json:"description"`
}

// keyCall authenticates a key call as the root identity and decodes its
// body (none for a GET).
func (s *Server) keyCall(c echo.Context) (Region, *keyRequest, error) {
	body, err := s.readBody(c)
	if err != nil {
		return nil, nil, err
	}
	r, err := s.authenticateRoot(c, body, "Only the region's root identity may manage its keys.")
	if err != nil {
		return nil, nil, err
	}
	var req keyRequest
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, nil, apierr.Newf(apierr.Serialization, "the body must be a JSON object: %v", err)
		}
	}
	return r, &req, nil
}

func (s *Server) handleListKeys(c echo.Context) error {
	r, _, err := s.keyCall(c)
	if err != nil {
		return writeError(c, err)
	}
	keys, err := r.Keys(c.Request().Context())
	if err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": keys})
}

func (s *Server) handleCreateKey(c echo.Context) error {
	r, req, err := s.keyCall(c)
	if err != nil {
		return writeError(c, err)
	}
	info, err := r.CreateKey(c.Request().Context(), req.Description, req.Alias)
	if err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, info)
}

func (s *Server) handleDescribeKey(c echo.Context) error {
	r, _, err := s.keyCall(c)
	if err != nil {
		return writeError(c, err)
	}
	info, err := r.DescribeKey(c.Request().Context(), c.QueryParam("key"))
	if err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, info)
}

func (s *Server) handleRotateKey(c echo.Context) error {
	r, req, err := s.keyCall(c)
	if err != nil {
		return writeError(c, err)
	}
	info, err := r.RotateKey(c.Request().Context(), req.Key)
	if err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, info)
}

// handleKeyState serves enable and disable.
func (s *Server) handleKeyState(enabled bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		r, req, err := s.keyCall(c)
		if err != nil {
			return writeError(c, err)
		}
		info, err := r.SetKeyEnabled(c.Request().Context(), req.Key, enabled)
		if err != nil {
			return writeError(c, err)
		}
		return c.JSON(http.StatusOK, info)
	}
}

func (s *Server) handleAlias(c echo.Context) error {
	r, req, err := s.keyCall(c)
	if err != nil {
		return writeError(c, err)
	}
	if err := r.SetAlias(c.Request().Context(), req.Alias, req.Key); err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, map[string]string{})
}
