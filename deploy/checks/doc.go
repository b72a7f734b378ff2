// Package checks holds the tests of Coffer's deploy files (deploy/): the
// Dockerfile and .dockerignore, the Compose region and its env file, the
// systemd unit, the Kubernetes manifests and the Grafana dashboard. They
// run without a Docker engine or a cluster: every file is parsed by the
// library its tool uses (compose-go, the typed Kubernetes API, BuildKit's
// Dockerfile parser, the PromQL parser, systemd-analyze) and checked
// against the others and against the server's flags and metrics.
//
// It is a module of its own (deploy/go.mod) so the server's module does
// not depend on any of them. Run with `make deploy-check`, or
// `cd deploy && go test ./...`.
package checks
