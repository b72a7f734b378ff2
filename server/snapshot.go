package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/cofferhq/coffer/acl"
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

// maxSnapshotBytes bounds a snapshot file a restore accepts. The file is
// held in memory while it is checked and sent to the leader.
const maxSnapshotBytes = 1 << 30

// snapshotReadTime bounds how long a restore may take to send its file,
// instead of the server's ReadTimeout for ordinary requests.
const snapshotReadTime = 10 * time.Minute

// SnapshotRestored is the answer to a restore: the file's header, what its
// state holds, and the index from which every node serves it.
type SnapshotRestored struct {
	Header fsm.SnapshotFileHeader `json:"header"`
	State  fsm.SnapshotInfo       `json:"state"`
	Index  uint64                 `json:"index"`
}

// handleSnapshotRestore is POST /v1/operator/snapshot (`coffer operator
// snapshot restore`): the body is a snapshot file, streamed, so the
// request is signed with the file's SHA-256 in x-amz-content-sha256
// rather than a hash of a body already read; the body read is checked
// against it. The file, its state and its keyring are all checked before
// anything changes; then the state replaces the region's on every node.
// Root only.
func (s *Server) handleSnapshotRestore(c echo.Context) error {
	req := c.Request()
	sum := req.Header.Get("X-Amz-Content-Sha256")
	if sum == "" {
		return writeError(c, apierr.New(apierr.IncompleteSignature,
			"A snapshot restore streams the file: sign the request with the file's SHA-256 in x-amz-content-sha256 (coffer operator snapshot restore does)."))
	}
	areq := acl.FromHTTP(req, nil)
	areq.PayloadSHA256 = sum
	r, identity, err := s.authenticateRequest(c, &s.admin, areq)
	if err != nil {
		return writeError(c, err)
	}
	if err := s.authorizeAdmin(c, r, identity, "Only the region's root identity may restore a snapshot."); err != nil {
		return writeError(c, err)
	}
	if req.ContentLength > maxSnapshotBytes {
		return writeError(c, bodyTooLarge(maxSnapshotBytes))
	}
	// A large file takes longer to arrive than the server's ReadTimeout.
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(snapshotReadTime))
	h := sha256.New()
	body, err := io.ReadAll(io.TeeReader(io.LimitReader(req.Body, maxSnapshotBytes+1), h))
	switch {
	case err != nil:
		return writeError(c, apierr.Newf(apierr.Serialization, "could not read the snapshot file: %v; nothing was restored", err))
	case len(body) > maxSnapshotBytes:
		return writeError(c, bodyTooLarge(maxSnapshotBytes))
	case hex.EncodeToString(h.Sum(nil)) != sum:
		return writeError(c, apierr.New(apierr.InvalidSignature,
			"The snapshot file received does not match the SHA-256 it was signed with (cut short or changed on the way); nothing was restored. Send it again."))
	}
	hdr, state, err := fsm.ReadSnapshotFile(bytes.NewReader(body))
	if err != nil {
		return writeError(c, apierr.Newf(apierr.InvalidParameter, "%v; nothing was restored. Check the file with `coffer operator snapshot inspect` and restore a good copy", err))
	}
	info, err := fsm.InspectSnapshot(bytes.NewReader(state))
	if err != nil {
		return writeError(c, apierr.Newf(apierr.InvalidParameter, "the snapshot's state is damaged (%v); nothing was restored", err))
	}
	switch {
	case info.Region != hdr.Region || info.AccountID != hdr.AccountID || info.Index != hdr.Index:
		return writeError(c, apierr.New(apierr.InvalidParameter, "the snapshot's header does not describe the state it carries; nothing was restored"))
	case hdr.Region != r.Name():
		return writeError(c, apierr.Newf(apierr.InvalidParameter,
			"the snapshot is of region %s, and this request is for region %s: a snapshot restores only into the region it was saved from; nothing was restored", hdr.Region, r.Name()))
	}
	s.logger.Warn("snapshot restore requested", "region", hdr.Region, "from_node", hdr.Node, "index", hdr.Index, "created", hdr.Created, "bytes", hdr.Size)
	index, err := r.RestoreSnapshot(req.Context(), state)
	if err != nil {
		return writeError(c, err)
	}
	s.logger.Warn("snapshot restored", "region", hdr.Region, "index", index)
	return c.JSON(http.StatusOK, SnapshotRestored{Header: hdr, State: info, Index: index})
}
