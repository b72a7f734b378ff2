//go:build !faults

package main

import "github.com/cofferhq/coffer/cluster"

// applyFaults does nothing in release builds: fault switches exist only
// with -tags faults (faults.go).
func applyFaults(*cluster.Config) {}
