#!/usr/bin/env bash
# Fault-free WAN-delay counts of the commit protocol's fast path, read from
# `meridian sim`'s summary line: 3 delays for 3 and 5 DCs with the conservative rule,
# 2 for 3 DCs with owner-counting; the 2PC baseline 6 with remote leaders, 4 with
# leaders local (docs/protocol.md §8).
#   scripts/sim-fast-path.sh [path/to/meridian]
set -euo pipefail
BIN="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/meridian/target}/release/meridian}"
status=0
expect() {
  local want="$1"
  shift
  local summary got
  summary=$("$BIN" sim --seeds 5 --wan-delay-ms 50 "$@" | tail -n 1)
  got=$(sed -E 's/.*"commit_wan_delays_p50":([0-9]+).*/\1/' <<<"$summary")
  echo "sim $*: commit_wan_delays_p50 = $got (expected $want)"
  [[ "$got" == "$want" ]] || status=1
}
expect 3 --dcs 3
expect 3 --dcs 5
expect 2 --dcs 3 --learn owner
expect 6 --dcs 3 --protocol 2pc
expect 4 --dcs 3 --protocol 2pc --placement local
exit $status
