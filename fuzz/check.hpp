// What the fuzz targets share: a check that stops the run with a message when an
// invariant fails (libFuzzer then saves the input as a crash), and the test support's
// record encoder (tests/support), so that the targets build records as the tests do.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace flightlog::fuzz {

[[noreturn]] inline void fail(const char* check, const char* file, int line,
                              std::string_view detail) {
  std::fprintf(stderr, "%s:%d: invariant failed: %s\n  %.*s\n", file, line, check,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

}  // namespace flightlog::fuzz

// FUZZ_CHECK(condition, detail): `detail` (anything a std::string_view takes) is only
// built when the condition fails.
#define FUZZ_CHECK(cond, detail)                                               \
  do {                                                                         \
    if (!(cond)) ::flightlog::fuzz::fail(#cond, __FILE__, __LINE__, (detail)); \
  } while (0)
