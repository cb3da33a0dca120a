#!/usr/bin/env bash
# README command 2: run every test. One build profile everywhere: release.
#   1. scripts/setup.sh (installs what is missing)
#   2. cargo fmt --check, clippy -D warnings, cargo test --release --workspace
#   3. our sqllogic files (sqllogic/slt) against the PostgreSQL 15 reference server:
#      checks the expected results themselves
#   4. `meridian sqllogic`: our sqllogic files and the CI subset of SQLite's corpus
#      against a Meridian node the binary starts on a free port
# Every step runs even if an earlier one failed (except when the build is missing);
# the last line is `N passed, N failed` over the steps. Exit status 0 only if all passed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/meridian/target}"
BIN="$CARGO_TARGET_DIR/release/meridian"
SQLLOGIC="$CARGO_TARGET_DIR/release/sqllogic"
CORPUS="${MERIDIAN_SLT_CORPUS:-../shared/sqllogictest/sqlite}"

# The part of SQLite's corpus CI runs (timings and PG 15 baseline: sqllogic/README.md).
# The full corpus: `$BIN sqllogic --files $CORPUS`.
CORPUS_CI=(
  "$CORPUS/select1.test"
  "$CORPUS/select2.test"
  "$CORPUS/evidence/in2.test"
  "$CORPUS/evidence/slt_lang_aggfunc.test"
  "$CORPUS/evidence/slt_lang_createview.test"
  "$CORPUS/evidence/slt_lang_dropindex.test"
  "$CORPUS/evidence/slt_lang_droptable.test"
  "$CORPUS/evidence/slt_lang_update.test"
)

passed=0
failed=0
results=()

step() {
  local name="$1"
  shift
  echo "==> $name: $*"
  local start=$SECONDS
  if "$@"; then
    results+=("PASS $name ($((SECONDS - start))s)")
    passed=$((passed + 1))
  else
    results+=("FAIL $name ($((SECONDS - start))s)")
    failed=$((failed + 1))
  fi
}

step fmt cargo fmt --all -- --check
step clippy cargo clippy --release --workspace --all-targets -- -D warnings
step test cargo test --release --workspace
step build cargo build --release --workspace --bins

slt_vs_postgres() {
  local url
  url=$(scripts/pg-reference.sh) || return 1
  "$SQLLOGIC" --url "$url" --files sqllogic/slt
}

corpus_files=()
for f in "${CORPUS_CI[@]}"; do
  if [[ -f "$f" ]]; then corpus_files+=("$f"); else echo "warning: corpus file $f not found" >&2; fi
done

if [[ -x "$SQLLOGIC" ]]; then
  step slt-vs-postgres slt_vs_postgres
else
  results+=("FAIL slt-vs-postgres (no $SQLLOGIC)")
  failed=$((failed + 1))
fi
if [[ -x "$BIN" ]]; then
  step sqllogic "$BIN" sqllogic --files sqllogic/slt "${corpus_files[@]}"
else
  results+=("FAIL sqllogic (no $BIN)")
  failed=$((failed + 1))
fi

echo
printf '%s\n' "${results[@]}"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
