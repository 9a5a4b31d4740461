// Options the tests start from: a journal in a test's directory, no device flushes
// (the tests check contents and accounting, not power-loss durability).
#pragma once

#include <chrono>
#include <filesystem>
#include <thread>

#include "flightlog/options.hpp"

namespace flightlog::test {

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
