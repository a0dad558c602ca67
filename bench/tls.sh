#!/usr/bin/env bash
# Latchkey over plain http and over its own TLS, side by side (issue 25): client_credentials
# (client_secret_basic) and the JWKS, with kept-alive connections (the handshake paid once per
# connection) and with a new connection per request (`Connection: close`: a full TLS handshake
# every time, what a phone without session resumption pays).
#
#   cargo build --release --bin latchkey && bench/tls.sh
#
# The server is pinned to CPU $SERVER_CPU, wrk to CPU $LOAD_CPU; SQLite; certificates from
# deploy/mtls/make-certs.sh (ECDSA P-256). Prints a markdown table (req/s, requests per
# server CPU-second, p50, p99).
# Environment: SERVER_CPU [1] LOAD_CPU [0] DURATION [10] CONNECTIONS [32] PORT [18443]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
LK="${LATCHKEY_BIN:-$REPO/target/release/latchkey}"
SERVER_CPU="${SERVER_CPU:-1}"; LOAD_CPU="${LOAD_CPU:-0}"
DURATION="${DURATION:-10}"; CONNECTIONS="${CONNECTIONS:-32}"; PORT="${PORT:-18443}"
LUA="$REPO/../shared/peers/load/bench.lua"
for t in wrk taskset openssl curl python3; do command -v "$t" >/dev/null || { echo "$t not found" >&2; exit 1; }; done
[ -x "$LK" ] || { echo "build first: cargo build --release --bin latchkey" >&2; exit 1; }
W="$(mktemp -d)"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
OUT="$W/certs" sh "$REPO/deploy/mtls/make-certs.sh" >/dev/null 2>&1

run_server() { # scheme
  local scheme=$1
  export LATCHKEY_DATABASE_URL="sqlite://$W/$scheme.db" LATCHKEY_KEYS_DIR="$W/keys-$scheme"
  export LATCHKEY_LISTEN="127.0.0.1:$PORT" LATCHKEY_LOG_FORMAT=json RUST_LOG=warn
  if [ "$scheme" = https ]; then
    export LATCHKEY_ISSUER="https://localhost:$PORT" LATCHKEY_TLS_CERT="$W/certs/server.pem" LATCHKEY_TLS_KEY="$W/certs/server.key"
  else
    export LATCHKEY_ISSUER="http://127.0.0.1:$PORT"; unset LATCHKEY_TLS_CERT LATCHKEY_TLS_KEY
  fi
  CLIENT_JSON=$("$LK" client add --name bench --type confidential --grant client_credentials \
    --scope api:read --audience https://api.example.test --json)
  taskset -c "$SERVER_CPU" "$LK" serve 2>"$W/$scheme.log" &
  SERVER=$!
  for _ in $(seq 100); do
    curl -sk -o /dev/null "$LATCHKEY_ISSUER/jwks" && break; sleep 0.1
  done
}

measure() { # label url method body auth extra-header...
  local label=$1 url=$2 method=$3 body=$4 auth=$5; shift 5
  local out cpu0 cpu1
  cpu0=$(awk '{print $14+$15}' /proc/$SERVER/stat)
  out=$(BENCH_WORKLOAD=$label BENCH_METHOD=$method BENCH_BODY=$body BENCH_AUTH=$auth \
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$LUA" "$@" "$url" 2>&1)
  cpu1=$(awk '{print $14+$15}' /proc/$SERVER/stat)
  local rps p50 p99 errors total per_cpu
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  per_cpu=$(python3 -c "import os; t=($cpu1-$cpu0)/os.sysconf('SC_CLK_TCK'); print(round($total/t) if t else 0)")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$rps" "$per_cpu" "$p50" "$p99" "${errors:-none}"
}

echo "| workload | req/s | req per server CPU-s | p50 | p99 | errors |"
echo "|---|---:|---:|---:|---:|---|"
for scheme in http https; do
  run_server "$scheme"
  id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$CLIENT_JSON")
  secret=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$CLIENT_JSON")
  basic="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
  base="$LATCHKEY_ISSUER"
  measure "$scheme jwks, kept-alive" "$base/jwks" GET "" ""
  measure "$scheme jwks, new connection per request" "$base/jwks" GET "" "" -H "Connection: close"
  measure "$scheme client_credentials, kept-alive" "$base/token" POST "grant_type=client_credentials" "$basic"
  measure "$scheme client_credentials, new connection per request" "$base/token" POST "grant_type=client_credentials" "$basic" -H "Connection: close"
  echo "| $scheme server RSS after load | $(( $(awk '/VmRSS/ {print $2}' /proc/$SERVER/status) / 1024 )) MiB | | | | |"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
done
