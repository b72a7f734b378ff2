package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"
)

// servePprof serves Go's profiles (net/http/pprof) on addr, a loopback
// address only: the profiles show the process's internals and the
// listener has no authentication, so it is reached from the host itself
// (or through an SSH tunnel). Block and mutex profiling are switched on
// with it; they cost a little on every contended lock, which is why the
// listener is off unless --pprof-addr is given (docs/performance.md).
func servePprof(addr string, logger hclog.Logger) (func(), error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-addr: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--pprof-addr %s: give a loopback address (127.0.0.1:6060): the profiles are served without authentication", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	runtime.SetBlockProfileRate(int((10 * time.Microsecond).Nanoseconds()))
	runtime.SetMutexProfileFraction(100)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			logger.Warn("pprof listener stopped", "error", err)
		}
	}()
	logger.Info("serving profiles", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
