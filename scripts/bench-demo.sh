#!/usr/bin/env bash
# Commit and read latency of a local multi-DC cluster against the emulated WAN delay,
# with pgbench over the Postgres wire (issue 4's targets; figures in docs/protocol.md
# §11.6). Starts `meridian demo`, then prints one line per measurement:
#   1. autocommit single-row UPDATE from one DC (target p50 <= 2 x delay + 10 ms with
#      owner-counting, 3 x delay + 10 ms with --learn conservative)
#   2. the same while the last DC is killed with kill -9 a few seconds in: p50, p99, max
#   3. autocommit point SELECT (waits for the DC's complete point)
#   scripts/bench-demo.sh [--wan-delay-ms 50] [--seconds 20] [--learn owner|conservative]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh
DELAY=50
SECONDS_PER_RUN=20
LEARN=owner
while [[ $# -gt 0 ]]; do
  case "$1" in
    --wan-delay-ms) DELAY="$2"; shift 2 ;;
    --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
    --learn) LEARN="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
need_pgbench_and_bin
start_demo 3 "$DELAY" --learn "$LEARN"

psql -X -q "$(url 0)" -c "CREATE TABLE bench (k int PRIMARY KEY, v int NOT NULL)" \
  -c "INSERT INTO bench SELECT g, 0 FROM generate_series(1, 100) g"
cat >"$WORK/update.sql" <<'EOF'
\set k random(1, 100)
UPDATE bench SET v = v + 1 WHERE k = :k;
EOF
cat >"$WORK/select.sql" <<'EOF'
\set k random(1, 100)
SELECT v FROM bench WHERE k = :k;
EOF

# Runs pgbench with a per-transaction log; prints "p50 … p99 … max … n …" (ms).
run() {
  local name="$1" script="$2" dc="$3"
  rm -f "$WORK"/log.*
  (cd "$WORK" && pgbench -n -c 1 -T "$SECONDS_PER_RUN" -f "$script" -l --log-prefix=log "$(url "$dc")" \
    >"$WORK/pgbench.out" 2>&1) || { cat "$WORK/pgbench.out" >&2; return 1; }
  cat "$WORK"/log.* | awk '{print $3}' | sort -n | awk -v name="$name" -v delay="$DELAY" '
    { a[NR] = $1 }
    END { printf "%-44s p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms  n %d  (one-way delay %d ms)\n",
          name, a[int(NR * 0.5) + 1] / 1000, a[int(NR * 0.99) + 1] / 1000, a[NR] / 1000, NR, delay }'
}

run "UPDATE (virginia)" "$WORK/update.sql" 1
( sleep 5; kill -9 "$(demo_pid 2)" ) &
run "UPDATE (frankfurt), tokyo killed after 5 s" "$WORK/update.sql" 0
run "SELECT (virginia)" "$WORK/select.sql" 1
