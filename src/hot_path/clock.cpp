#include "hot_path/clock.hpp"

#include <mutex>

#if FLIGHTLOG_HAVE_TSC
#include <cpuid.h>
#endif

namespace flightlog::detail {

bool g_use_tsc = false;

namespace {

std::int64_t monotonic_raw_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

bool tsc_is_invariant() noexcept {
#if FLIGHTLOG_HAVE_TSC
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  // The cast: gcc's cpuid.h returns unsigned, clang's int.
  if (static_cast<unsigned>(__get_cpuid_max(0x80000000, nullptr)) < 0x80000007u) return false;
  __cpuid(0x80000007, eax, ebx, ecx, edx);
  return (edx & (1u << 8)) != 0;
#else
  return false;
#endif
}

}  // namespace

bool init_hot_clock() {
  static std::once_flag once;
  std::call_once(once, [] { g_use_tsc = tsc_is_invariant(); });
  return g_use_tsc;
}

TimestampConverter::TimestampConverter() {
  if (!g_use_tsc) return;
#if FLIGHTLOG_HAVE_TSC
  // A first rate from a 5 ms window; recalibrate() refines it over a growing window.
  first_tsc_ = __rdtsc();
  first_mono_ns_ = monotonic_raw_ns();
  std::int64_t now = first_mono_ns_;
  while (now - first_mono_ns_ < 5'000'000) now = monotonic_raw_ns();
  std::uint64_t tsc = __rdtsc();
  ns_per_tick_ = static_cast<double>(now - first_mono_ns_) / static_cast<double>(tsc - first_tsc_);
  base_tsc_ = __rdtsc();
  base_real_ns_ = realtime_ns();
#endif
}

void TimestampConverter::recalibrate() noexcept {
  if (!g_use_tsc) return;
#if FLIGHTLOG_HAVE_TSC
  std::uint64_t tsc = __rdtsc();
  std::int64_t mono = monotonic_raw_ns();
  std::int64_t real = realtime_ns();
  if (tsc > first_tsc_ && mono > first_mono_ns_) {
    ns_per_tick_ =
        static_cast<double>(mono - first_mono_ns_) / static_cast<double>(tsc - first_tsc_);
  }
  base_tsc_ = tsc;
  base_real_ns_ = real;
#endif
}

std::int64_t TimestampConverter::to_unix_ns(std::uint64_t raw) const noexcept {
  if (!g_use_tsc) return static_cast<std::int64_t>(raw);
  // Signed difference: a record stamped before the latest re-anchoring is fine.
  const auto delta = static_cast<std::int64_t>(raw - base_tsc_);
  return base_real_ns_ + static_cast<std::int64_t>(static_cast<double>(delta) * ns_per_tick_);
}

}  // namespace flightlog::detail
