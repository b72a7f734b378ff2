#!/usr/bin/env bash
# What authorization and audit cost, side by side in one run
# (docs/performance.md "What authorization and audit cost"): a region of
# OLD (a build from before IAM and audit, called as root) and a region of
# NEW, called as root ("newroot": audit only) and as an IAM user with 10
# managed policies of 10 statements ("new"), through ../shared/loadgen,
# alternating, ROUNDS rounds of each of WORKLOADS.
#
#   OLD=/tmp/coffer-old NEW=./bin/coffer LOADGEN=/tmp/loadgen \
#     SIDES="old newroot new" WORKLOADS="get put" scripts/bench-authz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OLD:?OLD names the coffer binary to compare with}" "${NEW:=./bin/coffer}" "${LOADGEN:?LOADGEN names a built ../shared/loadgen}"
work=$(mktemp -d)
nodes=3
rounds=${ROUNDS:-3}
declare -A P E
trap 'kill ${P[old]:-} ${P[new]:-} 2>/dev/null; rm -rf "$work"' EXIT
for side in old new; do
  base=$([ $side = old ] && echo 24000 || echo 25000)
  tmp=$work/$side; mkdir -p "$tmp"
  if [ $side = old ]; then coffer=$OLD; else coffer=$NEW; fi
  source scripts/region.sh
  region_start
  P[$side]="${pids[*]}"
  E[$side]=$endpoints
done
root_id=$AWS_ACCESS_KEY_ID root_secret=$AWS_SECRET_ACCESS_KEY
ep=${E[new]%%,*}
export AWS_DEFAULT_REGION=us-east-1
ci() { "$NEW" iam "$@" --endpoint "$ep" >/dev/null; }
ci user create bench
for p in $(seq 0 9); do
  st=""
  for s in $(seq 0 9); do
    res="arn:aws:secretsmanager:*:*:secret:svc-$p-$s/*"; cond=""
    if [ $p = 9 ] && [ $s = 9 ]; then res="arn:aws:secretsmanager:*:*:secret:loadgen-*"; 
    elif [ $((s % 3)) = 0 ]; then cond=",\"Condition\":{\"StringEquals\":{\"aws:ResourceTag/team\":\"t$p$s\"},\"IpAddress\":{\"aws:SourceIp\":[\"10.$p.0.0/16\",\"192.168.$s.0/24\"]}}"; fi
    st+="${st:+,}{\"Sid\":\"s$s\",\"Effect\":\"Allow\",\"Action\":[\"secretsmanager:GetSecretValue\",\"secretsmanager:PutSecretValue\",\"secretsmanager:CreateSecret\",\"secretsmanager:DeleteSecret\"],\"Resource\":\"$res\"$cond}"
  done
  ci policy create "p$p" --document "{\"Version\":\"2012-10-17\",\"Statement\":[$st]}"
  ci policy attach "p$p" --user bench
done
key=$("$NEW" iam key create bench --endpoint "$ep" --format json)
uid=$(echo "$key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["AccessKeyId"])')
usec=$(echo "$key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["SecretAccessKey"])')
for w in ${WORKLOADS:-get put}; do
  for r in $(seq 1 "$rounds"); do
    for side in ${SIDES:-old new}; do
      if [ $side = new ]; then id=$uid sec=$usec; else id=$root_id sec=$root_secret; fi
      reg=${side%root}; [ "$reg" = "" ] && reg=new
      out=$("$LOADGEN" -target sm -endpoints "${E[$reg]}" -workload "$w" -c 64 -warmup 2s -d 5s \
        -access-key "$id" -secret-key "$sec" -server-pids "${P[$reg]// /,}" -json 2>/dev/null)
      echo "$w round=$r side=$side $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("ops/s=%.0f failed=%d p99_ms=%.1f server_cores=%.2f" % (d["ops_per_sec"], d["failed"], d["latency_ms"]["p99"], d.get("server_cpu_cores",0)))')"
    done
  done
done
echo "audit records on the new region's n1: $(cat "$work"/new/n1/audit/*.log | wc -l)"
