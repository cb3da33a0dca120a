#!/usr/bin/env bash
# Sustained write load on a local 3-DC cluster (issue 12's wedge report): starts
# `meridian demo`, loads 1000 rows, runs pgbench with single-row UPDATEs at every DC at
# once, then prints each node's committed transactions per 10 s (from its log). A cluster
# that holds commits in every interval; exits 1 if any node had an interval with no
# commit while the load ran (the first is skipped: the load starts inside it).
#   scripts/load-demo.sh [--wan-delay-ms 10] [--clients 4] [--seconds 60]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh
DELAY=10
CLIENTS=4
DURATION=60
while [[ $# -gt 0 ]]; do
  case "$1" in
    --wan-delay-ms) DELAY="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --seconds) DURATION="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
need_pgbench_and_bin
start_demo 3 "$DELAY"
psql -X -q "$(url 0)" -c "CREATE TABLE t (k int PRIMARY KEY, v int NOT NULL)" \
  -c "INSERT INTO t SELECT g, 0 FROM generate_series(1, 1000) g"
cat >"$WORK/update.sql" <<'SQL'
\set k random(1, 1000)
UPDATE t SET v = v + 1 WHERE k = :k;
SQL
pids=()
for dc in 0 1 2; do
  # A wedged cluster never answers: pgbench is stopped shortly after its run time.
  (timeout $((DURATION + 5)) pgbench -n -c "$CLIENTS" -j 1 -T "$DURATION" --max-tries=100 \
    -f "$WORK/update.sql" "$(url "$dc")" >"$WORK/pgbench$dc.out" 2>&1 || true) &
  pids+=($!)
done
wait "${pids[@]}"
[[ -z "${KEEP:-}" ]] || cp -r "$WORK" "$KEEP"
stalled=0
for dc in 0 1 2; do
  counts=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/demo/dc$dc.log" |
    sed -n 's/.*commit protocol, last 10 s.* committed=\([0-9]*\).*/\1/p' | tr '\n' ' ')
  echo "dc$dc (delay ${DELAY} ms, $CLIENTS clients): commits per 10 s: ${counts:-none}"
  if [[ -z "$counts" ]] || echo "$counts" | awk '{for (i = 2; i <= NF; i++) if ($i == 0) bad = 1} END {exit !bad}'; then
    stalled=1
  fi
done
[[ $stalled == 0 ]] || { echo "a DC stopped committing under load"; exit 1; }
