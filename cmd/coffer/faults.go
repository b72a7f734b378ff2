//go:build faults

package main

// Fault-injection switches for the jepsen harness (docs/jepsen.md). This
// file is compiled only with -tags faults; release builds have none of
// these flags.

import (
	"github.com/cofferhq/coffer/cluster"
	"github.com/spf13/pflag"
)

// unsafeLocalReads is registered on pflag.CommandLine, which cobra merges
// into every command's flags, so `coffer server --unsafe-local-reads`
// parses in a faults build.
var unsafeLocalReads = pflag.Bool("unsafe-local-reads", false,
	"UNSAFE, faults builds only: serve linearizable reads from local state without a read index (jepsen negative control)")

// applyFaults sets the fault switches on a node's cluster config.

func applyFaults(cc *cluster.Config) {
	cc.UnsafeLocalReads = *unsafeLocalReads
}
