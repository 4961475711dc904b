#!/usr/bin/env bash
# Reproduces the issue-2 figures in docs/BENCHMARKS.md: the routing engine at
# --scale large against the legacy one-SQL-query-per-call decision on the same data,
# in one run. Needs PostgreSQL 15 (scripts/install-deps.sh); takes ~5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${WORK:-$(mktemp -d /tmp/warp-bench.XXXX)}
PORT=${PORT:-55433}
PG=/usr/lib/postgresql/15/bin

cargo build --release -q -p warp-cli
# The binary cargo just built, wherever CARGO_TARGET_DIR puts it.
warp="${CARGO_TARGET_DIR:-target}/release/warp"

/usr/bin/time -f "gen-data: %e s, max RSS %M KiB" \
  $warp gen-data --scale large --seed 7 --out "$WORK/large" --calls 100000
/usr/bin/time -f "compile: %e s wall, max RSS %M KiB" \
  $warp compile --from "$WORK/large" --out "$WORK/large.snap"
$warp inspect "$WORK/large.snap"

# A private PostgreSQL for the legacy peer (initdb refuses root: run it as postgres).
as_pg=(); [ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
# mktemp makes WORK private to root: the postgres user must be able to reach pg/.
mkdir -p "$WORK/pg" && [ "$(id -u)" = 0 ] && chmod 0755 "$WORK" && chown postgres "$WORK/pg"
"${as_pg[@]}" $PG/initdb -D "$WORK/pg/data" -A trust -U postgres >/dev/null
"${as_pg[@]}" $PG/pg_ctl -D "$WORK/pg/data" -l "$WORK/pg/log" -w start \
  -o "-p $PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=1GB" >/dev/null
trap '"${as_pg[@]}" $PG/pg_ctl -D "$WORK/pg/data" -m immediate stop >/dev/null' EXIT
DB=postgres://postgres@127.0.0.1:$PORT/postgres

$warp import --db "$DB" --from "$WORK/large"
$warp bench-route --snapshot "$WORK/large.snap" --calls "$WORK/large/sample_calls.csv" \
  --iterations 1000000 --legacy-db "$DB" --legacy-calls 2000

cargo bench -p warp-core --bench routing
