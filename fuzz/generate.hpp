// Texts and values drawn from the fuzzer's input, for the targets that build records.
#pragma once

#include <fuzzer/FuzzedDataProvider.h>

#include <bit>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "flightlog/value.hpp"

namespace flightlog::fuzz {

// Owns the strings that the views and Values it returns point into (a deque never
// moves them), so it must outlive them.
class Generator {
 public:
  explicit Generator(FuzzedDataProvider& in) : in_(in) {}

  FuzzedDataProvider& input() { return in_; }

  // Any bytes, at most `max` of them.
  std::string_view text(std::size_t max) {
    return strings_.emplace_back(in_.ConsumeRandomLengthString(max));
  }

  // Any type; a double of any bit pattern (NaNs with payloads, infinities, subnormals,
  // -0); a string of any bytes.
  Value value(std::size_t max_string = std::size_t{1} << 12) {
    switch (in_.ConsumeIntegralInRange<int>(1, 4)) {
      case 1:
        return Value(std::bit_cast<double>(in_.ConsumeIntegral<std::uint64_t>()));
      case 2:
        return Value(in_.ConsumeIntegral<std::int64_t>());
      case 3:
        return Value(in_.ConsumeBool());
      default:
        return Value(text(max_string));
    }
  }

 private:
  FuzzedDataProvider& in_;
  std::deque<std::string> strings_;
};

}  // namespace flightlog::fuzz
