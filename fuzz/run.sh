#!/usr/bin/env bash
# Fuzzing Latchkey's attacker-facing parsers with cargo fuzz (libFuzzer).
#
#   fuzz/run.sh smoke            build every target and run each for a bounded number of
#                                inputs from the seed corpus (what .ci/run does)
#   fuzz/run.sh seeds [TARGET...]   fold fuzz/work/<target> into the committed corpus/<target>,
#                                minimized (libFuzzer -merge=1)
#   fuzz/run.sh campaign [SECS] [TARGET...]
#                                run each target (default: all) for SECS seconds (default 600)
#                                on a growing work corpus (fuzz/work/, not committed); prints
#                                libFuzzer's pulse line at every doubling of executions, so a
#                                plateau (same coverage at half the executions) is visible
#
# Needs a nightly toolchain (installed here by rustup) and cargo-fuzz
# (`cargo install cargo-fuzz --locked`). Crashes land in fuzz/artifacts/<target>/; each one
# becomes a regression test before it is fixed.
set -euo pipefail
cd "$(dirname "$0")"
TARGETS=(params_and_client_auth redirect_uri pkce_and_scope jwt_verify jwks_document dpop_proof
  registration_metadata attestation)
mode=${1:-smoke}

case "$mode" in
  smoke)
    # No sanitizer (here and in campaigns): the targets reach only safe Rust, and the C
    # libraries (aws-lc, SQLite, libpq) are not instrumented by cargo fuzz anyway; coverage
    # guidance, panics, timeouts and the RSS limit are what find bugs here. One build serves both.
    cargo +nightly fuzz build -O -s none
    for t in "${TARGETS[@]}"; do
      echo "== fuzz smoke: $t"
      scratch=$(mktemp -d)   # new inputs go here, never into the committed seeds
      cargo +nightly fuzz run -O -s none "$t" "$scratch" "corpus/$t" -- -runs=5000 -timeout=5 \
        -max_len=4096 2>&1 | grep --line-buffered -E '^#[0-9]+.*DONE|ERROR|panicked' || true
      test "${PIPESTATUS[0]}" -eq 0
      rm -rf "$scratch"
    done
    ;;
  campaign)
    secs=${2:-600}
    if [ $# -gt 2 ]; then TARGETS=("${@:3}"); fi
    for t in "${TARGETS[@]}"; do
      mkdir -p "work/$t"
      echo "== fuzz campaign: $t for ${secs}s"
      cargo +nightly fuzz run -O -s none "$t" "work/$t" "corpus/$t" -- -max_total_time="$secs" \
        -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
        | grep --line-buffered -E '^#[0-9]+.*(pulse|DONE)|ERROR|panicked|stat::' || true
      test "${PIPESTATUS[0]}" -eq 0
    done
    ;;
  seeds)
    # Fold a campaign's work corpus into the committed seeds, minimized (libFuzzer -merge=1:
    # the smallest set of inputs that keeps every feature of both), so the next campaign and
    # the CI smoke start from the coverage reached here instead of from scratch.
    if [ $# -gt 1 ]; then TARGETS=("${@:2}"); fi
    cargo +nightly fuzz build -O -s none
    for t in "${TARGETS[@]}"; do
      [ -d "work/$t" ] || { echo "== $t: no work corpus, skipped"; continue; }
      merged=$(mktemp -d)
      cargo +nightly fuzz run -O -s none "$t" "$merged" "corpus/$t" "work/$t" -- -merge=1 \
        -timeout=5 2>&1 | grep --line-buffered -E 'MERGE-OUTER: [0-9]+ new files' || true
      test "${PIPESTATUS[0]}" -eq 0
      # Hand-written seeds (named, e.g. regression inputs) stay whatever the merge chose.
      git ls-files "corpus/$t" | grep -Ev '/[0-9a-f]{40}$' | xargs -r cp -t "$merged"
      rm -rf "corpus/$t" && mv "$merged" "corpus/$t" && chmod 755 "corpus/$t"
      echo "== $t: $(ls "corpus/$t" | wc -l) seeds, $(du -sh "corpus/$t" | cut -f1)"
    done
    ;;
  *) echo "usage: $0 smoke|campaign [SECS] [TARGET...]|seeds [TARGET...]" >&2; exit 2 ;;
esac
