package cluster

import (
	"strconv"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
)

// The node's own figures go through go-metrics' global sink, as raft's do:
// the process decides where they end up (cmd/coffer bridges them into
// /v1/metrics under the "coffer_" prefix); without a sink they cost a
// no-op call. Every series carries the region, since one process can host
// several.

// metricForward times a request this node sent to its leader (a write, a
// read index, an operator call) and counts the ones without an answer.
func (n *Node) metricForward(op rpcOp, start time.Time, answered bool) {
	labels := []gometrics.Label{{Name: "region", Value: n.cfg.Region}, {Name: "op", Value: op.String()}}
	gometrics.MeasureSinceWithLabels([]string{"cluster", "forward"}, start, labels)
	if !answered {
		gometrics.IncrCounterWithLabels([]string{"cluster", "forward", "failed"}, 1, labels)
	}
}

// metricReadIndex times a whole linearizable read barrier on this node
// (read index from the leader, then waiting to apply it) and the wait to
// apply alone.
func (n *Node) metricReadIndex(start, gotIndex time.Time) {
	labels := []gometrics.Label{{Name: "region", Value: n.cfg.Region}}
	gometrics.MeasureSinceWithLabels([]string{"cluster", "read_index"}, start, labels)
	gometrics.MeasureSinceWithLabels([]string{"cluster", "read_index", "apply_wait"}, gotIndex, labels)
}

// metricReadRound records one leadership confirmation on the leader and
// how many read barriers it served: reads waiting while a round runs share
// the next one.
func (n *Node) metricReadRound(start time.Time, reads int) {
	labels := []gometrics.Label{{Name: "region", Value: n.cfg.Region}}
	gometrics.MeasureSinceWithLabels([]string{"cluster", "read_index", "round"}, start, labels)
	gometrics.AddSampleWithLabels([]string{"cluster", "read_index", "round_reads"}, float32(reads), labels)
}

func (op rpcOp) String() string {
	switch op {
	case opApply:
		return "apply"
	case opReadIndex:
		return "read_index"
	case opRemoveServer:
		return "remove_server"
	case opAddServer:
		return "add_server"
	case opHasState:
		return "has_state"
	case opRemovePeer:
		return "remove_peer"
	case opTransferLeader:
		return "transfer_leader"
	case opRestoreSnapshot:
		return "restore_snapshot"
	}
	return "op_" + strconv.Itoa(int(op))
}
