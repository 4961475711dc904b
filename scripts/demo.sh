#!/usr/bin/env bash
# WARP's main job, end to end on this machine: generate a realistic dataset, compile
# it into a routing snapshot, inspect it, and route a batch of sample calls through
# the same engine the SIP path uses, printing every decision.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-small}
OUT=${OUT:-$PWD/data/$SCALE}
CALLS=${CALLS:-25}

cargo build --release -q -p warp-cli
warp="${CARGO_TARGET_DIR:-target}/release/warp"

$warp gen-data --scale "$SCALE" --seed 7 --out "$OUT" --calls "$CALLS"
$warp compile --from "$OUT" --out "$OUT/routing.snap"
$warp inspect "$OUT/routing.snap"
echo
# A Wednesday at 10:00 in New York, so business-hours partitions are open.
$warp route --snapshot "$OUT/routing.snap" --batch "$OUT/sample_calls.csv" --at 2026-03-04T15:00:00Z
