#!/usr/bin/env bash
# Single-node throughput with pgbench: TPC-B-like and point-select (prepared), one line
# each: "<binary> <workload> clients=<n> tps=<tps>". Starts `meridian start` on a fresh
# data directory, loads pgbench's tables (scale 1), runs each workload for --seconds.
#   scripts/bench-single.sh [--bin PATH] [--seconds 20] [--clients 1] [--scale 1]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh
SECONDS_PER_RUN=20
CLIENTS=1
SCALE=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) BIN="$2"; shift 2 ;;
    --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --scale) SCALE="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
need_pgbench_and_bin

WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
"$BIN" start --data-dir "$WORK/data" --sql-addr "127.0.0.1:$PORT" >"$WORK/node.out" 2>&1 &
NODE=$!
trap 'kill -TERM $NODE 2>/dev/null; wait $NODE 2>/dev/null; rm -rf "$WORK"' EXIT
URL="postgres://bench@127.0.0.1:$PORT/postgres"
for _ in $(seq 1 300); do
  psql -X -q "$URL" -c "SELECT 1" >/dev/null 2>&1 && break
  sleep 0.1
done
pgbench -i -q -s "$SCALE" "$URL" >"$WORK/init.out" 2>&1 || { cat "$WORK/init.out" >&2; exit 1; }

run() {
  local name="$1"; shift
  pgbench -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$SECONDS_PER_RUN" "$@" "$URL" \
    >"$WORK/run.out" 2>&1 || { cat "$WORK/run.out" >&2; return 1; }
  local tps
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/run.out")
  echo "$(basename "$BIN") $name clients=$CLIENTS tps=$tps"
}
run tpcb-like
run select-only -S
