#!/usr/bin/env bash
# Runs every WARP test on a fresh Debian machine: installs what the tests need
# (PostgreSQL, Redis, Kamailio, rtpengine, sipp, clang …), then format and lint
# checks, then the whole workspace's tests. Tests start their own servers on
# loopback with private ports and temp dirs, and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Every test binary runs (--no-fail-fast); the last line sums them all, since cargo's
# own last line is only the last binary's.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ {
       for (i = 2; i <= NF; i++) {
         if ($i ~ /^passed;?$/) p += $(i - 1)
         if ($i ~ /^failed;?$/) f += $(i - 1)
         if ($i ~ /^ignored;?$/) s += $(i - 1)
       }
     }
     END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
