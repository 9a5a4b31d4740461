// Options the tests start from: a journal in a test's directory, no device flushes
// (the tests check contents and accounting, not power-loss durability).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <thread>

#include "flightlog/options.hpp"

namespace flightlog::test {

// Sanitizers slow the pipeline down a lot (TSan most, and more on a loaded 2-core
// machine, where blocked producers spin against the writer). Tests whose point is
// volume divide their record counts by this; the checks stay the same.
#if defined(__SANITIZE_THREAD__)
inline constexpr int kSanitizerSlowdown = 6;
#elif defined(__SANITIZE_ADDRESS__)
inline constexpr int kSanitizerSlowdown = 2;
#else
inline constexpr int kSanitizerSlowdown = 1;
#endif

constexpr std::int64_t scaled(std::int64_t n) {
  return n / kSanitizerSlowdown;
}

inline Options test_options(const std::filesystem::path& dir) {
  Options o;
  o.offline_dir = dir;
  o.durability = Durability::None;
  o.max_producer_threads = 4;
  return o;
}

// The same, with every priority blocking when its queue is full, so that nothing the
// test logs can be dropped.
inline Options blocking_options(const std::filesystem::path& dir) {
  Options o = test_options(dir);
  o.full_policy = {FullPolicy::Block, FullPolicy::Block, FullPolicy::Block, FullPolicy::Block};
  return o;
}

}  // namespace flightlog::test
