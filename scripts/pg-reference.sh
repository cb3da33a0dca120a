#!/usr/bin/env bash
# Starts (or reuses) the PostgreSQL 15 reference server the sqllogic files are checked
# against, and prints its connection string. Idempotent.
#   PGREF_PORT (default 5499)  PGREF_DIR (default /tmp/pgref)
set -euo pipefail

port="${PGREF_PORT:-5499}"
dir="${PGREF_DIR:-/tmp/pgref}"
url="postgres://postgres@127.0.0.1:${port}/postgres"

bindir=""
if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/pg_ctl" ]]; then
  bindir=$(pg_config --bindir)
else
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r | head -n1)
fi
[[ -x "$bindir/pg_ctl" ]] || { echo "pg-reference: no PostgreSQL server binaries (run scripts/setup.sh)" >&2; exit 1; }

ready() { "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres >/dev/null 2>&1; }

if ready; then
  echo "$url"
  exit 0
fi

# The server refuses to run as root: use the postgres account then.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    su postgres -s /bin/bash -c "$*"
  else
    bash -c "$*"
  fi
}

if [[ ! -f "$dir/PG_VERSION" ]]; then
  mkdir -p "$dir"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
  as_pg "'$bindir/initdb' -D '$dir' -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8" >/dev/null
fi
as_pg "'$bindir/pg_ctl' -D '$dir' -o '-p $port -k /tmp -c fsync=off -c jit=off -c timezone=UTC' -l '$dir.log' -w -t 60 start" >/dev/null
for _ in $(seq 1 50); do
  ready && { echo "$url"; exit 0; }
  sleep 0.2
done
echo "pg-reference: server on port $port did not come up; see $dir.log" >&2
exit 1
