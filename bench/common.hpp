// Helpers shared by the benchmark programs: TSC timing, pacing, percentiles, temporary
// directories, a start gate for producer threads, and the W1/W2 workloads.
//
// Every figure these programs print is meant to be read as a ratio against a contestant
// measured in the same run (see bench/method.md): the machines are shared
// and noisy, so absolute numbers only describe the moment they were taken.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <x86intrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "flightlog/options.hpp"
#include "flightlog/value.hpp"
#include "support/temp_dir.hpp"

namespace flightlog::bench {

// ---- Durability modes, as the benchmarks name them ----------------------------------------

struct DurabilityMode {
  Durability mode;
  const char* name;  // as the enumerator is spelled
};
inline constexpr std::array<DurabilityMode, 4> kDurabilityModes{
    {{Durability::Full, "Full"},
     {Durability::NoMetaSync, "NoMetaSync"},
     {Durability::Periodic, "Periodic"},
     {Durability::None, "None"}}};

inline const char* durability_name(Durability d) {
  for (const DurabilityMode& m : kDurabilityModes) {
    if (m.mode == d) return m.name;
  }
  return "?";
}

// ---- Timing with the time-stamp counter ------------------------------------------------

// Reads the TSC once every earlier instruction has completed, and before any later one
// starts (the lfences), so the timed region cannot leak out of the measurement.
inline std::uint64_t tsc_begin() noexcept {
  _mm_lfence();
  const std::uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}

// rdtscp waits for the timed code to finish; the lfence keeps later code from starting
// before the read.
inline std::uint64_t tsc_end() noexcept {
  unsigned aux = 0;
  const std::uint64_t t = __rdtscp(&aux);
  _mm_lfence();
  return t;
}

inline std::int64_t monotonic_raw_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Converts TSC ticks to nanoseconds. The rate is measured against CLOCK_MONOTONIC_RAW
// over a busy-waited window (the CPU flags say constant_tsc/nonstop_tsc, so one rate
// holds for the whole run and for every core).
class TscClock {
 public:
  explicit TscClock(std::int64_t window_ns = 200'000'000) {
    const std::int64_t ns0 = monotonic_raw_ns();
    const std::uint64_t t0 = tsc_begin();
    std::int64_t ns1 = ns0;
    while (ns1 - ns0 < window_ns) ns1 = monotonic_raw_ns();
    const std::uint64_t t1 = tsc_end();
    ns_per_tick_ = static_cast<double>(ns1 - ns0) / static_cast<double>(t1 - t0);
  }
  double ns_per_tick() const noexcept { return ns_per_tick_; }
  double to_ns(double ticks) const noexcept { return ticks * ns_per_tick_; }
  std::uint64_t ticks(double ns) const noexcept {
    return static_cast<std::uint64_t>(ns / ns_per_tick_);
  }

 private:
  double ns_per_tick_ = 1.0;
};

// The pause between bursts: a busy wait (not a sleep, which would let the core drop into
// a low-power state and cool the caches) of a uniformly drawn 2.0-2.2 ms. The jitter keeps
// bursts from locking into step with the consumer's 1 ms poll.
class Pacer {
 public:
  Pacer(const TscClock& clock, std::uint64_t seed, double min_ns = 2.0e6, double max_ns = 2.2e6)
      : rng_(seed), dist_(clock.ticks(min_ns), clock.ticks(max_ns)) {}
  void wait() noexcept {
    const std::uint64_t until = __rdtsc() + dist_(rng_);
    while (__rdtsc() < until) _mm_pause();
  }

 private:
  std::mt19937_64 rng_;
  std::uniform_int_distribution<std::uint64_t> dist_;
};

// ---- Percentiles -----------------------------------------------------------------------

struct Percentiles {
  std::size_t n = 0;
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, p9999 = 0, max = 0;
};

// The nearest-rank q-quantile of `sorted` (ascending): the smallest sample with at least
// q of all samples at or below it; 0 when there are none.
inline double nearest_rank(const std::vector<double>& sorted, double q) {
  const std::size_t n = sorted.size();
  if (n == 0) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(n)));
  return sorted[std::clamp<std::size_t>(rank, 1, n) - 1];
}

// Nearest-rank percentiles (see nearest_rank). Sorts `samples` in place.
inline Percentiles percentiles(std::vector<double>& samples) {
  Percentiles p;
  p.n = samples.size();
  if (samples.empty()) return p;
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) { return nearest_rank(samples, q); };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.p999 = at(0.999);
  p.p9999 = at(0.9999);
  p.max = samples.back();
  return p;
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---- Threads ---------------------------------------------------------------------------

// Restricts the calling thread to `cpus`; exits the program if the system refuses.
inline void pin_to(const std::vector<unsigned>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (unsigned c : cpus) CPU_SET(c, &set);
  if (int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set); rc != 0) {
    std::cerr << "cannot pin to CPUs";
    for (unsigned c : cpus) std::cerr << ' ' << c;
    std::cerr << ": pthread_setaffinity_np: " << std::strerror(rc) << std::endl;
    std::exit(1);
  }
}

// Holds producer threads until every one is ready, so they start measuring together.
// Waiters yield rather than spin: on a 2-core machine, spinning waiters would steal the
// core that the thread opening the gate needs.
class StartGate {
 public:
  void wait() const noexcept {
    while (!open_.load(std::memory_order_acquire)) std::this_thread::yield();
  }
  void open() noexcept { open_.store(true, std::memory_order_release); }

 private:
  std::atomic<bool> open_{false};
};

// ---- Files -----------------------------------------------------------------------------

// A fresh directory under $TMPDIR (or /tmp), removed with its contents: the tests' own,
// so journals, log files and databases land on the machine's ordinary disk.
class TempDir : public test::TempDir {
 public:
  explicit TempDir(const std::string& prefix = "flightlog-bench") : test::TempDir(prefix) {}
};

// Formats a number with a fixed count of decimals (for tables and CSV).
inline std::string fixed(double v, int decimals = 1) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(decimals);
  out << v;
  return out.str();
}

// One row of the targets CSV that bench/run turns into the PASS/MISS table.
// `limit` is the bound the ratio must respect; `at_most` says which side passes. The
// name must not contain commas: bench/run splits the CSV with awk.
struct Target {
  std::string name;
  double ratio;
  double limit;
  bool at_most;
  // An ablation's ratio, shown beside the targets so that both can be read together and
  // judged by none: op "=", limit 0, result "ablation".
  bool ablation = false;
  bool pass() const { return at_most ? ratio <= limit : ratio >= limit; }
};

inline void write_targets(const std::filesystem::path& file, const std::vector<Target>& targets) {
  std::ofstream out(file);
  out << "target,ratio,op,limit,result\n";
  for (const Target& t : targets) {
    out << '"' << t.name << "\"," << fixed(t.ratio, 4) << ',';
    if (t.ablation) {
      out << "=,0,ablation\n";
    } else {
      out << (t.at_most ? "<=" : ">=") << ',' << t.limit << ',' << (t.pass() ? "PASS" : "MISS")
          << '\n';
    }
  }
}

// One line per target on stdout: "PASS <name>: <ratio> <= <limit>" (or MISS), and for an
// ablation "---- <name>: <ratio> (an ablation, not a target)".
inline void print_targets(const std::vector<Target>& targets) {
  for (const Target& t : targets) {
    if (t.ablation) {
      std::cout << "---- " << t.name << ": " << fixed(t.ratio, 3) << " (an ablation, not a target)"
                << std::endl;
    } else {
      std::cout << (t.pass() ? "PASS " : "MISS ") << t.name << ": " << fixed(t.ratio, 3)
                << (t.at_most ? " <= " : " >= ") << t.limit << std::endl;
    }
  }
}

// ---- Workloads -------------------------------------------------------------------------

// W1: the five values of one prediction. Derived from the call's index with a few
// arithmetic operations, so no contestant logs constants the compiler could fold, and
// every contestant pays the same to produce them.
struct W1Values {
  double f1, f2, f3, f4, prediction;
};

inline W1Values w1_values(std::uint64_t i) noexcept {
  const double x = static_cast<double>(i & 1023);
  return {x * 0.5, x + 0.25, 1.0 - x, x * x, 0.5 + x * 1e-3};
}

// W2's priority of record i: 5% CRITICAL, 15% HIGH, 60% NORMAL, 20% LOW, drawn from a
// fixed seed so every contestant sees the same sequence.
inline std::vector<Priority> w2_priorities(std::size_t n, std::uint64_t seed = 42) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> percent(0, 99);
  std::vector<Priority> out(n);
  for (auto& p : out) {
    const int r = percent(rng);
    p = r < 5    ? Priority::Critical
        : r < 20 ? Priority::High
        : r < 80 ? Priority::Normal
                 : Priority::Low;
  }
  return out;
}

}  // namespace flightlog::bench
