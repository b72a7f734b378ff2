package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/cluster"
	"github.com/labstack/echo/v4"
)

// Response headers Coffer adds to every API answer.
const (
	HeaderIndex       = "X-Coffer-Index"
	HeaderOutcome     = "X-Coffer-Outcome"
	HeaderConsistency = "X-Coffer-Consistency"
	HeaderLastContact = "X-Coffer-Last-Contact"
	contentTypeJSON11 = "application/x-amz-json-1.1"
)

// wireError is the one place an error becomes an AWS JSON error: the type,
// the status, the message, and whether anything may have been applied.
func wireError(err error) (status int, code, message string, outcome cluster.Outcome) {
	var ae *apierr.Error
	var ue *cluster.UnavailableError
	switch {
	case errors.As(err, &ae):
		// Every typed error is decided before or by Apply, which changes
		// nothing when it refuses.
		return apierr.Status(ae.Code), ae.Code, ae.Message, cluster.OutcomeNotApplied
	case errors.As(err, &ue):
		return http.StatusServiceUnavailable, apierr.ServiceUnavailable, ue.Reason, ue.Outcome
	}
	return http.StatusInternalServerError, apierr.InternalFailure, "internal error", cluster.OutcomeUnknown
}

func writeError(c echo.Context, err error) error {
	status, code, msg, outcome := wireError(err)
	h := c.Response().Header()
	h.Set(HeaderOutcome, string(outcome))
	h.Set("X-Amzn-ErrorType", code)
	auditError(c, code, msg)
	body, _ := json.Marshal(map[string]string{"__type": code, "Message": msg})
	return c.Blob(status, contentTypeJSON11, body)
}
