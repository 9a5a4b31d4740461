// Times on the command line of the journal tools (--since, --until).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace flightlog::tools {

// Parses a time as Unix-epoch nanoseconds. Accepts
//   - an integer: Unix-epoch nanoseconds, as the records' "ts_ns" ("1764286105123456789");
//   - RFC 3339: "2026-11-27T23:28:25Z", "2026-11-27T23:28:25.5+01:00" (1 to 9 fraction
//     digits; 't' or a space may stand for 'T', 'z' for 'Z');
//   - a date alone, "2026-11-27", meaning its midnight UTC.
// Returns nullopt for anything else, or a time outside the years 1678..2261 (what
// signed 64-bit nanoseconds can hold).
std::optional<std::int64_t> parse_time_ns(std::string_view text) noexcept;

}  // namespace flightlog::tools
