#!/usr/bin/env bash
# Compares two meridian binaries on single-node pgbench throughput (scripts/bench-single.sh),
# alternating them round by round so drift of the machine hits both alike; prints every
# round and, per workload and binary, the mean TPS and the change of NEW against OLD.
#   scripts/bench-compare.sh OLD_BIN NEW_BIN [--rounds 4] [--seconds 20] [--clients 1]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $# -ge 2 ]] || { echo "usage: $0 OLD_BIN NEW_BIN [--rounds N] [--seconds S] [--clients C]" >&2; exit 2; }
OLD="$1"; NEW="$2"; shift 2
ROUNDS=4
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --seconds|--clients) ARGS+=("$1" "$2"); shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for side in old new; do
    bin="$OLD"; [[ $side == new ]] && bin="$NEW"
    scripts/bench-single.sh --bin "$bin" "${ARGS[@]}" | sed "s/^[^ ]*/$side/" | tee -a "$OUT"
  done
done
awk '{ split($4, t, "="); sum[$1 " " $2] += t[2]; n[$1 " " $2]++ }
  END {
    for (w in sum) { split(w, p, " "); mean[w] = sum[w] / n[w] }
    for (w in mean) {
      split(w, p, " ")
      if (p[1] == "new") {
        old = mean["old " p[2]]
        printf "%-12s old %9.1f tps  new %9.1f tps  change %+5.1f%%\n", p[2], old, mean[w], (mean[w] / old - 1) * 100
      }
    }
  }' "$OUT"
