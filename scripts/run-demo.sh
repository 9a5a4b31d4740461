#!/usr/bin/env bash
# The main job: installs dependencies, builds flightlog in release mode and runs the
# demo (extra arguments go to flightlog-demo; see flightlog-demo --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target flightlog-demo flightlog-dump
dir=$(mktemp -d /tmp/flightlog-demo.XXXXXX)
trap 'rm -rf "$dir"' EXIT
./build/release/tools/demo/flightlog-demo --dir "$dir/journal" "$@"
