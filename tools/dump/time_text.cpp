#include "time_text.hpp"

#include <charconv>

namespace flightlog::tools {

namespace {

// Days from 1970-01-01 to year-month-day of the proleptic Gregorian calendar. Counts
// years from March, so that the leap day ends a year: a March-based year has
// 365 days plus one every 4th, minus every 100th, plus every 400th.
std::int64_t days_from_epoch(std::int64_t y, unsigned m, unsigned d) noexcept {
  if (m <= 2) --y;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto year_of_era = static_cast<std::int64_t>(y - era * 400);  // 0..399
  const unsigned month_from_march = m > 2 ? m - 3 : m + 9;            // 0..11
  const std::int64_t day_of_year = (153 * month_from_march + 2) / 5 + d - 1;
  const std::int64_t day_of_era =
      year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;  // 719468: days from 0000-03-01 to 1970-01-01
}

bool leap(std::int64_t y) noexcept {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(std::int64_t y, unsigned m) noexcept {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `n` digits at text[pos]; advances pos.
bool digits(std::string_view text, std::size_t& pos, std::size_t n, unsigned& out) noexcept {
  if (pos + n > text.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<unsigned>(c - '0');
  }
  pos += n;
  return true;
}

bool expect(std::string_view text, std::size_t& pos, std::string_view any_of) noexcept {
  if (pos >= text.size() || any_of.find(text[pos]) == std::string_view::npos) return false;
  ++pos;
  return true;
}

std::optional<std::int64_t> parse_rfc3339(std::string_view t) noexcept {
  std::size_t pos = 0;
  unsigned year = 0, month = 0, day = 0;
  if (!digits(t, pos, 4, year) || !expect(t, pos, "-") || !digits(t, pos, 2, month) ||
      !expect(t, pos, "-") || !digits(t, pos, 2, day)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return std::nullopt;
  // 1678-01-01 .. 2261-12-31 stays inside int64 nanoseconds with any offset.
  if (year < 1678 || year > 2261) return std::nullopt;
  const std::int64_t days = days_from_epoch(year, month, day);
  constexpr std::int64_t kNsPerSecond = 1'000'000'000;
  if (pos == t.size()) return days * 86400 * kNsPerSecond;  // a date alone

  unsigned hour = 0, minute = 0, second = 0;
  if (!expect(t, pos, "Tt ") || !digits(t, pos, 2, hour) || !expect(t, pos, ":") ||
      !digits(t, pos, 2, minute) || !expect(t, pos, ":") || !digits(t, pos, 2, second)) {
    return std::nullopt;
  }
  if (hour > 23 || minute > 59 || second > 60) return std::nullopt;  // 60: a leap second
  std::int64_t frac_ns = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    std::size_t n = 0;
    std::int64_t scale = kNsPerSecond;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      if (++n > 9) return std::nullopt;
      scale /= 10;
      frac_ns += (t[pos] - '0') * scale;
      ++pos;
    }
    if (n == 0) return std::nullopt;
  }
  std::int64_t offset_s = 0;
  if (expect(t, pos, "Zz")) {
    offset_s = 0;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    const int sign = t[pos] == '-' ? -1 : 1;
    ++pos;
    unsigned oh = 0, om = 0;
    if (!digits(t, pos, 2, oh) || !expect(t, pos, ":") || !digits(t, pos, 2, om) || oh > 23 ||
        om > 59) {
      return std::nullopt;
    }
    offset_s = sign * static_cast<std::int64_t>(oh * 3600 + om * 60);
  } else {
    return std::nullopt;  // RFC 3339 requires the offset
  }
  if (pos != t.size()) return std::nullopt;
  const std::int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  return seconds * kNsPerSecond + frac_ns;
}

}  // namespace

std::optional<std::int64_t> parse_time_ns(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  std::int64_t ns = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ns);
  if (end == text.data() + text.size()) {
    if (ec != std::errc{}) return std::nullopt;  // out of range
    return ns;
  }
  return parse_rfc3339(text);
}

}  // namespace flightlog::tools
