#!/usr/bin/env bash
# Installs flightlog into a temporary prefix, builds examples/ against the installed
# package (find_package(flightlog), as a user would), checks the pkg-config file, and
# runs every example.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(mktemp -d /tmp/flightlog-prefix.XXXXXX)
work=$(mktemp -d /tmp/flightlog-examples.XXXXXX)
trap 'rm -rf "$prefix" "$work"' EXIT
cmake --preset release >/dev/null
cmake --build --preset release --target flightlog
cmake --install build/release --prefix "$prefix" >/dev/null
cmake -S examples -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/build"
# pkg-config: the same library found the other way.
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs flightlog >/dev/null
echo '#include <flightlog/flightlog.hpp>
int main() { flightlog::Options o; o.offline_dir = "'"$work"'/pc-journal"; flightlog::Client c(o); return 0; }' > "$work/pc.cpp"
g++ -o "$work/pc" "$work/pc.cpp" $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs flightlog)
"$work/pc"
# The README's quick start (its first C++ block) compiles as written, inside a main()
# that declares the values it logs, against the installed headers.
awk '/^```cpp/ { n++; f = (n == 1); next } /^```/ { f = 0 } f' README.md > "$work/quickstart.txt"
{
  grep '^#include' "$work/quickstart.txt"
  echo '#include <cstdlib>'
  echo 'int main() {'
  echo '  double x1 = 1, x2 = 2, x3 = 3, x4 = 4, p = 0.5;'
  grep -v '^#include' "$work/quickstart.txt"
  echo '}'
} > "$work/readme_quickstart.cpp"
g++ -std=c++20 -fsyntax-only -I"$prefix/include" "$work/readme_quickstart.cpp"
echo "README quick start: compiles"
cd "$work"
for example in quickstart production low_latency_loop; do
  echo "--- $example"
  FLIGHTLOG_DIR="$work/$example-journal" "./build/$example"
done
echo "examples: built against the installed package and ran"
