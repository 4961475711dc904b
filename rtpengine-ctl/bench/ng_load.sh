#!/usr/bin/env bash
# ng round trip and throughput: rtpengine directly vs through the warp-rtpengine proxy,
# in the same run, on loopback. Usage: rtpengine-ctl/bench/ng_load.sh [COUNT] [CONCURRENCY]
set -euo pipefail
COUNT=${1:-200000}
CONC=${2:-64}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target-rtp}
cargo build --release -q -p warp-rtpengine --bin warp-rtpengine
BIN=$CARGO_TARGET_DIR/release/warp-rtpengine
NODE=127.0.0.1:52222 PROXY=127.0.0.1:52230
TMP=$(mktemp -d)
rtpengine --config-file=none --foreground --log-stderr --table=-1 --interface=127.0.0.1 \
  --listen-ng=$NODE --port-min=22300 --port-max=22400 --num-threads=2 --log-level=3 \
  2>"$TMP/rtpengine.log" &
RTPE=$!
RUST_LOG=warn TOKIO_WORKER_THREADS=${PROXY_THREADS:-2} "$BIN" proxy --listen $PROXY --node n1=$NODE 2>"$TMP/proxy.log" &
PRX=$!
trap 'kill $RTPE $PRX 2>/dev/null; wait $RTPE $PRX 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 50); do "$BIN" --ng $PROXY --timeout-ms 100 ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "## latency, one request in flight ($((COUNT / 10)) pings)"
"$BIN" --ng $NODE bench --count $((COUNT / 10)) --concurrency 1
"$BIN" --ng $PROXY bench --count $((COUNT / 10)) --concurrency 1
echo "## throughput, $CONC in flight ($COUNT pings)"
"$BIN" --ng $NODE bench --count "$COUNT" --concurrency "$CONC"
"$BIN" --ng $PROXY bench --count "$COUNT" --concurrency "$CONC"
echo "## throughput, $CONC in flight ($COUNT queries of an unknown call: call-id routing path)"
"$BIN" --ng $NODE bench --count "$COUNT" --concurrency "$CONC" --command query
"$BIN" --ng $PROXY bench --count "$COUNT" --concurrency "$CONC" --command query
