#!/usr/bin/env bash
# Builds flightlog and runs every test. The README's test command.
#   scripts/test.sh            release build + ctest
#   scripts/test.sh asan tsan  also the sanitizer builds (CI runs all three)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
presets=(release "$@")
for preset in "${presets[@]}"; do
  echo "=== build + test: $preset ==="
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
  ctest --preset "$preset" --timeout 600
  if [ "$preset" = release ]; then
    echo "=== examples against the installed package ==="
    bash scripts/check-install.sh
  fi
done
