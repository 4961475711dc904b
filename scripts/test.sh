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
cargo test --workspace --no-fail-fast
