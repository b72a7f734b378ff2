//go:build faults

package main

// Fault-injection switches for the jepsen harness (docs/jepsen.md). This
// file is compiled only with -tags faults; release builds have none of
// these flags.

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/cluster"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"
)

// unsafeLocalReads is registered on pflag.CommandLine, which cobra merges
// into every command's flags, so `coffer server --unsafe-local-reads`
// parses in a faults build.
var unsafeLocalReads = pflag.Bool("unsafe-local-reads", false,
	"UNSAFE, faults builds only: serve linearizable reads from local state without a read index (jepsen negative control)")

var clockFile = pflag.String("faults-clock-file", "",
	"faults builds only (coffer server): skew this node's wall clock by the Go duration in file `PATH` "+
		"(e.g. -20m, 1.5s, 0s; missing or empty means 0), re-read every 100ms. "+
		"Moves timestamps, the deletion purge and the SigV4 request-time window; Raft keeps the real clock")

// applyFaults sets the fault switches on a node's cluster config.

func applyFaults(cc *cluster.Config) {
	cc.UnsafeLocalReads = *unsafeLocalReads
}

// clockReload is how often --faults-clock-file is re-read.
const clockReload = 100 * time.Millisecond

// faultClock returns the node's wall clock and a func that stops it. With
// --faults-clock-file it is time.Now plus the file's offset, followed
// while the node runs; without, time.Now.
func faultClock(logger hclog.Logger) (now func() time.Time, stop func()) {
	if *clockFile == "" {
		return time.Now, func() {}
	}
	c := &fileClock{path: *clockFile, logger: logger}
	c.reload()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(clockReload)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				c.reload()
			}
		}
	}()
	return c.now, func() { cancel(); <-done }
}

// fileClock is time.Now plus an offset read from a file. The harness
// replaces the file (write a temporary file, rename it over) to change a
// running node's offset.
type fileClock struct {
	path   string
	logger hclog.Logger
	offset atomic.Int64 // nanoseconds
	// bad is the last unusable content (or read error) warned about, so
	// each one is logged once; reload's goroutine is its only user.
	bad string
}

func (c *fileClock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// reload reads the file once: a missing or empty file is offset 0; an
// unreadable or unparsable one keeps the offset the node has.
func (c *fileClock) reload() {
	raw, err := os.ReadFile(c.path)
	var d time.Duration
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		c.warn(err.Error(), "clock offset file unreadable; keeping the current offset", "error", err)
		return
	default:
		s := strings.TrimSpace(string(raw))
		if s != "" {
			if d, err = time.ParseDuration(s); err != nil {
				c.warn("content:"+s, "clock offset file does not hold a Go duration; keeping the current offset", "content", s)
				return
			}
		}
	}
	c.bad = ""
	if old := time.Duration(c.offset.Swap(int64(d))); old != d {
		c.logger.Info("clock offset changed", "offset", d, "previous", old, "file", c.path)
	}
}

// warn logs a problem with the file once, until the file changes.
func (c *fileClock) warn(key, msg string, args ...any) {
	if key == c.bad {
		return
	}
	c.bad = key
	c.logger.Warn(msg, append(args, "file", c.path, "offset", time.Duration(c.offset.Load()))...)
}
