package server

import (
	"encoding/json"
	"net/http"

	"github.com/cofferhq/coffer/apierr"
	"github.com/labstack/echo/v4"
)

// The Raft operator endpoints (`coffer operator raft …`), SigV4-signed
// (signing name "coffer") by the region's root identity. list-peers reads
// GET /v1/cluster/status.
//
//	POST /v1/operator/raft/remove-peer      {"id": "n3"}
//	POST /v1/operator/raft/transfer-leader  {"id": "n2"}, or {} for any voter

type peerRequest struct {
	ID string `json:"id"`
}

// raftCall authenticates a Raft operator call and decodes its body.
func (s *Server) raftCall(c echo.Context, refusal string) (Region, *peerRequest, error) {
	body, err := s.readBody(c)
	if err != nil {
		return nil, nil, err
	}
	r, err := s.authenticateRoot(c, body, refusal)
	if err != nil {
		return nil, nil, err
	}
	var req peerRequest
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, nil, apierr.Newf(apierr.Serialization, "the body must be a JSON object: %v", err)
		}
	}
	return r, &req, nil
}

func (s *Server) handleRemovePeer(c echo.Context) error {
	r, req, err := s.raftCall(c, "Only the region's root identity may remove a Raft peer.")
	if err != nil {
		return writeError(c, err)
	}
	if req.ID == "" {
		return writeError(c, apierr.New(apierr.InvalidParameter, "name the server to remove: {\"id\": \"NODE-ID\"} (coffer operator raft list-peers)"))
	}
	index, err := r.RemovePeer(c.Request().Context(), req.ID)
	if err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, map[string]any{"removed": req.ID, "index": index})
}

func (s *Server) handleTransferLeader(c echo.Context) error {
	r, req, err := s.raftCall(c, "Only the region's root identity may transfer the region's leadership.")
	if err != nil {
		return writeError(c, err)
	}
	leader, err := r.TransferLeader(c.Request().Context(), req.ID)
	if err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, map[string]string{"leader": leader})
}
