// Checks several suites share: a file's permission bits, the message of the
// flightlog::Error a call must throw, and the wall clock records are compared with.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>

#include "flightlog/error.hpp"

namespace flightlog::test {

// The permission bits of `p` itself (a link is not followed).
inline unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

// Runs `fn`, which must throw flightlog::Error, and returns its message.
template <typename F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-flightlog exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "did not throw";
  return {};
}

// Wall-clock nanoseconds since the Unix epoch, as records carry them.
inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace flightlog::test
