#include "core/crash_point.hpp"

#include <signal.h>

#include <atomic>
#include <charconv>
#include <cstdlib>
#include <string_view>

namespace flightlog::detail {

namespace {

struct Armed {
  CrashPoint point = CrashPoint::None;
  std::uint64_t nth = 1;
};

Armed read_environment() noexcept {
  const char* env = std::getenv("FLIGHTLOG_CRASH_AT");
  if (env == nullptr) return {};
  std::string_view spec(env);
  Armed a;
  if (const auto colon = spec.find(':'); colon != std::string_view::npos) {
    const std::string_view n = spec.substr(colon + 1);
    std::uint64_t v = 0;
    const auto r = std::from_chars(n.data(), n.data() + n.size(), v);
    if (r.ec == std::errc() && r.ptr == n.data() + n.size() && v > 0) a.nth = v;
    spec = spec.substr(0, colon);
  }
  struct Name {
    std::string_view name;
    CrashPoint point;
  };
  static constexpr Name kNames[] = {
      {"commit", CrashPoint::Commit},
      {"map_growth", CrashPoint::MapGrowth},
      {"before_delete", CrashPoint::BeforeDelete},
      {"delete", CrashPoint::Delete},
      {"cleanup", CrashPoint::Cleanup},
      {"eviction", CrashPoint::Eviction},
  };
  for (const auto& n : kNames) {
    if (n.name == spec) a.point = n.point;
  }
  return a;
}

const Armed g_armed = read_environment();
std::atomic<std::uint64_t> g_hits{0};

}  // namespace

const CrashPoint g_armed_crash_point = g_armed.point;

void crash_point_reached() noexcept {
  if (g_hits.fetch_add(1, std::memory_order_relaxed) + 1 == g_armed.nth) raise(SIGKILL);
}

}  // namespace flightlog::detail
