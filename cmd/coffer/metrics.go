package main

import (
	gometrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newMetricsRegistry is the registry GET /v1/metrics serves: Go runtime
// and process figures, and hashicorp/raft's own metrics (commit and apply
// times, fsync, replication, snapshots, leadership changes), which raft
// emits through go-metrics' global sink and which are bridged here under
// the "coffer_" prefix. The server adds its request figures and each
// region's Raft gauges to it.
func newMetricsRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Registerer: reg})
	if err != nil {
		return nil, err
	}
	conf := gometrics.DefaultConfig("coffer")
	conf.EnableHostname = false       // one process, one node: no host prefix in names
	conf.EnableRuntimeMetrics = false // the Go collector has them
	conf.EnableHostnameLabel = false
	if _, err := gometrics.NewGlobal(conf, sink); err != nil {
		return nil, err
	}
	return reg, nil
}
