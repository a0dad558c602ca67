#!/usr/bin/env bash
# Authorization-code exchange workload, for ANY OpenID Connect issuer on loopback; the
# companion of ../shared/peers/load/bench.sh (same wrk, same pinning, same CPU/RSS sampling,
# same JSON lines, so the shared summarize.py reads the results as workload "code").
#   bench/code_exchange.sh ISSUER_URL
# Each request is POST token_endpoint grant_type=authorization_code with a fresh code and its
# PKCE verifier (and client_id for a public client): the code is redeemed, tokens minted.
# Before every run a pool of CODE_POOL codes is seeded (CODE_SEED_CMD, by default
# bench/seed_codes.mjs: one login per seeding session, then one authorization request per
# code), and the run lasts until the pool is used up (bench/code.lua times it).
#
# Environment (defaults in brackets):
#   CODE_POOL [2000]  codes per run. The peer (oidc-provider's in-memory adapter, a ~1000-entry
#                     LRU) must be given a small pool (compare.sh uses 300) or it evicts codes.
#   RUNS [3]  WARMUP [1 = one unmeasured run first, 0 = none]  CONNECTIONS [32]  LOAD_CPU [0]
#   REQ_TIMEOUT [5]  CODE_MAX_SECONDS [20] (wrk -d; the run normally ends earlier, pool empty)
#   CODE_CLIENT_ID [bench-mobile]  CODE_CLIENT_SECRET [empty = public client]
#   CODE_REDIRECT_URI [http://127.0.0.1:9/cb]  CODE_EXTRA  extra token-request params
#   CODE_SEED_CMD  command printing >= $BENCH_SEED_COUNT lines "CODE VERIFIER"
#                  [node bench/seed_codes.mjs ISSUER --count $BENCH_SEED_COUNT ... with
#                  SEED_SCOPE, SEED_RESOURCE, SEED_PROMPT, SEED_USERNAME, SEED_PASSWORD]
#   SERVER_PID  sample its RSS and CPU    OUT_DIR [bench/results/code-<time>]
#   RESULTS     JSON lines file to append to [$OUT_DIR/results.jsonl]
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ISSUER="${1:-${ISSUER:-}}"
[ -n "$ISSUER" ] || { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
ISSUER="${ISSUER%/}"

CODE_POOL="${CODE_POOL:-2000}"
RUNS="${RUNS:-3}"
WARMUP="${WARMUP:-1}"
CONNECTIONS="${CONNECTIONS:-32}"
LOAD_CPU="${LOAD_CPU:-0}"
REQ_TIMEOUT="${REQ_TIMEOUT:-5}"
CODE_MAX_SECONDS="${CODE_MAX_SECONDS:-20}"
CODE_CLIENT_ID="${CODE_CLIENT_ID:-bench-mobile}"
CODE_CLIENT_SECRET="${CODE_CLIENT_SECRET:-}"
CODE_REDIRECT_URI="${CODE_REDIRECT_URI:-http://127.0.0.1:9/cb}"
CODE_EXTRA="${CODE_EXTRA:-}"
SERVER_PID="${SERVER_PID:-}"
OUT_DIR="${OUT_DIR:-$HERE/results/code-$(date +%Y%m%d-%H%M%S)}"
RESULTS="${RESULTS:-$OUT_DIR/results.jsonl}"
if [ -z "${CODE_SEED_CMD:-}" ]; then
  CODE_SEED_CMD="node '$HERE/seed_codes.mjs' '$ISSUER' --count \$BENCH_SEED_COUNT --client-id '$CODE_CLIENT_ID' --redirect-uri '$CODE_REDIRECT_URI'"
fi

log() { printf '[code] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
for t in wrk curl python3 taskset timeout node; do command -v "$t" >/dev/null || die "$t not found"; done
case "$(python3 -c 'import sys; from urllib.parse import urlsplit; print(urlsplit(sys.argv[1]).hostname or "")' "$ISSUER")" in
  127.*|localhost|::1) ;;
  *) die "refusing non-loopback issuer $ISSUER" ;;
esac
mkdir -p "$OUT_DIR"
touch "$RESULTS"

TOKEN_ENDPOINT="$(curl -sS -f --max-time 5 "$ISSUER/.well-known/openid-configuration" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token_endpoint"])')"
case "$(python3 -c 'import sys; from urllib.parse import urlsplit; print(urlsplit(sys.argv[1]).hostname or "")' "$TOKEN_ENDPOINT")" in
  127.*|localhost|::1) ;;
  *) die "refusing non-loopback token endpoint $TOKEN_ENDPOINT" ;;
esac
urlenc() { python3 -c 'import sys; from urllib.parse import quote; print(quote(sys.argv[1], safe=""))' "$1"; }
PREFIX="grant_type=authorization_code&redirect_uri=$(urlenc "$CODE_REDIRECT_URI")"
AUTH=""
if [ -n "$CODE_CLIENT_SECRET" ]; then
  AUTH="$(python3 -c 'import base64,sys; from urllib.parse import quote_plus as q; print("Basic "+base64.b64encode((q(sys.argv[1])+":"+q(sys.argv[2])).encode()).decode())' "$CODE_CLIENT_ID" "$CODE_CLIENT_SECRET")"
else
  PREFIX="$PREFIX&client_id=$(urlenc "$CODE_CLIENT_ID")"
fi
[ -n "$CODE_EXTRA" ] && PREFIX="$PREFIX&$CODE_EXTRA"
log "issuer $ISSUER, token endpoint $TOKEN_ENDPOINT, pool $CODE_POOL codes/run, $CONNECTIONS connections"

CLK_TCK="$(getconf CLK_TCK)"
server_ticks() {
  [ -n "$SERVER_PID" ] && [ -r "/proc/$SERVER_PID/stat" ] \
    && awk '{sub(/^.*\) /,""); print $12+$13}' "/proc/$SERVER_PID/stat" || echo 0
}
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }

CODES="$OUT_DIR/.codes"
seed() {
  local t0 t1
  t0=$(date +%s.%N)
  BENCH_SEED_COUNT=$((CODE_POOL + 1)) timeout 300 bash -c "$CODE_SEED_CMD" > "$CODES" \
    || { log "CODE_SEED_CMD failed"; return 1; }
  t1=$(date +%s.%N)
  local n; n="$(grep -c . "$CODES" || true)"
  [ "$n" -ge "$((CODE_POOL + 1))" ] || { log "got $n codes, need $((CODE_POOL + 1))"; return 1; }
  log "seeded $n codes in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"
}

# run TAG SECONDS: one bounded wrk run over a freshly seeded pool; appends a JSON line
run() {
  local tag="$1" secs="$2"
  seed || return 1
  local out="$OUT_DIR/code.$tag.txt" tfile="$OUT_DIR/.time.$$" rssfile="$OUT_DIR/.rss.$$"
  : > "$rssfile"
  local sampler=""
  if [ -n "$SERVER_PID" ]; then
    ( for _ in $(seq 1 $(( (secs + 5) * 5 ))); do
        awk '/VmRSS/{print $2}' "/proc/$SERVER_PID/status" 2>/dev/null >> "$rssfile" || break
        sleep 0.2
      done ) &
    sampler=$!
  fi
  local t0 t1 s0 s1 rc=0
  t0="$(server_ticks)"; s0="$(busy_ticks)"
  local TIMEFORMAT='%U %S %R'
  { time env BENCH_CODES="$CODES" BENCH_PREFIX="$PREFIX" BENCH_AUTH="$AUTH" \
      timeout $((secs + 30)) taskset -c "$LOAD_CPU" \
      wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --timeout "${REQ_TIMEOUT}s" \
          -s "$HERE/code.lua" "$TOKEN_ENDPOINT" > "$out" 2>&1 ; } 2> "$tfile" || rc=$?
  t1="$(server_ticks)"; s1="$(busy_ticks)"
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; fi
  [ "$rc" = 0 ] || { log "wrk exited $rc for code/$tag:"; tail -5 "$out" >&2; return 1; }
  python3 - "$out" "$tfile" "$rssfile" "$t0" "$t1" "$CLK_TCK" "$tag" "$s0" "$s1" "$CODE_POOL" >> "$RESULTS" <<'PY'
import json, sys
out, tfile, rssfile, t0, t1, hz, tag, s0, s1, pool = sys.argv[1:]
line = next(l for l in open(out) if l.startswith("BENCHJSON "))
r = json.loads(line[len("BENCHJSON "):])
u, s, real = (float(x) for x in open(tfile).read().split()[-3:])
r["tag"] = tag
r["pool"] = int(pool)
# wrk's own CPU over the active part (after the pool is empty wrk idles)
r["wrk_cpu_pct"] = round(100 * (u + s) / r["duration_s"], 1)
rss = [int(x) for x in open(rssfile).read().split() if x.strip()]
if rss:
    r["server_rss_max_mib"] = round(max(rss) / 1024, 1)
    r["server_rss_end_mib"] = round(rss[-1] / 1024, 1)
srv = (int(t1) - int(t0)) / float(hz)
if int(t1) > 0:
    # the server is idle once the pool is used up: its CPU time over the active time
    r["server_cpu_pct"] = round(100 * srv / r["duration_s"], 1)
    r["server_cpu_s"] = round(srv, 3)
    other = (int(s1) - int(s0)) / float(hz) - srv - (u + s)
    r["other_cpu_pct"] = round(max(0.0, 100 * other / real), 1)
r["loadavg1"] = float(open("/proc/loadavg").read().split()[0])
print(json.dumps(r))
PY
  rm -f "$tfile" "$rssfile"
  tail -1 "$RESULTS" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read())
print("[code] %-7s %5d codes in %6.2f s: %8.1f req/s  p50 %7.2f ms  p99 %7.2f ms  non2xx %d  bad_body %d  id_token %d  refresh %d  srv_cpu %s%%  wrk_cpu %s%%  other_cpu %s%%  rss_max %s MiB" % (r["tag"], r["requests"], r["duration_s"], r["rps"], r["p50_ms"], r["p99_ms"], r["non2xx"], r["bad_body"], r["with_id_token"], r["with_refresh_token"], r.get("server_cpu_pct","-"), r.get("wrk_cpu_pct","-"), r.get("other_cpu_pct","-"), r.get("server_rss_max_mib","-")), file=sys.stderr)'
}

# the next run's wrk -d: twice the time the last one needed, at most CODE_MAX_SECONDS
next_secs() {
  tail -1 "$RESULTS" | python3 -c 'import json,math,sys; r=json.loads(sys.stdin.read()); m=int(sys.argv[1])
print(max(2, min(m, math.ceil(2 * r["duration_s"]) + 1)) if r.get("workload") == "code" else m)' "$CODE_MAX_SECONDS" 2>/dev/null \
    || echo "$CODE_MAX_SECONDS"
}

secs="$CODE_MAX_SECONDS"
if [ "$WARMUP" -gt 0 ]; then
  run warmup "$secs" || log "warmup failed"
  secs="$(next_secs)"
fi
for i in $(seq 1 "$RUNS"); do
  run "run$i" "$secs" || log "run $i failed"
  secs="$(next_secs)"
done
rm -f "$CODES"
