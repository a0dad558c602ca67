#!/usr/bin/env bash
# Soak: a bounded load run against a release build of Latchkey on loopback (issue 9).
#
#   bench/soak.sh [SECONDS] [APPS]          default 180 s, 16 simulated apps; SQLite
#   DATABASE_URL=postgres://... bench/soak.sh   the same on PostgreSQL (an empty database)
#
# Mixes logins (HTML form + PKCE), refresh rotations, userinfo, introspection, revocations and
# ~12 % malformed requests (examples/soak.rs), while sampling the server's RSS every second.
# Passes only if: no 5xx and no transport error; no app's current refresh token was ever
# refused (no lost or double-spent rotation); afterwards every refresh family in the database
# has exactly one live token or is revoked; RSS after the warm-up grew by less than
# RSS_GROWTH_MIB (default 16) and never exceeded RSS_MAX_MIB (default 64).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-180}
APPS=${2:-16}
RSS_GROWTH_MIB=${RSS_GROWTH_MIB:-16}
RSS_MAX_MIB=${RSS_MAX_MIB:-64}
PORT=${PORT:-18480}
ISSUER="http://127.0.0.1:$PORT"

cargo build --release --quiet --bin latchkey --example soak
BIN=$PWD/target/release/latchkey
WORK=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export LATCHKEY_ISSUER=$ISSUER LATCHKEY_LISTEN=127.0.0.1:$PORT LATCHKEY_KEYS_DIR=$WORK/keys
export LATCHKEY_DATABASE_URL=${DATABASE_URL:-sqlite://$WORK/latchkey.db}

PASSWORD="soak-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
printf '%s' "$PASSWORD" | "$BIN" user add --username soak --password-stdin >/dev/null
APP_ID=$("$BIN" client add --name soak-app --type public --redirect-uri http://127.0.0.1/cb \
  --grant authorization_code --grant refresh_token --first-party \
  --scope "openid profile offline_access api:read" --audience https://api.example.test --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
CC=$("$BIN" client add --name soak-rs --type confidential --grant client_credentials \
  --scope api:read --audience https://api.example.test --json)
CC_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$CC")
CC_SECRET=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$CC")

"$BIN" serve 2>"$WORK/server.log" &
SERVER=$!
for _ in $(seq 100); do curl -fs "$ISSUER/readyz" >/dev/null && break; sleep 0.1; done

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status"; }
: >"$WORK/rss"
( while kill -0 "$SERVER" 2>/dev/null; do rss_kib >>"$WORK/rss" || true; sleep 1; done ) &
SAMPLER=$!

status=0
target/release/examples/soak --issuer "$ISSUER" --client-id "$APP_ID" --cc-id "$CC_ID" \
  --cc-secret "$CC_SECRET" --username soak --password "$PASSWORD" --apps "$APPS" \
  --duration "$SECS" >"$WORK/summary.json" || status=$?
kill "$SAMPLER" 2>/dev/null || true
kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null || true

OUT=${OUT:-bench/results/soak-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" && cp "$WORK/rss" "$OUT/rss_kib.txt" && cp "$WORK/summary.json" "$OUT/"
echo "RSS samples (KiB, one per second) in $OUT/rss_kib.txt"
python3 - "$WORK" "$LATCHKEY_DATABASE_URL" "$RSS_GROWTH_MIB" "$RSS_MAX_MIB" "$status" <<'PY'
import json, sys, sqlite3, subprocess
work, db_url, growth_mib, max_mib, status = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
summary = json.load(open(f"{work}/summary.json"))
rss = [int(x) for x in open(f"{work}/rss").read().split() if x.strip()]
# Growth: the floor (lowest sample) of the last minute against the floor of the first minute
# after a 10 s warm-up. Floors, not single samples or medians: a login's argon2 buffer (19 MiB
# while a password is hashed, at most one per CPU) comes and goes within a second and is not
# retained memory; the peak bound below covers it.
warm = min(rss[10:70]) if len(rss) > 10 else 0
end = min(rss[-60:]) if rss else 0
peak = max(rss) if rss else 0
q = """SELECT f.family_id, SUM(CASE WHEN t.rotated_at IS NULL THEN 1 ELSE 0 END)
       FROM token_families f JOIN refresh_tokens t ON t.family_id = f.family_id
       WHERE f.revoked_at IS NULL GROUP BY f.family_id"""
if db_url.startswith("sqlite://"):
    rows = sqlite3.connect(db_url[len("sqlite://"):]).execute(q).fetchall()
else:
    out = subprocess.run(["psql", db_url, "-At", "-F", " ", "-c", q], capture_output=True, text=True, check=True).stdout
    rows = [(a, int(b)) for a, b in (l.split() for l in out.splitlines() if l)]
bad = [(f, n) for f, n in rows if n != 1]
revoked = None
checks = {
    "no 5xx, no transport error, no lost grant": status == 0 and not summary["failures"],
    "every live family has exactly one live token": not bad,
    f"RSS growth after warm-up < {growth_mib} MiB": (end - warm) / 1024 < growth_mib,
    f"RSS peak < {max_mib} MiB": peak / 1024 < max_mib,
}
print(json.dumps({k: v for k, v in summary.items() if k != "by_endpoint"}, indent=1))
print(f"requests by endpoint: {json.dumps(summary['by_endpoint'])}")
print(f"families checked: {len(rows)} live; RSS floor first minute {warm/1024:.1f} MiB, last minute {end/1024:.1f} MiB, peak {peak/1024:.1f} MiB, samples {len(rss)}")
for k, ok in checks.items():
    print(("PASS " if ok else "FAIL ") + k)
if bad:
    print("families with != 1 live token:", bad[:10])
sys.exit(0 if all(checks.values()) else 1)
PY
