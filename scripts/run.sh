#!/usr/bin/env bash
# README command 1: build Meridian (release) and start a node with the embedded default
# configuration. Arguments go to `meridian start` (e.g. --data-dir DIR --sql-addr ADDR).
# The node prints its connection string (default postgres://127.0.0.1:5433/postgres).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# rustup's default location, for shells that have not sourced ~/.cargo/env.
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup.sh
# Build output lives outside the clone.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/meridian/target}"
cargo build --release --workspace --all-targets
exec "$CARGO_TARGET_DIR/release/meridian" start "$@"
