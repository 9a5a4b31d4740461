#!/usr/bin/env bash
# Builds flightlog and runs every test. The README's test command.
#   scripts/test.sh            release build + every test + the examples against the
#                              installed package
#   scripts/test.sh asan tsan  the same, then the whole suite again under ASan+UBSan and
#                              under ThreadSanitizer (CI, .ci/run, runs all three)
# A preset's build goes to build/<preset>. Any test failure, and any sanitizer report
# (each one ends its process with an error: see the test presets in CMakePresets.json),
# fails the run. Prints the wall time of each build and each suite.
#
# The integration tests (tests/clickhouse_test.cpp, tests/demo_test.cpp) ship to a real
# ClickHouse server. Unless FLIGHTLOG_CLICKHOUSE_DIR names one already running (see
# scripts/clickhouse-test-server.sh), a throwaway server (loopback, HTTPS, certificate
# made at run time) runs for the length of this script and is stopped however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

presets=(release "$@")
for preset in "$@"; do
  case "$preset" in
    asan | tsan | debug) ;;
    *)
      echo "scripts/test.sh: unknown preset '$preset' (release always runs; add asan, tsan or debug)" >&2
      exit 1
      ;;
  esac
done

if [ -z "${FLIGHTLOG_CLICKHOUSE_DIR:-}" ]; then
  ch_dir=$(mktemp -d "${TMPDIR:-/tmp}/flightlog-clickhouse.XXXXXX")
  cleanup() {
    local status=$?
    if [ "$status" -ne 0 ] && [ -s "$ch_dir/log/clickhouse-server.err.log" ]; then
      echo "--- last lines of the ClickHouse server's error log:"
      tail -n 40 "$ch_dir/log/clickhouse-server.err.log" || true
    fi
    bash scripts/clickhouse-test-server.sh stop "$ch_dir" || true
    rm -rf "$ch_dir"
    exit "$status"
  }
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  bash scripts/clickhouse-test-server.sh start "$ch_dir"
  export FLIGHTLOG_CLICKHOUSE_DIR="$ch_dir"
fi

# Two tests at a time: most tests wait on timers, sockets or device flushes rather than
# the CPU, and the suites' timeouts leave room for a loaded machine.
jobs=${FLIGHTLOG_TEST_JOBS:-2}
times=()
for preset in "${presets[@]}"; do
  echo "=== build: $preset ==="
  start=$SECONDS
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
  times+=("build $preset: $((SECONDS - start)) s")
  echo "=== test: $preset ==="
  start=$SECONDS
  ctest --preset "$preset" --timeout 600 -j "$jobs"
  times+=("tests $preset: $((SECONDS - start)) s")
  if [ "$preset" = release ]; then
    echo "=== examples against the installed package ==="
    start=$SECONDS
    bash scripts/check-install.sh
    times+=("examples: $((SECONDS - start)) s")
  fi
done
echo "=== all passed ==="
printf '  %s\n' "${times[@]}"
