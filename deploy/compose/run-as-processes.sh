#!/usr/bin/env bash
# Boots the region of deploy/compose/docker-compose.yml — three nodes
# (coffer-1, coffer-2, coffer-3) of us-east-1, TLS on every port, the root
# key given whole — as plain `coffer server` processes on 127.0.0.1, from
# the same deploy/compose/coffer.env, with no Docker engine. Then:
#
#   - runs the compose file's health check command on every node;
#   - waits for /v1/health/ready and /v1/health/live (the Kubernetes probes);
#   - a signed round trip with the AWS CLI v2: create-secret through one
#     node, get-secret-value through another, over HTTPS;
#   - scrapes /v1/metrics and checks that every series the Grafana
#     dashboard (deploy/grafana/coffer-dashboard.json) queries is there;
#   - stops the nodes with SIGTERM and checks they stopped gracefully.
#
# Everything lives in a temporary directory, laid out per node as the
# containers see it ($TMP/<node>/etc/coffer/tls/node.pem, ...): every
# value of coffer.env that is a path gets the node's prefix, and every
# address (0.0.0.0:PORT, 127.0.0.1:PORT, <node>:PORT) becomes 127.0.0.1 and
# a free port. The other settings are kept as they are. Every process is
# stopped on exit, whatever happens.
#
#   deploy/compose/run-as-processes.sh       (make deploy-check runs it)
#   COFFER_BIN=/path/to/coffer AWS=/path/to/aws deploy/compose/run-as-processes.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ENV_FILE=$HERE/coffer.env
DASHBOARD=$ROOT/deploy/grafana/coffer-dashboard.json
# The services of docker-compose.yml (deploy/checks checks they match).
NODES=(coffer-1 coffer-2 coffer-3)
# /usr/bin/aws explicitly: a pip-installed CLI v1 may come first on PATH.
AWS=${AWS:-/usr/bin/aws}

say() { echo "run-as-processes: $*"; }
die() {
  echo "run-as-processes: FAIL: $1" >&2
  if [ $# -gt 1 ]; then printf -- '---- output ----\n%s\n----------------\n' "$2" >&2; fi
  for n in "${NODES[@]}"; do
    if [ -n "${TMP:-}" ] && [ -s "$TMP/$n.log" ]; then
      echo "---- $n log (last 20 lines) ----" >&2
      tail -n 20 "$TMP/$n.log" >&2
    fi
  done
  exit 1
}

[ -x "$AWS" ] || die "$AWS not found: install the Debian package awscli"
case "$("$AWS" --version 2>&1)" in aws-cli/2.*) ;; *) die "$AWS is not the AWS CLI v2" ;; esac
for tool in jq curl; do command -v $tool >/dev/null 2>&1 || die "$tool not found"; done
[ -f "$ENV_FILE" ] || die "$ENV_FILE not found"

if [ -z "${COFFER_BIN:-}" ]; then
  make --no-print-directory -C "$ROOT" build >/dev/null
  COFFER_BIN=$ROOT/bin/coffer
fi
[ -x "$COFFER_BIN" ] || die "$COFFER_BIN is not an executable"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

# The env file as Compose reads it: KEY=value lines, comments and blank
# lines skipped, no quoting.
ENV_KEYS=() ENV_VALUES=()
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in '' | '#'*) continue ;; esac
  [[ "$line" =~ ^([A-Z_][A-Z0-9_]*)=([^[:space:]\"\']*)$ ]] || die "coffer.env: not a plain KEY=value line: $line"
  ENV_KEYS+=("${BASH_REMATCH[1]}") ENV_VALUES+=("${BASH_REMATCH[2]}")
done <"$ENV_FILE"
env_value() {
  local i
  for i in "${!ENV_KEYS[@]}"; do
    if [ "${ENV_KEYS[$i]}" = "$1" ]; then echo "${ENV_VALUES[$i]}"; return 0; fi
  done
  return 1
}
REGION=$(env_value COFFER_REGION) || die "coffer.env sets no COFFER_REGION"
env_value COFFER_ROOT_KEY_FILE >/dev/null || die "coffer.env sets no COFFER_ROOT_KEY_FILE (this script unseals with the root key whole)"

# A free port: one nothing accepts connections on.
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}
# PORT[<node>:<container port>] = the host port that stands for it.
declare -A PORT
for n in "${NODES[@]}"; do
  for p in 8201 8301 8401; do PORT[$n:$p]=$(free_port) || die "no free port"; done
done
# map_addr NODE ADDR: an address of the container NODE as a host address.
map_addr() {
  local node=$1 host=${2%:*} port=${2##*:}
  case "$host" in
    0.0.0.0 | 127.0.0.1 | localhost) ;;
    *) node=$host ;;
  esac
  [ -n "${PORT[$node:$port]:-}" ] || die "coffer.env: no node $node with port $port (address $2)"
  echo "127.0.0.1:${PORT[$node:$port]}"
}
# map_value NODE VALUE: a value of coffer.env as the process of NODE takes it.
map_value() {
  local node=$1 v=$2 out=() part a
  case "$v" in
    /*) echo "$TMP/$node$v"; return ;;
    http://* | https://*)
      local scheme=${v%%://*} rest=${v#*://}
      a=$(map_addr "$node" "${rest%%/*}") || return 1
      echo "$scheme://$a"
      return
      ;;
  esac
  if [[ "$v" =~ ^[a-z0-9.-]+:[0-9]+(,[a-z0-9.-]+:[0-9]+)*$ ]]; then
    IFS=, read -ra parts <<<"$v"
    for part in "${parts[@]}"; do
      a=$(map_addr "$node" "$part") || return 1
      out+=("$a")
    done
    (IFS=,; echo "${out[*]}")
    return
  fi
  echo "$v"
}

# The material, made as docs/operations.md says, then laid out per node as
# docker-compose.yml mounts it.
M=$TMP/material
mkdir -p "$M/tls" "$M/secrets"
"$COFFER_BIN" operator tls ca create --out-dir "$M/tls" >/dev/null
for n in "${NODES[@]}"; do
  "$COFFER_BIN" operator tls cert create --node "$n" --region "$REGION" --out-dir "$M/tls" \
    --ca "$M/tls/coffer-ca.pem" --ca-key "$M/tls/coffer-ca-key.pem" >/dev/null
done
"$COFFER_BIN" operator gossip keygen >"$M/secrets/gossip.key"
chmod 600 "$M/secrets/gossip.key"
"$COFFER_BIN" operator root-key generate --out "$M/secrets/root.key" >/dev/null
for n in "${NODES[@]}"; do
  mkdir -p "$TMP/$n/etc/coffer/tls" "$TMP/$n/var/lib/coffer"
  cp "$M/tls/coffer-ca.pem" "$TMP/$n/etc/coffer/tls/coffer-ca.pem"
  cp "$M/tls/$REGION-server-$n.pem" "$TMP/$n/etc/coffer/tls/node.pem"
  cp "$M/tls/$REGION-server-$n-key.pem" "$TMP/$n/etc/coffer/tls/node-key.pem"
  cp -r "$M/secrets" "$TMP/$n/etc/coffer/secrets"
  chmod -R go-rwx "$TMP/$n"
done

# node_env NODE: the environment of NODE's process, one VAR=value a line.
node_env() {
  local n=$1 i v
  for i in "${!ENV_KEYS[@]}"; do
    v=$(map_value "$n" "${ENV_VALUES[$i]}") || return 1
    echo "${ENV_KEYS[$i]}=$v"
  done
  # docker-compose.yml's per-node environment: COFFER_CLUSTER_ADVERTISE is
  # not needed here, the cluster port binds 127.0.0.1.
  echo "COFFER_NODE_ID=$n"
}
# in_node NODE CMD...: CMD with NODE's environment and nothing else of
# ours. It replaces the shell (exec), so `in_node ... &` leaves $! the
# process's own pid.
in_node() {
  local n=$1
  shift
  local vars=()
  mapfile -t vars < <(node_env "$n")
  exec env -i PATH="$PATH" HOME="$TMP" "${vars[@]}" "$@"
}

for n in "${NODES[@]}"; do
  node_env "$n" >/dev/null || die "coffer.env: the settings of $n do not map to this machine"
done
for n in "${NODES[@]}"; do
  in_node "$n" "$COFFER_BIN" server >"$TMP/$n.log" 2>&1 &
  PIDS+=($!)
  disown $! # cleanup stops it; no job report then
done
say "started ${NODES[*]} ($(for n in "${NODES[@]}"; do printf '%s ' "$n=https://127.0.0.1:${PORT[$n:8201]}"; done))"

# The compose file's health check, as Docker runs it in each container.
HEALTH=(/usr/local/bin/coffer operator seal-status)
for n in "${NODES[@]}"; do
  ok=
  for _ in $(seq 1 300); do
    if OUT=$( (in_node "$n" "$COFFER_BIN" "${HEALTH[@]:1}") 2>&1); then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || die "the health check (${HEALTH[*]}) never passed on $n" "$OUT"
done
say "health check (${HEALTH[*]}) passes on every node"

# The Kubernetes probes: ready once the region has a leader and is unsealed.
for n in "${NODES[@]}"; do
  url=https://127.0.0.1:${PORT[$n:8201]}
  ok=
  for _ in $(seq 1 300); do
    if curl -fsS --cacert "$M/tls/coffer-ca.pem" "$url/v1/health/ready" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || die "$n: /v1/health/ready never answered 200" "$(curl -sS --cacert "$M/tls/coffer-ca.pem" "$url/v1/health/ready" 2>&1)"
  OUT=$(curl -fsS --cacert "$M/tls/coffer-ca.pem" "$url/v1/health/live" 2>&1) || die "$n: /v1/health/live" "$OUT"
done
say "/v1/health/ready and /v1/health/live answer 200 on every node"

# The root key pair, printed once by the first leader.
for _ in $(seq 1 100); do
  grep -hq 'AWS_SECRET_ACCESS_KEY=' "$TMP"/*.log && break
  sleep 0.1
done
ACCESS_KEY=$(sed -n 's/^ *AWS_ACCESS_KEY_ID=//p' "$TMP"/*.log | head -n 1)
SECRET_KEY=$(sed -n 's/^ *AWS_SECRET_ACCESS_KEY=//p' "$TMP"/*.log | head -n 1)
[ -n "$ACCESS_KEY" ] && [ -n "$SECRET_KEY" ] || die "no node printed the root credentials"

# The signed round trip: the CLI sees only these settings.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_SECRETS_MANAGER
export AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_DEFAULT_REGION=$REGION AWS_REGION=$REGION AWS_CA_BUNDLE=$M/tls/coffer-ca.pem
export AWS_CONFIG_FILE=$TMP/aws-config AWS_SHARED_CREDENTIALS_FILE=$TMP/aws-credentials
export AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true AWS_RETRY_MODE=standard AWS_MAX_ATTEMPTS=3
first=https://127.0.0.1:${PORT[${NODES[0]}:8201]}
last=https://127.0.0.1:${PORT[${NODES[2]}:8201]}
OUT=$("$AWS" secretsmanager create-secret --name deploy/check --secret-string from-compose-env \
  --endpoint-url "$first" --output json 2>&1) || die "create-secret through ${NODES[0]}" "$OUT"
jq -e '.Name == "deploy/check"' >/dev/null <<<"$OUT" || die "create-secret answered" "$OUT"
OUT=$("$AWS" secretsmanager get-secret-value --secret-id deploy/check --endpoint-url "$last" --output json 2>&1) ||
  die "get-secret-value through ${NODES[2]}" "$OUT"
jq -e '.SecretString == "from-compose-env"' >/dev/null <<<"$OUT" || die "get-secret-value read back" "$OUT"
say "signed round trip: create-secret through ${NODES[0]}, get-secret-value through ${NODES[2]} (HTTPS, AWS CLI)"

# Every series the dashboard queries is one a node serves. The names are
# the identifiers of its PromQL expressions that start like Coffer's
# series; a histogram's _bucket/_sum/_count are looked up as they are.
METRICS=$(curl -fsS --cacert "$M/tls/coffer-ca.pem" "$first/v1/metrics") || die "GET /v1/metrics"
names=$(jq -r '.. | objects | .expr? // empty' "$DASHBOARD" | grep -oE '\b(coffer|go|process)_[a-zA-Z0-9_:]+' | sort -u)
[ -n "$names" ] || die "no series found in $DASHBOARD"
missing=()
for m in $names; do
  grep -qE "^$m(\{| )" <<<"$METRICS" || missing+=("$m")
done
[ ${#missing[@]} -eq 0 ] || die "the dashboard queries series no node serves: ${missing[*]}"
say "/v1/metrics serves all $(wc -w <<<"$names") series the dashboard queries"

# Graceful stop, as `docker compose down` does it: SIGTERM, then wait.
for i in "${!PIDS[@]}"; do
  kill -TERM "${PIDS[$i]}"
  for _ in $(seq 1 300); do
    kill -0 "${PIDS[$i]}" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "${PIDS[$i]}" 2>/dev/null && die "${NODES[$i]} did not stop within 30s of SIGTERM"
  grep -q 'coffer stopped' "$TMP/${NODES[$i]}.log" || die "${NODES[$i]} did not stop gracefully"
done
say "PASS: ${#NODES[@]} nodes from coffer.env, TLS on every port, round trip through the AWS CLI, stopped with SIGTERM"
