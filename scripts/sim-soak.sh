#!/usr/bin/env bash
# A longer soak of the production stack in simulation than CI runs: many seeds CI never
# ran, with and without faults, low and high contention, 3 and 5 DCs, both learning
# rules, 1/50/100 ms WAN delays, 4 and 16 clients per DC, and the 2PC baseline. Prints each
# configuration's summary line; exits non-zero if any seed failed (the failing seeds and
# their replay commands are printed on stderr).
#   scripts/sim-soak.sh [seeds per configuration, default 2000] [first seed, default 100000]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/meridian/target}/release/meridian"
SEEDS="${1:-2000}"
FIRST="${2:-100000}"
status=0
for dcs in 3 5; do
  for learn in conservative owner; do
    for contention in low high; do
      for faults in "" --faults; do
        "$BIN" sim --dcs "$dcs" --learn "$learn" --contention "$contention" $faults \
          --seeds "$SEEDS" --first-seed "$FIRST" | tail -n 1 || status=1
      done
    done
  done
done
# The settings that broke real clusters: 1 and 100 ms, 16 clients per DC.
for wan in 1 100; do
  for learn in conservative owner; do
    "$BIN" sim --dcs 3 --learn "$learn" --contention high --faults --wan-delay-ms "$wan" \
      --clients-per-dc 16 --seeds "$SEEDS" --first-seed "$FIRST" | tail -n 1 || status=1
  done
done
for dcs in 3 5; do
  for faults in "" --faults; do
    "$BIN" sim --protocol 2pc --dcs "$dcs" --contention high $faults \
      --seeds "$SEEDS" --first-seed "$FIRST" | tail -n 1 || status=1
  done
done
exit $status
