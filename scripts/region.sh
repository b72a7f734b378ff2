# Sourced by scripts that measure a real region (scale.sh, bench-etcd.sh):
# a region of $nodes `coffer server` processes on 127.0.0.1, plaintext, in
# $tmp, on ports $base+100+i (API), $base+200+i (cluster), $base+300+i
# (gossip); with pprof set, Go's profiles on $pprof+i (--pprof-addr). The
# caller sets nodes, base and tmp (and coffer, to run another binary than
# ./bin/coffer) and kills "${pids[@]}" on exit. After region_start: pids,
# endpoints (the API URLs, comma separated), and the root credentials in
# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.

export AWS_ACCESS_KEY_ID=AKIASCALETEST0000001 AWS_SECRET_ACCESS_KEY=scale/test/secret/key/0123456789abcdefghij
pids=()
endpoints=""

# start_node I: start (or restart) node I.
start_node() {
  local i=$1 join=""
  for j in $(seq 1 "$nodes"); do join+="${join:+,}127.0.0.1:$((base + 300 + j))"; done
  "${coffer:-./bin/coffer}" server --node-id "n$i" --region us-east-1 --data-dir "$tmp/n$i" \
    --api-addr "127.0.0.1:$((base + 100 + i))" --cluster-addr "127.0.0.1:$((base + 200 + i))" \
    --gossip-addr "127.0.0.1:$((base + 300 + i))" --join "$join" --bootstrap-expect "$nodes" \
    --root-key-file "$tmp/root.key" --bootstrap-credentials-file "$tmp/creds.json" \
    --insecure-plaintext ${pprof:+--pprof-addr "127.0.0.1:$((pprof + i))"} >>"$tmp/n$i.log" 2>&1 &
  pids[i]=$!
}

# metric I SERIES: a sample's value from node I's /v1/metrics, 0 if absent.
metric() {
  curl -fsS "http://127.0.0.1:$((base + 100 + $1))/v1/metrics" 2>/dev/null |
    awk -v s="$2" '$1 == s { v = $2 } END { printf "%d\n", v + 0 }'
}

# ready I: node I answers /v1/health/ready.
ready() { curl -fsS -o /dev/null "http://127.0.0.1:$((base + 100 + $1))/v1/health/ready" 2>/dev/null; }

# region_start: every node started and ready (60 s at most).
region_start() {
  printf '{"AccessKeyId":"%s","SecretAccessKey":"%s"}' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$tmp/creds.json"
  ./bin/coffer operator root-key generate --out "$tmp/root.key" >/dev/null
  for i in $(seq 1 "$nodes"); do start_node "$i"; done
  local ok
  for _ in $(seq 1 600); do
    ok=1
    for i in $(seq 1 "$nodes"); do ready "$i" || ok=0; done
    [ $ok = 1 ] && break
    sleep 0.1
  done
  [ $ok = 1 ] || { echo "the region did not become ready in 60 s; logs in $tmp" >&2; return 1; }
  endpoints=""
  for i in $(seq 1 "$nodes"); do endpoints+="${endpoints:+,}http://127.0.0.1:$((base + 100 + i))"; done
}
