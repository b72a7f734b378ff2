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
pids=()
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
export AWS_ACCESS_KEY_ID=AKIASCALETEST0000001 AWS_SECRET_ACCESS_KEY=scale/test/secret/key/0123456789abcdefghij
printf '{"AccessKeyId":"%s","SecretAccessKey":"%s"}' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$tmp/creds.json"
./bin/coffer operator root-key generate --out "$tmp/root.key" >/dev/null

join=""
for i in $(seq 1 "$nodes"); do join+="${join:+,}127.0.0.1:$((17400 + i))"; done
start_node() {
  local i=$1
  ./bin/coffer server --node-id "n$i" --region us-east-1 --data-dir "$tmp/n$i" \
    --api-addr "127.0.0.1:$((17200 + i))" --cluster-addr "127.0.0.1:$((17300 + i))" \
    --gossip-addr "127.0.0.1:$((17400 + i))" --join "$join" --bootstrap-expect "$nodes" \
    --root-key-file "$tmp/root.key" --bootstrap-credentials-file "$tmp/creds.json" \
    --insecure-plaintext >>"$tmp/n$i.log" 2>&1 &
  pids[i]=$!
}
metric() { # metric NODE SERIES: a sample's value from /v1/metrics, 0 if absent
  curl -fsS "http://127.0.0.1:$((17200 + $1))/v1/metrics" 2>/dev/null |
    awk -v s="$2" '$1 == s { v = $2 } END { printf "%d\n", v + 0 }'
}
ready() { curl -fsS -o /dev/null "http://127.0.0.1:$((17200 + $1))/v1/health/ready" 2>/dev/null; }
for i in $(seq 1 "$nodes"); do start_node "$i"; done
for _ in $(seq 1 600); do
  ok=1
  for i in $(seq 1 "$nodes"); do ready "$i" || ok=0; done
  [ $ok = 1 ] && break
  sleep 0.1
done
endpoints=""
for i in $(seq 1 "$nodes"); do endpoints+="${endpoints:+,}http://127.0.0.1:$((17200 + i))"; done

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
