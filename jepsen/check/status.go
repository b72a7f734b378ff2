package check

import (
	"fmt"
	"sort"
	"strings"
)

// NodeStatus is one node's answer to GET /v1/cluster/status in one poll
// after healing (status.jsonl): its applied index and the state digest
// with the index the digest reflects.
type NodeStatus struct {
	Poll             int    `json:"poll"`
	Time             int64  `json:"time"` // ns since the run started
	Node             string `json:"node"`
	State            string `json:"state,omitempty"`
	Term             uint64 `json:"term,omitempty"`
	AppliedIndex     uint64 `json:"applied_index"`
	StateDigest      string `json:"state_digest,omitempty"`
	StateDigestIndex uint64 `json:"state_digest_index"`
	Err              string `json:"err,omitempty"` // the request failed
}

// lastPoll returns the samples of the highest poll number.
func lastPoll(samples []NodeStatus) []NodeStatus {
	last := -1
	for _, s := range samples {
		last = max(last, s.Poll)
	}
	var out []NodeStatus
	for _, s := range samples {
		if s.Poll == last {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// PollConverged reports whether one poll shows every node answering at
// one state-digest index with one digest (the harness stops polling
// then).
func PollConverged(poll []NodeStatus) bool {
	if len(poll) == 0 {
		return false
	}
	for _, s := range poll {
		if s.Err != "" || s.StateDigest == "" || s.StateDigestIndex != poll[0].StateDigestIndex || s.StateDigest != poll[0].StateDigest {
			return false
		}
	}
	return true
}

// Convergence checks the state digests sampled after healing (research
// §7, "final convergence"): two nodes that report the same
// state_digest_index with different digests, in any poll, is INVALID
// (the same log prefix applied to different states); the last poll must
// show every node (every node seen in any poll) at one index with one
// digest, otherwise INVALID (the region did not converge after healing);
// a last poll with a failed request is UNKNOWN. The second result is
// false when the run recorded no samples (older runs): the check is not
// reported.
func Convergence(f Files) (Result, bool) {
	r := Result{Name: "convergence"}
	if len(f.Statuses) == 0 {
		return r, false
	}
	byIndex := map[uint64]NodeStatus{}
	nodes := map[string]bool{}
	bad := 0
	for _, s := range f.Statuses {
		nodes[s.Node] = true
		if s.Err != "" || s.StateDigest == "" {
			continue
		}
		prev, ok := byIndex[s.StateDigestIndex]
		switch {
		case !ok:
			byIndex[s.StateDigestIndex] = s
		case prev.StateDigest != s.StateDigest:
			bad++
			r.addError(fmt.Sprintf("index %d: %s reports digest %s (poll %d), %s reports %s (poll %d)",
				s.StateDigestIndex, prev.Node, short(prev.StateDigest), prev.Poll, s.Node, short(s.StateDigest), s.Poll))
		}
	}
	last := lastPoll(f.Statuses)
	var where []string
	failed := 0
	for _, s := range last {
		if s.Err != "" {
			failed++
			where = append(where, s.Node+": "+s.Err)
			continue
		}
		where = append(where, fmt.Sprintf("%s@%d/%s", s.Node, s.StateDigestIndex, short(s.StateDigest)))
	}
	switch {
	case bad > 0:
		r.Verdict = Invalid
		r.Detail = fmt.Sprintf("%d digest mismatches at one index (%d samples)", bad, len(f.Statuses))
	case len(last) < len(nodes):
		r.Verdict = Unknown
		r.Detail = fmt.Sprintf("last poll has %d of %d nodes", len(last), len(nodes))
	case failed > 0:
		r.Verdict = Unknown
		r.Detail = "status request failed in the last poll: " + strings.Join(where, ", ")
	case !PollConverged(last):
		r.Verdict = Invalid
		r.Detail = fmt.Sprintf("not converged after %d polls: %s", last[0].Poll+1, strings.Join(where, ", "))
	default:
		r.Verdict = Valid
		r.Detail = fmt.Sprintf("%d/%d nodes at index %d, digest %s (%d polls)", len(last), len(nodes), last[0].StateDigestIndex,
			last[0].StateDigest[:min(12, len(last[0].StateDigest))], last[0].Poll+1)
	}
	return r, true
}
