// Hot-path timestamps and their conversion to wall-clock nanoseconds.
//
// ClockSource::Cached (the default): the hot path loads a clock word (CachedClock below).
// ClockSource::Precise: the hot path reads the CPU's time-stamp counter (7-25 ns by the
// machine, no system call, no shared memory). Only the writer thread turns ticks into Unix-epoch
// nanoseconds, with a calibration it refreshes every second against CLOCK_REALTIME, so NTP steps
// and TSC drift show up within a second. Where the TSC is not invariant (or not x86), the hot path
// reads CLOCK_REALTIME itself (vDSO, ~20 ns) and the conversion is the identity.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define FLIGHTLOG_HAVE_TSC 1
#else
#define FLIGHTLOG_HAVE_TSC 0
#endif

namespace flightlog::detail {

// True once the TSC was found invariant (cpuid 0x80000007 EDX bit 8). Set once before
// any Client exists; read-only afterwards.
extern bool g_use_tsc;

inline std::int64_t realtime_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// `use_tsc` is g_use_tsc, passed in so the hot path reads it from a cache line it
// loads anyway (a Client copies it onto its hot line) rather than from a global.
inline std::uint64_t hot_timestamp(bool use_tsc) noexcept {
#if FLIGHTLOG_HAVE_TSC
  if (__builtin_expect(use_tsc, 1)) return __rdtsc();
#endif
  return static_cast<std::uint64_t>(realtime_ns());
}
inline std::uint64_t hot_timestamp() noexcept {
  return hot_timestamp(g_use_tsc);
}

// ClockSource::Cached: one word, on a cache line of its own, that the writer's drain
// thread refreshes with hot_timestamp() (Writer::tick_clock says how often) and the hot
// path loads instead of reading the clock. The load is a cache hit between refreshes;
// after one, the first call on each core misses once. Relaxed is enough: a record needs
// a recent time, not ordering against other memory, and one atomic's values are seen in
// the order written, so the raw times a thread reads never go backwards (the converted
// times may step back by the once-a-second re-anchoring's correction, as with the TSC).
struct alignas(64) CachedClock {
  std::atomic<std::uint64_t> raw{0};

  void refresh() noexcept { raw.store(hot_timestamp(), std::memory_order_relaxed); }
  std::uint64_t read() const noexcept { return raw.load(std::memory_order_relaxed); }
};

// Decides g_use_tsc (idempotent, thread-safe) and returns it.
bool init_hot_clock();

// Writer-side conversion; not thread-safe (one per writer).
class TimestampConverter {
 public:
  TimestampConverter();
  // Re-anchors to the current wall clock and refines the tick rate. Call about once a
  // second.
  void recalibrate() noexcept;
  std::int64_t to_unix_ns(std::uint64_t raw) const noexcept;

 private:
  std::uint64_t first_tsc_ = 0;
  std::int64_t first_mono_ns_ = 0;
  std::uint64_t base_tsc_ = 0;
  std::int64_t base_real_ns_ = 0;
  double ns_per_tick_ = 1.0;
};

}  // namespace flightlog::detail
