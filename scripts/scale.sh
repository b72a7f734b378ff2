#!/usr/bin/env bash
# Memory and restart time at scale: start a region of NODES `coffer server`
# processes on 127.0.0.1 (plaintext, in a temporary directory), create
# SECRETS secrets of 1 KiB through the AWS API with ../shared/loadgen
# (-workload create), then report each node's RSS and data directory size,
# and restart one follower (SIGKILL, as a crash) to time how long it takes
# to answer /v1/health/ready and to apply everything the region had
# committed before it died.
#
#   scripts/scale.sh SECRETS [NODES]      e.g. scripts/scale.sh 100000 3
#   LOADGEN=/path/to/loadgen              default: built from ../shared/loadgen
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:?usage: scripts/scale.sh SECRETS [NODES]}
nodes=${2:-3}
make --no-print-directory build >/dev/null
tmp=$(mktemp -d)
base=17100
# shellcheck source=scripts/region.sh
. scripts/region.sh
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
LOADGEN=${LOADGEN:-}
if [ -z "$LOADGEN" ]; then
  (cd ../shared/loadgen && go build -o "$tmp/loadgen" .)
  LOADGEN=$tmp/loadgen
fi
region_start

t0=$(date +%s)
while :; do
  have=$(metric 1 'coffer_state_secrets{region="us-east-1"}')
  [ "$have" -ge "$want" ] && break
  "$LOADGEN" -target sm -endpoints "$endpoints" -workload create -c 64 -warmup 0s -d 20s -keys 1 -cleanup=false >"$tmp/load.out" 2>&1 ||
    { cat "$tmp/load.out"; exit 1; }
  echo "scale: $(metric 1 'coffer_state_secrets{region="us-east-1"}') secrets after $(($(date +%s) - t0)) s"
done
sleep 2
echo "scale: $(metric 1 'coffer_state_secrets{region="us-east-1"}') secrets, $(metric 1 'coffer_state_versions{region="us-east-1"}') versions, created in $(($(date +%s) - t0)) s"
for i in $(seq 1 "$nodes"); do
  rss=$(awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/${pids[i]}/status")
  echo "scale: n$i RSS ${rss} MiB, data dir $(du -sm "$tmp/n$i" | cut -f1) MiB"
done

# Restart a follower after a crash (the only node, in a region of one).
victim=1
for i in $(seq 1 "$nodes"); do
  [ "$(metric "$i" 'coffer_raft_leader{region="us-east-1"}')" = 0 ] && { victim=$i; break; }
done
target=$(metric "$victim" 'coffer_raft_commit_index{region="us-east-1"}')
kill -KILL "${pids[victim]}"
wait "${pids[victim]}" 2>/dev/null || true
s=$(date +%s%N)
start_node "$victim"
until ready "$victim"; do sleep 0.05; done
r=$(date +%s%N)
until [ "$(metric "$victim" 'coffer_raft_applied_index{region="us-east-1"}')" -ge "$target" ]; do sleep 0.05; done
a=$(date +%s%N)
rss=$(awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/${pids[victim]}/status")
echo "scale: n$victim restarted: ready after $(((r - s) / 1000000)) ms, applied index $target after $(((a - s) / 1000000)) ms, RSS then ${rss} MiB"
# Where the restart's time went, as the node logged it.
grep -E 'restor|snapshot|starting up|leader changed' "$tmp/n$victim.log" | tail -n 12 | sed 's/^/scale: log: /'
