#!/usr/bin/env bash
# Soak a local 3-DC cluster: UPDATE load from every DC, kill -9 and restart of one DC
# every few minutes, a report every 15 s (commits, latency, RSS, disk, protocol records,
# store keys per DC); exits 1 if a node stops committing while a majority is up.
#   scripts/soak.sh [--minutes 30] [--wan-delay-ms 10] [--clients 4] [--kill-every-s 180]
#                   [--gc-ttl-s 60]
#                   [--down-s 10] [--evict-after-s 600] [--max-history-records 100000]
#                   [--warmup-minutes 5] [--keep DIR]
# With --evict-after-s below --down-s each killed DC is evicted and rebuilt (--rejoin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh
need_pgbench_and_bin
command -v python3 >/dev/null || { echo "python3 is needed (scripts/setup.sh installs it)" >&2; exit 1; }
exec python3 scripts/soak.py --bin "$BIN" "$@"
