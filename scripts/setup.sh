#!/usr/bin/env bash
# Installs what building and testing Meridian needs, and only what is missing
# (idempotent; apt-get only). Needs root or sudo only when something must be installed.
#   build-essential  C/C++ toolchain (RocksDB)
#   pkg-config
#   libclang-dev     RocksDB's bindgen
#   postgresql       the PostgreSQL 15 reference server the tests compare against
#   postgresql-client psql
#   protobuf-compiler protoc, for the inter-node gRPC service (build.rs)
#   openssl          certificates for the nodes' mutual-TLS test (tests/cluster.rs)
# Rust is not installed here: cargo must already be on PATH (rustup).
set -euo pipefail

missing=()

have_libclang() {
  [[ -n "${LIBCLANG_PATH:-}" ]] && return 0
  # libclang.so* or libclang-<version>.so*; libclang-cpp (pulled in by other
  # packages) is not the C API bindgen loads.
  local dir
  for dir in /usr/lib/llvm-*/lib /usr/lib/*-linux-gnu /usr/lib64; do
    compgen -G "$dir/libclang.so*" >/dev/null && return 0
    compgen -G "$dir/libclang-[0-9]*.so*" >/dev/null && return 0
  done
  return 1
}

pg_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir)
    [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
  done
  return 1
}

{ command -v cc && command -v c++ && command -v make; } >/dev/null 2>&1 || missing+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
have_libclang || missing+=(libclang-dev)
pg_bindir >/dev/null || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)

if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing ${missing[*]} and there is no apt-get; install them by hand" >&2
    exit 1
  fi
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found on PATH. Install Rust with rustup (https://rustup.rs)," >&2
  echo "       e.g. 'curl https://sh.rustup.rs -sSf | sh', then 'source ~/.cargo/env'." >&2
  exit 1
fi

# The workspace's rust-version.
need_rust="1.94"
have_rust=$(rustc --version | awk '{print $2}')
if [[ "$(printf '%s\n%s\n' "$need_rust" "$have_rust" | sort -V | head -n1)" != "$need_rust" ]]; then
  echo "setup: rustc $have_rust is older than the required $need_rust; run 'rustup update'" >&2
  exit 1
fi
