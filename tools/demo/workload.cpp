#include "workload.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "bench/common.hpp"  // TSC reads, the W1 values and W2 priorities of bench-method.md

namespace flightlog::demo {

namespace {

// Priorities are drawn from a table of this many (a power of two), per thread.
constexpr std::size_t kPriorityTable = 1 << 16;

}  // namespace

Workload::Workload(Client& client, const Schema& schema, int threads, double rate,
                   std::chrono::duration<double> duration)
    : client_(client),
      schema_(schema),
      per_thread_rate_(rate / threads),
      duration_(duration),
      tallies_(static_cast<std::size_t>(threads)),
      live_(std::make_unique<LiveCount[]>(static_cast<std::size_t>(threads))) {
  const auto calls = static_cast<std::size_t>(std::llround(per_thread_rate_ * duration_.count()));
  for (std::size_t t = 0; t < tallies_.size(); ++t) {
    tallies_[t].ticks.resize(std::max<std::size_t>(calls, 1));  // touched now, not in the loop
    priorities_.push_back(bench::w2_priorities(kPriorityTable, 42 + t));
  }
}

Workload::~Workload() {
  join();
}

void Workload::start() {
  const auto start = std::chrono::steady_clock::now();
  start_ = start;
  for (std::size_t t = 0; t < tallies_.size(); ++t) {
    threads_.emplace_back([this, t, start] { run(t, start); });
  }
}

void Workload::join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool Workload::finished() const {
  for (std::size_t t = 0; t < tallies_.size(); ++t) {
    if (!live_[t].done.load(std::memory_order_acquire)) return false;
  }
  return true;
}

std::chrono::duration<double> Workload::elapsed() const {
  auto last = start_;
  for (std::size_t t = 0; t < tallies_.size(); ++t) last = std::max(last, live_[t].finished_at);
  return last - start_;
}

std::uint64_t Workload::calls() const {
  std::uint64_t n = 0;
  for (std::size_t t = 0; t < tallies_.size(); ++t) {
    n += live_[t].calls.load(std::memory_order_relaxed);
  }
  return n;
}

void Workload::run(std::size_t index, std::chrono::steady_clock::time_point start) {
  using clock = std::chrono::steady_clock;
  ThreadTally& tally = tallies_[index];
  const std::vector<Priority>& priorities = priorities_[index];
  LiveCount& live = live_[index];
  const std::uint64_t total = tally.ticks.size();
  const std::chrono::duration<double> interval(1.0 / per_thread_rate_);
  std::uint64_t* const by_result = tally.by_result.data();
  std::uint64_t* const accepted = tally.accepted.data();
  std::uint32_t* const ticks = tally.ticks.data();
  std::size_t recorded = 0;

  std::uint64_t i = 0;
  while (i < total) {
    const auto now = clock::now();
    // Every record whose time has come: the rate holds even after a stall.
    const std::chrono::duration<double> elapsed = now - start;
    const auto due = std::min<std::uint64_t>(
        total, static_cast<std::uint64_t>(elapsed.count() * per_thread_rate_) + 1);
    for (; i < due; ++i) {
      const bench::W1Values v = bench::w1_values(i);
      const Priority p = priorities[i & (kPriorityTable - 1)];
      const std::uint64_t t0 = bench::tsc_begin();
      const LogResult r =
          client_.log_prediction(schema_, {v.f1, v.f2, v.f3, v.f4}, {v.prediction}, p);
      const std::uint64_t t1 = bench::tsc_end();
      const std::uint64_t d = t1 - t0;
      if (i == 0) {
        tally.first_call_ticks = d;
      } else {
        ticks[recorded++] = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(d, std::numeric_limits<std::uint32_t>::max()));
      }
      ++by_result[static_cast<std::size_t>(r)];
      if (r == LogResult::Ok) ++accepted[static_cast<std::size_t>(p)];
    }
    live.calls.store(i, std::memory_order_relaxed);
    if (i >= total || stop_.load(std::memory_order_relaxed)) break;
    // Wait for the next record's time, at least a millisecond: a service between requests.
    const auto next_due =
        start + std::chrono::duration_cast<clock::duration>(interval * static_cast<double>(i));
    std::this_thread::sleep_until(std::max(next_due, now + std::chrono::milliseconds(1)));
  }
  live.finished_at = clock::now();
  tally.calls = i;
  tally.ticks.resize(recorded);  // shrinks: no allocation
  live.done.store(true, std::memory_order_release);
}

}  // namespace flightlog::demo
