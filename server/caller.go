package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/cofferhq/coffer/apierr"
)

// ServicePrincipal is the identity the rotation scheduler's rotators call
// the API as: AWS's service principal, as a rotation Lambda invoked by
// Secrets Manager acts for it.
const ServicePrincipal = "secretsmanager.amazonaws.com"

// Caller calls the API of one hosted region in process, as
// ServicePrincipal, with the AWS JSON shapes a client sends and receives.
// Built-in rotators use it (rotation.API): they need no credentials and
// every rule of the API applies to what they do.
type Caller struct {
	s      *Server
	region string
}

// Caller returns the in-process caller of a hosted region.
func (s *Server) Caller(region string) *Caller { return &Caller{s: s, region: region} }

// Call runs operation with in (marshalled to JSON) and decodes its answer
// into out (nil: dropped). Its error is an *apierr.Error, as a client
// would see it.
func (c *Caller) Call(ctx context.Context, operation string, in, out any) error {
	r, ok := c.s.regions[c.region]
	if !ok {
		return apierr.Newf(apierr.InternalServiceError, "region %s is not hosted by this server", c.region)
	}
	op := operations[operation]
	if op == nil {
		return apierr.Newf(apierr.UnknownOperation, "Unknown operation %q.", operation)
	}
	body, err := json.Marshal(in)
	if err != nil {
		return apierr.Newf(apierr.Serialization, "%s request: %v", operation, err)
	}
	if err := c.s.cfg.Audit.Ready(); err != nil {
		c.s.metrics.auditFailures.Inc()
		return errAuditRefused
	}
	req := &request{body: body, header: http.Header{}, identity: ServicePrincipal, known: c.s.knownRegion}
	res, err := op(ctx, resolvingRegion{r, req}, req)
	if aerr := c.s.auditCall(r, operation, req, res, err); aerr != nil {
		return errAuditWithheld
	}
	if err != nil {
		var ae *apierr.Error
		if !errors.As(err, &ae) {
			ae = apierr.Newf(apierr.InternalServiceError, "%v", err)
		}
		return ae
	}
	if out == nil {
		return nil
	}
	buf, err := json.Marshal(res)
	if err != nil {
		return apierr.Newf(apierr.InternalServiceError, "%s answer: %v", operation, err)
	}
	return json.Unmarshal(buf, out)
}
