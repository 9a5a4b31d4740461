// Full-jitter exponential backoff: sleep = uniform(0, min(cap, base * 2^n)), n being the
// number of consecutive failures before this one. Jitter spreads the retries of many
// clients after a shared outage; the cap bounds the wait once the outage is long.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

namespace flightlog::detail {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap, std::uint64_t seed)
      : base_(base), cap_(cap), rng_(seed) {}

  // The bound of the next delay: min(cap, base * 2^failures).
  std::chrono::milliseconds ceiling() const {
    const double factor = std::ldexp(1.0, std::min(failures_, 62));
    const double ms = std::min(static_cast<double>(cap_.count()), base_.count() * factor);
    return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
  }

  // Draws the next delay and counts a failure.
  std::chrono::milliseconds next() {
    const auto bound = ceiling();
    ++failures_;
    std::uniform_int_distribution<std::int64_t> d(0, bound.count());
    return std::chrono::milliseconds(d(rng_));
  }

  // The cap itself (for failures that only a person can fix) and counts a failure.
  std::chrono::milliseconds at_cap() {
    ++failures_;
    return cap_;
  }

  void reset() { failures_ = 0; }
  int failures() const { return failures_; }

 private:
  std::chrono::milliseconds base_, cap_;
  int failures_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace flightlog::detail
