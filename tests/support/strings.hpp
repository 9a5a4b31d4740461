// Small string helpers for tests.
#pragma once

#include <string>
#include <string_view>

namespace flightlog::test {

// Concatenates by appending. (GCC 12 warns wrongly, -Wrestrict, about
// "literal" + std::string at -O2 and above, so the tests avoid that form.)
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

inline bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

}  // namespace flightlog::test
