package cluster

import (
	"errors"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
)

// Outcome says whether a failed write may have been applied.
type Outcome string

const (
	// OutcomeNotApplied: nothing was applied; retrying is safe.
	OutcomeNotApplied Outcome = "not-applied"
	// OutcomeUnknown: the command may or may not be applied (timeout,
	// leadership lost after it was sent).
	OutcomeUnknown Outcome = "unknown"
)

// UnavailableError means the cluster could not serve the request: no
// leader, a minority partition, a timeout, shutdown.
type UnavailableError struct {
	Reason  string
	Outcome Outcome
}

func (e *UnavailableError) Error() string { return "cluster unavailable: " + e.Reason }

// errNotLeader is internal: the node asked is not (or no longer) the leader
// and nothing was applied; the caller looks for the leader again.
var errNotLeader = errors.New("not the leader")

func unavailable(reason string, o Outcome) *UnavailableError {
	return &UnavailableError{Reason: reason, Outcome: o}
}

func toResponse(res *fsm.Result, index uint64, err error) *rpcResponse {
	resp := &rpcResponse{Index: index, Result: res}
	if err == nil {
		return resp
	}
	var ae *apierr.Error
	var ue *UnavailableError
	switch {
	case errors.As(err, &ae):
		resp.Code, resp.Message = ae.Code, ae.Message
	case errors.As(err, &ue):
		resp.Unavailable, resp.Outcome = ue.Reason, ue.Outcome
	case errors.Is(err, errNotLeader):
		resp.NotLeader = true
	default:
		resp.Unavailable, resp.Outcome = err.Error(), OutcomeUnknown
	}
	return resp
}

func fromResponse(resp *rpcResponse) (*fsm.Result, uint64, error) {
	switch {
	case resp.NotLeader:
		return nil, 0, errNotLeader
	case resp.Code != "":
		return nil, resp.Index, apierr.New(resp.Code, resp.Message)
	case resp.Unavailable != "":
		return nil, 0, unavailable(resp.Unavailable, resp.Outcome)
	}
	return resp.Result, resp.Index, nil
}
