# Coffer. `make run` starts a dev server; `make test` runs every test.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build run test e2e lint bench bench-etcd fuzz clean jepsen jepsen-short deploy-check

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/coffer ./cmd/coffer

# A single-node dev server on 127.0.0.1:8200; it prints its credentials.
run: build
	./bin/coffer dev

# Every test, with the race detector. Packages run one at a time (-p 1):
# the cluster tests start real Raft clusters whose leader leases are
# sensitive to a starved CPU on small machines.
test:
	$(GO) test -race -count=1 -p 1 -timeout 30m ./...
	# The fault switches exist only with -tags faults (cmd/coffer/faults.go).
	$(GO) test -race -count=1 -tags faults -run 'Fault' ./cmd/coffer/
	$(MAKE) --no-print-directory deploy-check

# The deploy files (deploy/, docs/operations.md "Deploy") without a Docker
# engine or a cluster: the tests of the deploy module (its own go.mod, so
# the server's module does not depend on compose-go, the Kubernetes API,
# BuildKit or Prometheus), then the compose region booted as three
# processes from the same env file, with a round trip through the AWS CLI.
deploy-check: build
	cd deploy && $(GO) test -count=1 ./...
	COFFER_BIN=$(CURDIR)/bin/coffer ./deploy/compose/run-as-processes.sh

# The AWS CLI v2 (Debian package awscli, at /usr/bin/aws) and jq against a
# `coffer dev` started from the freshly built bin/coffer, then against a
# sealed 3-node region with TLS on every port, initialized and unsealed
# with Shamir shares; see scripts/e2e.sh.
e2e:
	./scripts/e2e.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd deploy && $(GO) vet ./...

# Throughput through a 3-node cluster with 64 concurrent SDK clients;
# see docs/performance.md.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 5s -timeout 30m ./server/

# Coffer side by side with etcd in one run on this machine (a fresh 3-node
# region and a 3-node etcd; ../shared/loadgen): ops/s, the ratio, p99s.
# WORKLOADS (default "put get"), ROUNDS (3); BENCHFLAGS are loadgen flags.
BENCHFLAGS ?= -d 5s
bench-etcd:
	scripts/bench-etcd.sh $(BENCHFLAGS)

# Short fuzzing runs of every fuzz target (seeds are in testdata/fuzz).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzReadSnapshotFile$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzParseAuthorization$$' -fuzztime $(FUZZTIME) ./acl/
	$(GO) test -run '^$$' -fuzz '^FuzzParseShare$$' -fuzztime $(FUZZTIME) ./crypto/
	$(GO) test -run '^$$' -fuzz '^FuzzCombineShares$$' -fuzztime $(FUZZTIME) ./crypto/
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./acl/
	$(GO) test -run '^$$' -fuzz '^FuzzOperations$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./server/

# Consistency under faults (docs/jepsen.md): real coffer processes behind a
# fault-injecting proxy, checked with porcupine. Results go to results/.
# jepsen-short: baseline, kill, kill-leader, pause, partition-leader, member
# (node replacement), clock (faults build), region-failover (two regions
# of 3: lose the primary, promote the replica) and rotation (RotateSecret
# with a webhook rotator while leaders are killed) (~8.5 min).
# jepsen: the same plus kill-all, partition (halves, one), partition-ring and
# partition-bridge on 5 nodes, snapshot, churn and mixed; each 4x longer (~1 h). JEPSENFLAGS adds
# flags, e.g. JEPSENFLAGS='--net netns' (root) to cut links with namespaces.
jepsen-short:
	$(GO) run ./jepsen --scenario short --check-timeout 5m $(JEPSENFLAGS)

jepsen:
	$(GO) run ./jepsen --scenario long --scale 4 $(JEPSENFLAGS)

clean:
	rm -rf bin
