#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (fuzz/CMakeLists.txt) and runs each for a
# bounded time, starting from a copy of its committed corpus (fuzz/corpus/<target>/).
#
#   fuzz/run.sh [--grow] [SECONDS] [TARGET...]
#
# SECONDS per target (default 60); TARGET names (default: all). For each target it
# prints libFuzzer's final figures: executions, executions per second, coverage (cov:
# edges, ft: features) and corpus size. A crash, an invariant that fails, a sanitizer
# report, a leak or a timeout fails the run; the input is kept and its path printed.
# --grow rewrites the committed corpus as its seeds plus the smallest set of inputs that
# keeps the features of the old corpus and the run (-set_cover_merge=1), for a
# maintainer's long run; without it the committed corpus is never touched.
# Known, not yet fixed findings sit in fuzz/crashes/<target>/ (README there): they are
# replayed and reported, and do not fail the run.
# Environment: FUZZ_BUILD_DIR (default build/fuzz), FUZZ_JOBS (build jobs, default 2).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$repo/fuzz"
build=${FUZZ_BUILD_DIR:-$repo/build/fuzz}

grow=0
if [ "${1:-}" = "--grow" ]; then
  grow=1
  shift
fi
seconds=${1:-60}
shift || true
all=(record_decode record_roundtrip json_render endpoint_options http_response retry_after)
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("${all[@]}")

CC=clang CXX=clang++ cmake -G Ninja -S "$fuzz" -B "$build" >/dev/null
cmake --build "$build" -j"${FUZZ_JOBS:-2}"

work=$(mktemp -d "${TMPDIR:-/tmp}/flightlog-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$fuzz/ubsan.supp"
# The targets skip the checks that known findings fail (fuzz/crashes/README.md).
export FLIGHTLOG_FUZZ_KNOWN=skip

# The last value of `key:` in libFuzzer's log (its progress lines and final stats).
last_value() {
  grep -oE "$1 *[0-9]+" "$2" | tail -n 1 | grep -oE '[0-9]+$' || echo "?"
}

passed=0
failed=0
for t in "${targets[@]}"; do
  bin="$build/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: no target '$t' (targets: ${all[*]})" >&2; exit 2; }
  mkdir -p "$work/$t" "$work/artifacts"
  [ -d "$fuzz/corpus/$t" ] && cp "$fuzz/corpus/$t"/* "$work/$t"/ 2>/dev/null || true
  start=$(find "$work/$t" -type f | wc -l)
  args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2560
        -artifact_prefix="$work/artifacts/$t-")
  [ -f "$fuzz/dict/$t.dict" ] && args+=(-dict="$fuzz/dict/$t.dict")
  log="$work/$t.log"
  status=0
  "$bin" "${args[@]}" "$work/$t" >"$log" 2>&1 || status=$?
  runs=$(last_value 'stat::number_of_executed_units:' "$log")
  rate=$(last_value 'stat::average_exec_per_sec:' "$log")
  cov=$(last_value 'cov:' "$log")
  ft=$(last_value 'ft:' "$log")
  corpus=$(find "$work/$t" -type f | wc -l)
  printf 'fuzz %-17s %10s runs %7s exec/s  cov: %-5s ft: %-6s corpus: %s (from %s)' \
    "$t" "$runs" "$rate" "$cov" "$ft" "$corpus" "$start"
  if [ "$status" -eq 0 ]; then
    echo "  ok"
    passed=$((passed + 1))
  else
    echo "  FAILED (exit $status)"
    failed=$((failed + 1))
    grep -E 'ERROR|invariant failed|runtime error|SUMMARY' "$log" | head -n 20 || true
    tail -n 30 "$log"
    for a in "$work/artifacts/$t-"*; do
      [ -e "$a" ] || continue
      keep="$repo/build/fuzz-artifacts"
      mkdir -p "$keep" && cp "$a" "$keep/"
      echo "input kept: $keep/$(basename "$a") (replay: $bin $keep/$(basename "$a"))"
    done
  fi
  if [ "$grow" -eq 1 ] && [ "$status" -eq 0 ]; then
    # The seeds (seed-*, fuzz/make_seeds.cpp) and the inputs of fixed findings (fixed-*,
    # fuzz/crashes/README.md) stay; beside them, the smallest set of inputs (greedy set
    # cover) that keeps every feature of the old corpus and the run; over 250 files,
    # every edge instead (hit counts aside), to keep the corpus small.
    grown="$work/$t.grown"
    merged=0
    for counters in 1 0; do
      rm -rf "$grown" && mkdir -p "$grown" "$fuzz/corpus/$t"
      find "$fuzz/corpus/$t" -maxdepth 1 -type f \( -name 'seed-*' -o -name 'fixed-*' \) \
        -exec cp {} "$grown"/ \;
      "$bin" -set_cover_merge=1 -use_counters=$counters "$grown" "$fuzz/corpus/$t" "$work/$t" \
        >"$work/$t.merge.log" 2>&1 || break
      merged=1
      [ "$(find "$grown" -type f | wc -l)" -gt 250 ] || break
    done
    if [ "$merged" -eq 1 ]; then
      rm -rf "$fuzz/corpus/$t"
      mv "$grown" "$fuzz/corpus/$t"
    else
      echo "fuzz $t: the merge failed; corpus left as it was"
      tail -n 20 "$work/$t.merge.log"
    fi
    echo "fuzz $t: corpus now $(find "$fuzz/corpus/$t" -type f | wc -l) files," \
      "$(du -sk --apparent-size "$fuzz/corpus/$t" | cut -f1) KiB"
  fi
  # Known findings: replayed, reported, not failing the run.
  for k in "$fuzz/crashes/$t"/*; do
    [ -f "$k" ] || continue
    if env -u FLIGHTLOG_FUZZ_KNOWN UBSAN_OPTIONS=halt_on_error=1 "$bin" "$k" >"$work/known.log" 2>&1 &&
      ! grep -qE 'runtime error|invariant failed' "$work/known.log"; then
      echo "fuzz $t: known finding $(basename "$k") no longer reproduces: move it to fuzz/corpus/$t"
    else
      echo "fuzz $t: known finding $(basename "$k") still reproduces (fuzz/crashes/README.md)"
    fi
  done
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
