package check

import (
	"sort"
	"time"
)

// Sample is one record of samples.jsonl: one node's GET /v1/health during
// the main phase (every node every 100 ms). Time is ns since the run's
// base time, taken when the answer arrived; Err is set when none did.
type Sample struct {
	Time   int64  `json:"time"`
	Node   string `json:"node"`
	State  string `json:"state,omitempty"`
	Leader string `json:"leader,omitempty"`
	Term   uint64 `json:"term,omitempty"`
	Err    string `json:"err,omitempty"`
}

// TimeToElect computes, per fault start, the time until a sample shows a
// node other than the faulted one leading in a term above every term
// sampled before the fault: how long the region had no usable leader.
// Only faults that started while the sampled leader was the faulted node,
// or that hit every node or a partition (no node named), can be expected
// to cause an election; follower faults are left out. Recovered is false
// when no such leader appeared before the next fault started (a partition
// that left the leader in the majority, for example). Reported, never
// asserted; the resolution is the sampling period.
func TimeToElect(f Files) []Window {
	if len(f.Samples) == 0 {
		return nil
	}
	samples := append([]Sample(nil), f.Samples...)
	sort.Slice(samples, func(i, j int) bool { return samples[i].Time < samples[j].Time })
	var starts []Event
	for _, e := range f.Events {
		if e.Phase == "start" {
			starts = append(starts, e)
		}
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i].Time < starts[j].Time })
	var out []Window
	for k, e := range starts {
		var maxTerm uint64
		leader := ""
		for _, s := range samples {
			if s.Time >= e.Time {
				break
			}
			if s.Err == "" && s.Term >= maxTerm {
				maxTerm = s.Term
				if s.State == "leader" {
					leader = s.Node
				}
			}
		}
		if e.Node != "" && e.Node != leader {
			continue // a follower fault: no election expected
		}
		end := int64(1<<63 - 1)
		if k+1 < len(starts) {
			end = starts[k+1].Time
		}
		w := Window{Fault: e.Fault, Node: e.Node, Start: time.Duration(e.Time)}
		for _, s := range samples {
			if s.Time < e.Time || s.Err != "" {
				continue
			}
			if s.Time >= end {
				break
			}
			if s.State == "leader" && s.Term > maxTerm && s.Node != e.Node {
				w.Window, w.Recovered = time.Duration(s.Time-e.Time), true
				break
			}
		}
		out = append(out, w)
	}
	return out
}
