// Text forms of the public enums.
#include <cctype>

#include "flightlog/client.hpp"
#include "flightlog/value.hpp"

namespace flightlog {

std::string_view to_string(Priority p) noexcept {
  switch (p) {
    case Priority::Critical:
      return "CRITICAL";
    case Priority::High:
      return "HIGH";
    case Priority::Normal:
      return "NORMAL";
    case Priority::Low:
      return "LOW";
  }
  return "UNKNOWN";
}

std::optional<Priority> parse_priority(std::string_view text) noexcept {
  for (auto p : {Priority::Critical, Priority::High, Priority::Normal, Priority::Low}) {
    const std::string_view name = to_string(p);
    if (name.size() != text.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size() && same; ++i) {
      // ASCII only: std::toupper follows the process's locale, where 'i' may not be 'I'.
      const char c = text[i];
      same = (c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c) == name[i];
    }
    if (same) return p;
  }
  return std::nullopt;
}

std::string_view to_string(LogResult r) noexcept {
  switch (r) {
    case LogResult::Ok:
      return "ok";
    case LogResult::QueueFull:
      return "queue_full";
    case LogResult::TooLarge:
      return "too_large";
    case LogResult::Invalid:
      return "invalid";
    case LogResult::Closed:
      return "closed";
  }
  return "unknown";
}

}  // namespace flightlog
