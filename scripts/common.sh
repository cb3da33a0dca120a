# Shared by the benchmark and load scripts: the binary, the tools they need, and a
# local `meridian demo` cluster. Source it after `cd` to the repository root.

BIN="${MERIDIAN_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/meridian/target}/release/meridian}"

# Fails unless pgbench and the meridian binary are there.
need_pgbench_and_bin() {
  command -v pgbench >/dev/null || { echo "pgbench is needed (scripts/setup.sh installs postgresql)" >&2; exit 1; }
  [[ -x "$BIN" ]] || { echo "no meridian binary at $BIN: build first" >&2; exit 1; }
}

# start_demo DCS DELAY_MS [demo args...]: starts `meridian demo` in a new temporary
# directory $WORK (removed on exit, with the cluster stopped) on ports from $BASE and
# waits until it is up. `url N` is DC N's connection string, `demo_pid N` its pid.
start_demo() {
  local dcs="$1" delay="$2"
  shift 2
  WORK=$(mktemp -d)
  BASE=$((20000 + RANDOM % 10000)) # peer ports stay below the ephemeral range
  "$BIN" demo --dcs "$dcs" --wan-delay-ms "$delay" --base-port "$BASE" \
    --data-dir "$WORK/demo" "$@" >"$WORK/demo.out" 2>&1 &
  DEMO=$!
  trap 'kill -TERM $DEMO 2>/dev/null; wait $DEMO 2>/dev/null; rm -rf "$WORK"' EXIT
  for _ in $(seq 1 600); do
    [[ -s "$WORK/demo/demo.json" ]] && break
    sleep 0.1
  done
  [[ -s "$WORK/demo/demo.json" ]] || { cat "$WORK/demo.out" >&2; exit 1; }
}
url() { echo "postgres://bench@127.0.0.1:$((BASE + $1))/postgres"; }
demo_pid() { sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "$WORK/demo/demo.json" | sed -n "$(($1 + 1))p"; }
