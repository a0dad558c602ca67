#!/usr/bin/env bash
# Where the server's CPU goes, per request, for one workload of the comparison (issue 8).
#
#   bench/profile.sh callgrind WORKLOAD [SECONDS]   instructions per request (valgrind):
#                                                   deterministic, user space only
#   bench/profile.sh perf WORKLOAD [SECONDS]        cpu-clock samples (perf record -g):
#                                                   user + kernel (syscalls, wake-ups)
# WORKLOAD: cc | introspect | jwks | refresh | userinfo. A release build of Latchkey on a fresh
# SQLite database (or LATCHKEY_DATABASE_URL), the server pinned to CPU 1 and wrk (the shared
# driver's bench.lua, 32 connections) to CPU 0, as in bench/compare.sh. Collection is switched
# on only for the load (after seeding and a warm-up), so start-up is not in the profile.
# Output in bench/results/profile-<mode>-<workload>-<time>/: report.txt (top functions,
# inclusive and self) and, for callgrind, instructions per request in summary.txt.
# PERF_CALLGRAPH='--call-graph dwarf,16384' PERF_FREQ=999 gives whole Rust call stacks
# (the release build has no frame pointers) at the cost of a larger perf.data.
# (Hardware counters — `perf stat -e instructions` — are not available on this VM; cpu-clock
# sampling and callgrind's instruction counts are what there is.)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PEERS_DIR="$(cd "${PEERS_DIR:-$REPO/../shared/peers}" && pwd)"
MODE="${1:?usage: profile.sh callgrind|perf WORKLOAD [SECONDS]}"
WORKLOAD="${2:?usage: profile.sh callgrind|perf WORKLOAD [SECONDS]}"
SECS="${3:-10}"
PORT="${PORT:-18090}"
CONNECTIONS="${CONNECTIONS:-32}"
ISSUER="http://127.0.0.1:$PORT"
LK="$REPO/target/release/latchkey"
OUT="${OUT:-$REPO/bench/results/profile-$MODE-$WORKLOAD-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
[ "${SKIP_BUILD:-0}" = 1 ] || (cd "$REPO" && cargo build --release --quiet --bin latchkey)

W="$(mktemp -d /tmp/latchkey-profile.XXXXXX)"
SERVER_PID=""
trap 'if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi; rm -rf "$W"' EXIT
cd "$W"
export LATCHKEY_DATABASE_URL="${LATCHKEY_DATABASE_URL:-sqlite://$W/latchkey.db}" LATCHKEY_KEYS_DIR="$W/keys"
export LATCHKEY_LISTEN="127.0.0.1:$PORT" LATCHKEY_ISSUER="$ISSUER"
echo bench-password | "$LK" user add --username bench-user --email bench@example.test --password-stdin >/dev/null
CC="$("$LK" client add --name bench-cc --type confidential --grant client_credentials \
  --scope api:read --audience https://api.example.test --json)"
MOBILE="$("$LK" client add --name bench-mobile --type public --redirect-uri http://127.0.0.1:9/cb \
  --grant authorization_code --grant refresh_token --scope "openid offline_access profile email" \
  --audience https://api.example.test --first-party --json)"
j() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
CC_ID="$(j "$CC" client_id)"; CC_SECRET="$(j "$CC" client_secret)"; MOBILE_ID="$(j "$MOBILE" client_id)"
BASIC="Basic $(printf '%s:%s' "$CC_ID" "$CC_SECRET" | base64 -w0)"

case "$MODE" in
  callgrind)
    command -v valgrind >/dev/null || { echo "apt-get install valgrind" >&2; exit 1; }
    taskset -c 1 valgrind --tool=callgrind --instr-atstart=no \
      --callgrind-out-file="$OUT/callgrind.out" "$LK" serve 2> "$OUT/server.log" &
    ;;
  perf)
    taskset -c 1 "$LK" serve 2> "$OUT/server.log" &
    ;;
  *) echo "mode: callgrind or perf" >&2; exit 2 ;;
esac
SERVER_PID=$!
for _ in $(seq 1 600); do curl -sf --max-time 1 "$ISSUER/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "$ISSUER/readyz" >/dev/null || { cat "$OUT/server.log" >&2; exit 1; }

SEED="node $PEERS_DIR/load/seed_tokens.mjs $ISSUER --client-id $MOBILE_ID --username bench-user --password bench-password"
cc_token() {
  curl -sS -H "Authorization: $BASIC" --data 'grant_type=client_credentials&scope=api%3Aread' "$ISSUER/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
urlenc() { python3 -c 'import sys; from urllib.parse import quote; print(quote(sys.argv[1], safe=""))' "$1"; }
case "$WORKLOAD" in
  cc) URL="$ISSUER/token"; ENV=(BENCH_METHOD=POST "BENCH_AUTH=$BASIC" BENCH_BODY='grant_type=client_credentials&scope=api%3Aread' BENCH_EXPECT='"access_token"') ;;
  introspect) URL="$ISSUER/introspect"; ENV=(BENCH_METHOD=POST "BENCH_AUTH=$BASIC" "BENCH_BODY=token=$(urlenc "$(cc_token)")&token_type_hint=access_token" BENCH_EXPECT='"active"%s*:%s*true') ;;
  jwks) URL="$ISSUER/jwks"; ENV=(BENCH_METHOD=GET BENCH_EXPECT='"keys"') ;;
  userinfo) URL="$ISSUER/userinfo"; ENV=(BENCH_METHOD=GET "BENCH_AUTH=Bearer $($SEED --scope 'openid profile email' --print access)" BENCH_EXPECT='"sub"') ;;
  refresh)
    $SEED --count $((CONNECTIONS + 1)) --concurrency 8 --scope 'openid offline_access' > "$W/tokens"
    URL="$ISSUER/token"; ENV=(BENCH_METHOD=POST BENCH_WORKLOAD=refresh "BENCH_TOKENS=$W/tokens" "BENCH_REFRESH_PREFIX=grant_type=refresh_token&client_id=$MOBILE_ID&refresh_token=" BENCH_EXPECT='"refresh_token"') ;;
  *) echo "unknown workload $WORKLOAD" >&2; exit 2 ;;
esac
run_wrk() { # SECONDS
  env BENCH_WORKLOAD="$WORKLOAD" BENCH_THREADS=1 "${ENV[@]}" taskset -c 0 \
    wrk -t1 -c"$CONNECTIONS" -d"${1}s" --timeout 30s -s "$PEERS_DIR/load/bench.lua" "$URL"
}
# warm-up (not collected); refresh chains cannot be replayed, so refresh has none
if [ "$WORKLOAD" != refresh ]; then run_wrk 2 > "$OUT/warmup.txt"; fi

case "$MODE" in
  callgrind)
    callgrind_control -i on "$SERVER_PID" >/dev/null
    run_wrk "$SECS" > "$OUT/wrk.txt"
    callgrind_control -i off "$SERVER_PID" >/dev/null
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    callgrind_annotate --inclusive=yes "$OUT"/callgrind.out* 2>/dev/null | head -80 > "$OUT/report.txt" || true
    echo "---- self ----" >> "$OUT/report.txt"
    callgrind_annotate "$OUT"/callgrind.out* 2>/dev/null | head -60 >> "$OUT/report.txt" || true
    ;;
  perf)
    perf record -e cpu-clock -F "${PERF_FREQ:-2999}" ${PERF_CALLGRAPH:--g} -p "$SERVER_PID" -o "$OUT/perf.data" -- sleep "$SECS" 2> "$OUT/perf-record.log" &
    PERF=$!
    run_wrk "$SECS" > "$OUT/wrk.txt"
    wait "$PERF" || true
    perf report -i "$OUT/perf.data" --no-children --stdio --percent-limit 0.7 -g none 2>/dev/null > "$OUT/report.txt" || true
    perf report -i "$OUT/perf.data" --children --stdio --percent-limit 2 -g none 2>/dev/null > "$OUT/report-children.txt" || true
    ;;
esac
python3 - "$OUT" "$MODE" <<'PY' | tee "$OUT/summary.txt"
import glob, json, re, sys
out, mode = sys.argv[1:]
line = next(l for l in open(f"{out}/wrk.txt") if l.startswith("BENCHJSON "))
r = json.loads(line[len("BENCHJSON "):])
print(f"{r['workload']}: {r['requests']} requests, non-2xx {r['non2xx']}, bad body {r['bad_body']}")
if mode == "callgrind":
    total = None
    for f in glob.glob(f"{out}/callgrind.out*"):
        for l in open(f):
            if l.startswith("summary:") or l.startswith("totals:"):
                total = (total or 0) + int(l.split()[1])
                break
    if total and r["requests"]:
        print(f"instructions (Ir) per request: {total / r['requests']:.0f}  (total {total})")
PY
