#!/usr/bin/env bash
# Coffer side by side with etcd on this machine, in one run: starts a
# fresh 3-node region of `coffer server` (plaintext, as the etcd cluster
# is), then ../shared/loadgen/side-by-side.sh, which starts a 3-node etcd,
# drives both with the same closed-loop load (64 workers, 1 KiB values,
# 1,000 keys; Coffer through the AWS SDK with SigV4, retries off) and
# prints each workload's ops/s, the ratio, p99s and the servers' CPU.
#
#   make bench-etcd                              put and get, 3 rounds of 5 s
#   WORKLOADS="put get create mixed" ROUNDS=5 scripts/bench-etcd.sh -d 10s
#
# Arguments are loadgen flags for both sides. Needs ../shared/loadgen (and
# installs Debian's etcd-server if missing, as side-by-side.sh does). Run it
# on an otherwise idle machine: docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x ../shared/loadgen/side-by-side.sh ] || { echo "bench-etcd: ../shared/loadgen/side-by-side.sh not found" >&2; exit 1; }
make --no-print-directory build >/dev/null
nodes=3
base=18100
tmp=$(mktemp -d)
# shellcheck source=scripts/region.sh
. scripts/region.sh
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
region_start
[ $# -gt 0 ] || set -- -d 5s
echo "bench-etcd: coffer $(./bin/coffer version 2>/dev/null | head -n 1), 3 nodes at $endpoints"
SM_ENDPOINTS=$endpoints SM_PIDS=$(IFS=,; echo "${pids[*]}") \
  WORKLOADS=${WORKLOADS:-put get} ROUNDS=${ROUNDS:-3} \
  ../shared/loadgen/side-by-side.sh "$@"
