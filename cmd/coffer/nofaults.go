//go:build !faults

package main

import (
	"time"

	"github.com/cofferhq/coffer/cluster"
	"github.com/hashicorp/go-hclog"
)

// applyFaults does nothing in release builds: fault switches exist only
// with -tags faults (faults.go).
func applyFaults(*cluster.Config) {}

// faultClock is the real wall clock: only a faults build can skew it
// (--faults-clock-file, faults.go).
func faultClock(hclog.Logger) (now func() time.Time, stop func()) { return time.Now, func() {} }
