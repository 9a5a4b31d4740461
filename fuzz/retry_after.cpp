// Fuzz target: parse_retry_after (src/uploader/https_client.hpp), the Retry-After
// header's two forms (RFC 9110 10.2.3): delay-seconds, or an HTTP-date in any of its
// three forms, taken relative to "now".
//
// Two kinds of input, chosen by the input's last byte:
// - any text: the result is nullopt or >= 0 s; digits alone (blanks around them) read
//   as that many seconds (more than ten digits: the documented clamp); a date gives a
//   delay that does not grow when "now" moves later;
// - a date made here from a fuzz-derived instant in years 0000..9999, written in one of
//   the three forms (letter case and surrounding blanks varied): the result must be the
//   whole seconds from "now" up to that instant, rounded up, or 0 s when it is past.
// "now" is any instant, to the nanosecond, in years 1970..2100.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "check.hpp"
#include "uploader/https_client.hpp"

namespace {

namespace fd = flightlog::detail;
using namespace std::chrono;

constexpr const char* kDays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                 "Thursday", "Friday", "Saturday"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::string describe(std::string_view value) {
  std::string out = "Retry-After '";
  for (unsigned char c : value) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out + "'";
}

std::string text_of(std::optional<seconds> s) {
  return s ? std::to_string(s->count()) + " s" : std::string("nullopt");
}

// `t` as an HTTP-date in form 0 (IMF-fixdate), 1 (RFC 850) or 2 (asctime).
std::string http_date(sys_seconds t, int form) {
  const sys_days day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<seconds> hms{t - day};
  const char* day_name = kDays[weekday{day}.c_encoding()];
  const char* month = kMonths[static_cast<unsigned>(ymd.month()) - 1];
  const int y = static_cast<int>(ymd.year());
  const auto d = static_cast<unsigned>(ymd.day());
  const auto h = static_cast<int>(hms.hours().count());
  const auto m = static_cast<int>(hms.minutes().count());
  const auto s = static_cast<int>(hms.seconds().count());
  char buf[80];
  switch (form) {
    case 0:
      std::snprintf(buf, sizeof buf, "%.3s, %02u %s %04d %02d:%02d:%02d GMT", day_name, d, month, y,
                    h, m, s);
      break;
    case 1:
      std::snprintf(buf, sizeof buf, "%s, %02u-%s-%02d %02d:%02d:%02d GMT", day_name, d, month,
                    y % 100, h, m, s);
      break;
    default:
      std::snprintf(buf, sizeof buf, "%.3s %s %2u %02d:%02d:%02d %04d", day_name, month, d, h, m, s,
                    y);
      break;
  }
  return buf;
}

void any_text(FuzzedDataProvider& in, system_clock::time_point now) {
  const std::string value = in.ConsumeRemainingBytesAsString();
  const auto r = fd::parse_retry_after(value, now);
  FUZZ_CHECK(!r || r->count() >= 0, describe(value) + " gives " + text_of(r));
  const auto first = value.find_first_not_of(" \t");
  const auto last = value.find_last_not_of(" \t");
  const std::string_view core = first == std::string::npos
                                    ? std::string_view()
                                    : std::string_view(value).substr(first, last - first + 1);
  const bool digits = !core.empty() && std::all_of(core.begin(), core.end(),
                                                   [](char c) { return c >= '0' && c <= '9'; });
  if (digits) {
    std::int64_t want = 9'999'999'999;
    if (core.size() <= 10) want = std::stoll(std::string(core));
    FUZZ_CHECK(r && r->count() == want, describe(value) + " gives " + text_of(r));
    return;
  }
  const auto later = fd::parse_retry_after(value, now + hours(1));
  FUZZ_CHECK(r.has_value() == later.has_value() && (!r || *later <= *r),
             describe(value) + " gives " + text_of(r) + ", an hour later " + text_of(later));
}

void made_date(FuzzedDataProvider& in, system_clock::time_point now) {
  // 0000-01-01T00:00:00 .. 9999-12-31T23:59:59
  constexpr std::int64_t kFirst = -62'167'219'200;
  constexpr std::int64_t kLast = 253'402'300'799;
  const int form = in.ConsumeIntegralInRange<int>(0, 2);
  std::int64_t t = in.ConsumeIntegralInRange<std::int64_t>(kFirst, kLast);
  if (form == 1) {  // two-digit years: the parser's pivot reads 70..99 as 19xx, 00..69 as 20xx
    t = in.ConsumeIntegralInRange<std::int64_t>(0, 3'155'759'999);  // 1970 .. 2069
  }
  std::string value = http_date(sys_seconds(seconds(t)), form);
  if (in.ConsumeBool()) {
    for (char& c : value) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  value = std::string(in.ConsumeIntegralInRange<std::size_t>(0, 2), ' ') + value +
          std::string(in.ConsumeIntegralInRange<std::size_t>(0, 2), '\t');
  // ceil(t - now) in whole seconds: for a whole-second t, t - floor(now).
  const std::int64_t ahead = t - floor<seconds>(now).time_since_epoch().count();
  const auto r = fd::parse_retry_after(value, now);
  FUZZ_CHECK(r && r->count() == std::max<std::int64_t>(ahead, 0),
             describe(value) + " gives " + text_of(r) + ", not " +
                 std::to_string(std::max<std::int64_t>(ahead, 0)) + " s");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const bool made = in.ConsumeBool();
  // 1970-01-01 .. 2100-01-01, to the nanosecond.
  const auto now = system_clock::time_point(
      nanoseconds(in.ConsumeIntegralInRange<std::int64_t>(0, 4'102'444'800'000'000'000)));
  if (made) {
    made_date(in, now);
  } else {
    any_text(in, now);
  }
  return 0;
}
