#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of flightlog from Debian 12
# packages. This script is the only way anything gets installed: CI and the README's
# set-up commands call it. Safe to run again (apt-get skips what is present).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libconcurrentqueue-dev      # hot-path lock-free queues
  liblmdb-dev lmdb-utils      # the journal (+ mdb_stat/mdb_dump for inspection)
  libboost1.81-dev libssl-dev # uploader transport (Beast/Asio + OpenSSL)
  zlib1g-dev                  # gzip of request bodies
  libdeflate-dev              # CRC-32 of journal records (hardware-accelerated)
  libcli11-dev                # command lines of the tools
  libgtest-dev libgmock-dev   # tests
  libsimdjson-dev             # tests check every JSON line with a real parser
  libbenchmark-dev            # micro-benchmarks
  libspdlog-dev libsqlite3-dev  # benchmark peers only
  clickhouse-server clickhouse-client openssl  # real ClickHouse receiver (integration test)
  clang-format
  clang libclang-rt-14-dev    # fuzz/: libFuzzer targets built with clang (CI runs them)
  gnuplot-nox                 # flightlog-demo's plots (the demo runs without it)
)

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "install-deps.sh: ${#missing[@]} packages to install (${missing[*]})," \
        "but this user is not root and sudo is not installed: run it as root" >&2
      exit 1
    fi
    SUDO=sudo
  fi
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
