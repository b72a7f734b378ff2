package server

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/labstack/echo/v4"
)

// handleSnapshotSave is GET /v1/operator/snapshot (`coffer operator
// snapshot save`): a snapshot file (fsm/snapshotfile.go) of the region's
// state as this node has applied it, once it has applied every write
// acknowledged before the call. SigV4-signed by the root identity.
// The state is spooled to a temporary file first, so the header can carry
// its size and checksum; it is ciphertext, and the file is removed.
func (s *Server) handleSnapshotSave(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return writeError(c, err)
	}
	r, err := s.authenticateRoot(c, body, "Only the region's root identity may save a snapshot.")
	if err != nil {
		return writeError(c, err)
	}
	// Catch up first: the snapshot then holds every write acknowledged
	// before the call, on a follower too.
	if _, _, err := r.Read(c.Request().Context(), false); err != nil {
		return writeError(c, err)
	}
	tmp, err := os.CreateTemp("", "coffer-snapshot-*")
	if err != nil {
		return writeError(c, apierr.Newf(apierr.InternalFailure, "snapshot spool: %v", err))
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	meta, err := r.SaveSnapshot(io.MultiWriter(tmp, h))
	if err != nil {
		return writeError(c, apierr.Newf(apierr.InternalFailure, "%v", err))
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		return writeError(c, apierr.Newf(apierr.InternalFailure, "snapshot spool: %v", err))
	}
	hdr := fsm.SnapshotFileHeader{Region: meta.Region, AccountID: meta.AccountID, Node: meta.Node,
		Index: meta.Index, Term: meta.Term, Created: time.Now().UTC().Format(time.RFC3339),
		Size: size, SHA256: hex.EncodeToString(h.Sum(nil))}
	c.Response().Header().Set(echo.HeaderContentType, "application/octet-stream")
	c.Response().WriteHeader(http.StatusOK)
	if err := fsm.WriteSnapshotFile(c.Response(), hdr, tmp); err != nil {
		s.logger.Warn("snapshot save: the client did not get the whole file", "error", err)
	}
	return nil
}
