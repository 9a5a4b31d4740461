#!/usr/bin/env bash
# The main job: installs dependencies, builds flightlog in release mode (build/release)
# and runs flightlog-demo with its defaults: about 25 s of an inference service logging
# W2 predictions while its upload endpoint is down, then up. Extra arguments go to
# flightlog-demo (see flightlog-demo --help); its exit code is this script's.
# Data files and plots go to build/demo unless --out is given.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target flightlog-demo flightlog-dump
case " $* " in
  *" --out "* | *" --out="*) ;;
  *) set -- --out build/demo "$@" ;;
esac
exec ./build/release/tools/demo/flightlog-demo "$@"
