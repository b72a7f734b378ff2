package server

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/apierr"
	"github.com/labstack/echo/v4"
)

// The seal endpoints (region/seal.go), Vault's sys/ shape:
//
//	GET  /v1/sys/seal-status   unauthenticated
//	POST /v1/sys/init          unauthenticated; works once, on a region
//	                           whose nodes were started without a root key
//	POST /v1/sys/unseal        unauthenticated; one share (or the root key)
//	POST /v1/sys/rekey         SigV4 ("coffer"), the root identity
//
// A sealed node cannot check a signature (the access keys' secrets are
// sealed under the keyring), which is why init and unseal take none: a
// share is its own credential. Each takes the region in ?region= when the
// process hosts several.

// sealRequest is the body of init and rekey, and of unseal (Key).
type sealRequest struct {
	KeyShares    int    `json:"key_shares"`
	KeyThreshold int    `json:"key_threshold"`
	Key          string `json:"key"`
}

// sysRegion is the region a seal call is for: ?region=, or the one
// hosted region.
func (s *Server) sysRegion(c echo.Context) (Region, error) {
	name := c.QueryParam("region")
	if name == "" {
		if len(s.names) == 1 {
			return s.regions[s.names[0]], nil
		}
		return nil, apierr.Newf(apierr.InvalidParameter, "this endpoint serves several regions (%s): name one in ?region=", strings.Join(s.names, ", "))
	}
	if r := s.regions[name]; r != nil {
		return r, nil
	}
	return nil, apierr.Newf(apierr.InvalidParameter, "this endpoint does not serve region %q; it serves %s", name, strings.Join(s.names, ", "))
}

// decodeSeal reads a seal call's JSON body.
func (s *Server) decodeSeal(c echo.Context) (*sealRequest, []byte, error) {
	body, err := s.readBody(c)
	if err != nil {
		return nil, nil, err
	}
	var req sealRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, nil, apierr.Newf(apierr.Serialization, "the body must be a JSON object: %v", err)
	}
	return &req, body, nil
}

func (s *Server) handleSealStatus(c echo.Context) error {
	r, err := s.sysRegion(c)
	if err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, r.SealStatus())
}

func (s *Server) handleInit(c echo.Context) error {
	r, err := s.sysRegion(c)
	if err != nil {
		return writeError(c, err)
	}
	req, _, err := s.decodeSeal(c)
	if err != nil {
		return writeError(c, err)
	}
	out, err := r.Init(c.Request().Context(), req.KeyShares, req.KeyThreshold)
	if err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleUnseal(c echo.Context) error {
	r, err := s.sysRegion(c)
	if err != nil {
		return writeError(c, err)
	}
	req, _, err := s.decodeSeal(c)
	if err != nil {
		return writeError(c, err)
	}
	if strings.TrimSpace(req.Key) == "" {
		return writeError(c, apierr.New(apierr.InvalidParameter, `"key" is required: one unseal share, or the root key`))
	}
	st, err := r.Unseal(req.Key)
	if err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Server) handleRekey(c echo.Context) error {
	req, body, err := s.decodeSeal(c)
	if err != nil {
		return writeError(c, err)
	}
	r, err := s.authenticateRoot(c, body, "Only the region's root identity may rekey it.")
	if err != nil {
		return writeError(c, err)
	}
	out, err := r.Rekey(c.Request().Context(), req.KeyShares, req.KeyThreshold)
	if err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, out)
}

// sealedError is the error of a request to a sealed region: the region
// named in its credential scope, or the one hosted region. A sealed node
// cannot check the signature, and a client must learn that the node is
// sealed, not that its key is unknown.
func (s *Server) sealedError(req *http.Request) error {
	// One hosted region (every server) needs no parse of the header,
	// which Verify parses anyway: this runs on every request.
	var r Region
	if len(s.names) == 1 {
		r = s.regions[s.names[0]]
	} else {
		r = s.regions[acl.CredentialRegion(req.Header.Get("Authorization"))]
	}
	if r == nil {
		return nil
	}
	_, err := r.Keyring()
	if err != nil && !r.SealStatus().Initialized {
		// A node that just joined or restarted may not have applied the
		// region's record yet: catch up with the leader once before
		// answering that it is sealed.
		if _, _, rerr := r.Read(req.Context(), false); rerr == nil {
			_, err = r.Keyring()
		}
	}
	return err
}
